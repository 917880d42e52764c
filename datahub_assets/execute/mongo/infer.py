"""Schema inference over sampled MongoDB documents (pure Python: no Spark, no server).

Every sampled value gets a type, and the types of one field are widened over the sample:

| BSON | inferred | Spark | JSON Schema (`datahub mongo infer-schema`) |
|---|---|---|---|
| ObjectId | objectid | string (24 hex digits) | string, bsonType objectId |
| string, symbol, code, regex | string | string | string |
| int32 | int | int | integer (loads as bigint) |
| int64 | long | bigint | integer |
| double | double | double | number |
| Decimal128 | decimal | decimal(38, s), s = largest scale seen | string, bsonType decimal |
| bool | bool | boolean | boolean |
| date (UTC datetime) | timestamp | timestamp | string, format date-time |
| binary | binary | binary | string, contentEncoding base64 |
| embedded document | struct | struct | object with properties |
| document with many / non-identifier keys | map | map<string, T> | string (JSON text) |
| array | array | array<widened element type> | array |
| null, missing | (no type) | nullable | type [T, "null"] / not required |

Widening (the type of a field seen with two types): int+long -> long; int/long+double ->
double; decimal+int/long -> decimal; decimal+double -> double; objectid+string -> string;
struct+struct -> the union of their fields (a field missing from some documents is
nullable); array+array -> array of the widened elements; map+struct/map -> map of the widened
values; null+T -> nullable T; any other mix (string+int, bool+int, struct+int, ...) -> string
(documents and arrays as relaxed extended JSON text). A field only ever null (or an empty
array's element) is a nullable string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

MAP_MIN_KEYS = 64
"""An embedded document with more distinct keys than this over the sample is a map."""
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Scalar:
    name: str
    """null | bool | int | long | double | string | objectid | timestamp | binary"""


@dataclass(frozen=True)
class DecimalT:
    scale: int
    precision: int = 38


@dataclass(frozen=True)
class ArrayT:
    element: Any


@dataclass(frozen=True)
class MapT:
    value: Any


@dataclass(frozen=True)
class Field:
    name: str
    type: Any
    nullable: bool


@dataclass(frozen=True)
class StructT:
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


NULL, BOOL, INT, LONG, DOUBLE = (
    Scalar("null"),
    Scalar("bool"),
    Scalar("int"),
    Scalar("long"),
    Scalar("double"),
)
STRING, OBJECTID, TIMESTAMP, BINARY = (
    Scalar("string"),
    Scalar("objectid"),
    Scalar("timestamp"),
    Scalar("binary"),
)
_INTEGRAL = (INT, LONG)
_INT32 = range(-(2**31), 2**31)


def _bson_name(value: Any) -> str:
    return type(value).__name__


def type_of(value: Any) -> Any:
    """The type of one BSON value (as pymongo decodes it)."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        if _bson_name(value) == "Int64" or value not in _INT32:
            return LONG
        return INT
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, str):
        return STRING
    if isinstance(value, datetime | date):
        return TIMESTAMP
    if isinstance(value, Mapping):
        return StructT(tuple(Field(str(k), type_of(v), v is None) for k, v in value.items()))
    if isinstance(value, list | tuple):
        element: Any = NULL
        for item in value:
            element = widen(element, type_of(item))
        return ArrayT(element)
    if isinstance(value, bytes | bytearray):  # bson.Binary is a bytes subclass
        return BINARY
    name = _bson_name(value)
    if name == "ObjectId":
        return OBJECTID
    if name == "Decimal128":
        exponent = value.to_decimal().as_tuple().exponent
        return DecimalT(scale=min(38, max(0, -exponent)) if isinstance(exponent, int) else 0)
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        return DecimalT(scale=min(38, max(0, -exponent)) if isinstance(exponent, int) else 0)
    return STRING  # Regex, Code, Timestamp, MinKey/MaxKey, DBRef, UUID...: as text


def _widen_fields(a: StructT, b: StructT) -> StructT:
    out: list[Field] = []
    names_b = {f.name: f for f in b.fields}
    for fa in a.fields:
        fb = names_b.pop(fa.name, None)
        if fb is None:
            out.append(Field(fa.name, fa.type, True))
        else:
            out.append(Field(fa.name, widen(fa.type, fb.type), fa.nullable or fb.nullable))
    out.extend(Field(fb.name, fb.type, True) for fb in names_b.values())
    return StructT(tuple(out))


def _map_value(t: Any) -> Any:
    if isinstance(t, MapT):
        return t.value
    value: Any = NULL
    for f in t.fields:
        value = widen(value, f.type)
    return value


def widen(a: Any, b: Any) -> Any:
    """The narrowest type both `a` and `b` fit in (see the module docstring)."""
    if a == b:
        return a
    if a == NULL:
        return b
    if b == NULL:
        return a
    numeric = {INT: 0, LONG: 1}
    if a in numeric and b in numeric:
        return LONG
    if {a, b} <= {INT, LONG, DOUBLE}:
        return DOUBLE
    if isinstance(a, DecimalT) or isinstance(b, DecimalT):
        other = b if isinstance(a, DecimalT) else a
        if isinstance(a, DecimalT) and isinstance(b, DecimalT):
            return DecimalT(scale=max(a.scale, b.scale))
        if other in _INTEGRAL:
            return a if isinstance(a, DecimalT) else b
        if other == DOUBLE:
            return DOUBLE
        return STRING
    if isinstance(a, StructT) and isinstance(b, StructT):
        return _widen_fields(a, b)
    if isinstance(a, ArrayT) and isinstance(b, ArrayT):
        return ArrayT(widen(a.element, b.element))
    if isinstance(a, MapT | StructT) and isinstance(b, MapT | StructT):
        return MapT(widen(_map_value(a), _map_value(b)))
    return STRING


def _finish(t: Any) -> Any:
    """Final form: maps detected, never-typed (null) values as strings."""
    if t == NULL:
        return STRING
    if isinstance(t, ArrayT):
        return ArrayT(_finish(t.element))
    if isinstance(t, MapT):
        return MapT(_finish(t.value))
    if isinstance(t, StructT):
        keys = [f.name for f in t.fields]
        if not keys:  # only ever an empty document: kept as JSON text ("{}")
            return STRING
        if len(keys) > MAP_MIN_KEYS or (keys and not any(_IDENTIFIER.match(k) for k in keys)):
            return MapT(_finish(_map_value(t)))
        return StructT(
            tuple(Field(f.name, _finish(f.type), f.nullable or f.type == NULL) for f in t.fields)
        )
    return t


def infer_schema(documents: Iterable[Mapping[str, Any]]) -> StructT:
    """The widened type of the sampled documents (an empty sample gives no fields)."""
    result: Any = None
    for doc in documents:
        t = type_of(doc)
        result = t if result is None else widen(result, t)
    if result is None:
        return StructT(())
    done = _finish(result)
    if not isinstance(done, StructT):  # a sample whose documents all turned into a map
        return StructT(())
    return done


# ---------------------------------------------------------------------------- rendering


def type_name(t: Any) -> str:
    """Spark SQL spelling (`bigint`, `struct<a:int>`, `array<string>`...)."""
    if isinstance(t, Scalar):
        return {
            "null": "string",
            "bool": "boolean",
            "int": "int",
            "long": "bigint",
            "double": "double",
            "string": "string",
            "objectid": "string",
            "timestamp": "timestamp",
            "binary": "binary",
        }[t.name]
    if isinstance(t, DecimalT):
        return f"decimal({t.precision},{t.scale})"
    if isinstance(t, ArrayT):
        return f"array<{type_name(t.element)}>"
    if isinstance(t, MapT):
        return f"map<string,{type_name(t.value)}>"
    return "struct<" + ",".join(f"{f.name}:{type_name(f.type)}" for f in t.fields) + ">"


def _json_node(t: Any) -> dict[str, Any]:
    if isinstance(t, Scalar):
        return {
            "null": {"type": "string"},
            "bool": {"type": "boolean", "bsonType": "bool"},
            "int": {"type": "integer", "bsonType": "int"},
            "long": {"type": "integer", "bsonType": "long"},
            "double": {"type": "number", "bsonType": "double"},
            "string": {"type": "string", "bsonType": "string"},
            "objectid": {"type": "string", "bsonType": "objectId"},
            "timestamp": {"type": "string", "format": "date-time", "bsonType": "date"},
            "binary": {"type": "string", "contentEncoding": "base64", "bsonType": "binData"},
        }[t.name]
    if isinstance(t, DecimalT):
        return {
            "type": "string",
            "bsonType": "decimal",
            "description": f"Decimal128 read as text (decimal({t.precision},{t.scale}))",
        }
    if isinstance(t, ArrayT):
        return {"type": "array", "items": _json_node(t.element)}
    if isinstance(t, MapT):
        return {
            "type": "string",
            "bsonType": "object",
            "description": "document with dynamic keys, read as JSON text",
        }
    props: dict[str, Any] = {}
    required = []
    for f in t.fields:
        node = _json_node(f.type)
        if f.nullable:
            node["type"] = [node["type"], "null"]
        else:
            required.append(f.name)
        props[f.name] = node
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def to_json_schema(schema: StructT, title: str = "", sampled: int | None = None) -> dict:
    """A JSON Schema document `execute.schemas.load_schema` reads back (pin it with
    schemaRef); `bsonType` keys record the BSON type as annotations."""
    doc: dict[str, Any] = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    if title:
        doc["title"] = title
    if sampled is not None:
        doc["description"] = (
            f"Inferred by `datahub mongo infer-schema` from {sampled} sampled "
            "document(s); edit freely (add `default`s, tighten types)."
        )
    doc.update(_json_node(schema))
    return doc


def flat_paths(schema: StructT, separator: str = "_") -> dict[str, tuple[str, ...]]:
    """Column name after `flatten` -> document path, for every non-array leaf reachable
    through embedded documents only (`customer_addr_city` -> (customer, addr, city))."""
    out: dict[str, tuple[str, ...]] = {}

    def walk(t: StructT, prefix: tuple[str, ...]) -> None:
        for f in t.fields:
            path = (*prefix, f.name)
            if isinstance(f.type, StructT):
                walk(f.type, path)
            else:
                out[separator.join(path)] = path

    walk(schema, ())
    return out


__all__ = [
    "ArrayT",
    "DecimalT",
    "Field",
    "MapT",
    "Scalar",
    "StructT",
    "flat_paths",
    "infer_schema",
    "to_json_schema",
    "type_name",
    "type_of",
    "widen",
]
