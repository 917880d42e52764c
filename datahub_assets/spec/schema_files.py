"""schemaRef files, parsed at load in pure Python: Avro records (`.avsc`), JSON Schema (`.json`).

Avro: primitives; `["null", T]` unions -> nullable T; logical types date, timestamp-millis /
-micros (timestamp), local-timestamp-* (timestamp_ntz), decimal(precision, scale); records ->
structs, arrays, maps (string keys), enums (string), fixed (binary), named-type references.
A field's `doc` is the column's description.
JSON Schema: an object with `properties`; string (format date / date-time), integer (long),
number (double), boolean, object -> struct, array -> array; `["T", "null"]` types and
non-`required` properties are nullable; local `$ref`s (`#/definitions/x`, `#/$defs/x`).
A property's `description` is the column's description.

Limits (spec/limits.py): the file's size, MAX_NESTING levels of types, and MAX_SCHEMA_TYPES
types once every `$ref` and named-type reference is expanded where it is used (a few KB
of `$ref`s ten wide and twelve deep would otherwise be 10^12 types).

The result (`SchemaFile`) is kept in the PipelineSpec (`PipelineSpec.schemas`), so a run
converts it to Spark types (`execute/schemas.py`) without reading or parsing the file again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from datahub_assets.spec.limits import (
    MAX_NESTING,
    MAX_SCHEMA_FILE_BYTES,
    MAX_SCHEMA_TYPES,
    size_problem,
)

TypeName = Literal[
    "boolean",
    "int",
    "long",
    "float",
    "double",
    "binary",
    "string",
    "date",
    "timestamp",
    "timestamp_ntz",
    "decimal",
    "array",
    "map",
    "struct",
]


class SchemaFileError(ValueError):
    """A schema file cannot be read as a table schema; names the file and the bad type."""


class ColumnType(BaseModel):
    """A column's data type, independent of Spark (execute/schemas.py converts it)."""

    model_config = ConfigDict(frozen=True)
    name: TypeName = Field(description="Type name; decimal/array/map/struct use the fields below.")
    precision: int = Field(default=0, description="Decimal precision.")
    scale: int = Field(default=0, description="Decimal scale.")
    element: ColumnType | None = Field(
        default=None, description="Array element type, or map value type."
    )
    element_nullable: bool = Field(
        default=True, description="Array elements / map values may be null."
    )
    fields: tuple[SchemaColumn, ...] = Field(default=(), description="Struct fields, in order.")


class SchemaColumn(BaseModel):
    """One column (or struct field) of a schema file."""

    model_config = ConfigDict(frozen=True)
    name: str = Field(description="Column name as written in the file.")
    type: ColumnType = Field(description="Data type.")
    nullable: bool = Field(default=True, description="May hold null.")
    description: str | None = Field(
        default=None, description="Avro `doc` / JSON Schema `description` of the column."
    )


ColumnType.model_rebuild()


class SchemaFile(BaseModel):
    """A parsed schemaRef file."""

    model_config = ConfigDict(frozen=True)
    ref: str = Field(description="The schemaRef as written in the definition.")
    columns: tuple[SchemaColumn, ...] = Field(description="Top-level columns, in order.")

    def descriptions(self) -> dict[str, str]:
        """Column name -> description, for the columns that have one."""
        return {c.name: c.description for c in self.columns if c.description}


_AVRO_PRIMITIVES: dict[str, TypeName] = {
    "boolean": "boolean",
    "int": "int",
    "long": "long",
    "float": "float",
    "double": "double",
    "bytes": "binary",
    "string": "string",
}
_AVRO_LOGICAL: dict[str, TypeName] = {
    "date": "date",
    "timestamp-millis": "timestamp",
    "timestamp-micros": "timestamp",
    "local-timestamp-millis": "timestamp_ntz",
    "local-timestamp-micros": "timestamp_ntz",
}


def _doc(node: Any, key: str) -> str | None:
    value = node.get(key) if isinstance(node, dict) else None
    return value.strip() or None if isinstance(value, str) else None


def _name(node: Any, where: str) -> str:
    name = node.get("name") if isinstance(node, dict) else None
    if not isinstance(name, str) or not name:
        raise SchemaFileError(f"{where}: a field without a name: {json.dumps(node)[:120]}")
    return name


def _nesting_error(where: str) -> SchemaFileError:
    return SchemaFileError(
        f"{where}: types nested deeper than {MAX_NESTING} levels ($ref chains and named "
        "types included; a recursive schema?): flatten it"
    )


def _check_expansion(t: ColumnType, where: str) -> None:
    """Refuse a parsed type whose shared parts (a JSON Schema `$ref` target, an Avro named
    type: one object, used in many places), copied where used as every later reader does
    (Spark types, the run's schema checks), would be more than MAX_SCHEMA_TYPES types or
    nest deeper than MAX_NESTING. Computed on the shared form, memoised: linear."""
    memo: dict[int, tuple[int, int]] = {}  # id -> (types, levels) once expanded

    def walk(x: ColumnType, level: int) -> tuple[int, int]:
        if id(x) not in memo:
            if level > MAX_NESTING:
                raise _nesting_error(where)
            inner = [x.element] if x.element is not None else []
            found = [walk(y, level + 1) for y in [*inner, *(f.type for f in x.fields)]]
            memo[id(x)] = (1 + sum(n for n, _ in found), 1 + max((d for _, d in found), default=0))
        types, levels = memo[id(x)]
        if level + levels - 1 > MAX_NESTING:
            raise _nesting_error(where)
        if types > MAX_SCHEMA_TYPES:
            raise SchemaFileError(
                f"{where}: expands to more than {MAX_SCHEMA_TYPES:,} types (each $ref or "
                "named type is copied where it is used): reference shared definitions "
                "less deeply, or split the schema"
            )
        return types, levels

    walk(t, 1)


class _Avro:
    def __init__(self, where: str) -> None:
        self.where = where
        self.named: dict[str, ColumnType] = {}
        self.depth = 0

    def error(self, what: Any) -> SchemaFileError:
        return SchemaFileError(f"{self.where}: unsupported Avro type {json.dumps(what)}")

    def convert(self, t: Any) -> tuple[ColumnType, bool]:
        """(type, nullable)."""
        if isinstance(t, list):
            rest = [x for x in t if x != "null"]
            if len(rest) != 1:
                raise self.error(t)
            return self.convert(rest[0])[0], len(rest) < len(t)
        if isinstance(t, str):
            if t in _AVRO_PRIMITIVES:
                return ColumnType(name=_AVRO_PRIMITIVES[t]), False
            if t in self.named:
                return self.named[t], False
            raise self.error(t)
        if not isinstance(t, dict) or "type" not in t:
            raise self.error(t)
        logical = t.get("logicalType")
        if logical == "decimal":
            return self.decimal(t), False
        if logical in _AVRO_LOGICAL:
            return ColumnType(name=_AVRO_LOGICAL[logical]), False
        result = self.complex(t)
        if result is None:
            return self.convert(t["type"])
        name = t.get("name")
        if isinstance(name, str):
            self.named[name] = result
            self.named[f"{t.get('namespace', '')}.{name}".lstrip(".")] = result
        return result, False

    def decimal(self, t: dict) -> ColumnType:
        precision, scale = t.get("precision"), t.get("scale", 0)
        if not (isinstance(precision, int) and isinstance(scale, int)) or not (
            1 <= precision <= 38 and 0 <= scale <= precision
        ):
            raise SchemaFileError(
                f"{self.where}: decimal needs integer precision 1..38 and 0 <= scale <= "
                f"precision, got {json.dumps(t)}"
            )
        return ColumnType(name="decimal", precision=precision, scale=scale)

    def complex(self, t: dict) -> ColumnType | None:
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise _nesting_error(self.where)
            return self.complex_type(t)
        finally:
            self.depth -= 1

    def complex_type(self, t: dict) -> ColumnType | None:
        kind = t["type"]
        if kind == "record":
            fields = t.get("fields", [])
            if not isinstance(fields, list):
                raise self.error(t)
            cols = []
            for f in fields:
                if not isinstance(f, dict) or "type" not in f:
                    raise self.error(f)
                dtype, nullable = self.convert(f["type"])
                column = SchemaColumn(
                    name=_name(f, self.where),
                    type=dtype,
                    nullable=nullable,
                    description=_doc(f, "doc"),
                )
                cols.append(column)
            return ColumnType(name="struct", fields=tuple(cols))
        if kind == "array":
            item, null_items = self.convert(t.get("items"))
            return ColumnType(name="array", element=item, element_nullable=null_items)
        if kind == "map":
            value, null_values = self.convert(t.get("values"))
            return ColumnType(name="map", element=value, element_nullable=null_values)
        if kind == "enum":
            return ColumnType(name="string")
        if kind == "fixed":
            return ColumnType(name="binary")
        return None


def avro_columns(doc: Any, where: str = "schema") -> tuple[SchemaColumn, ...]:
    """The columns of an Avro record schema (parsed .avsc)."""
    if not isinstance(doc, dict) or doc.get("type") != "record":
        raise SchemaFileError(f"{where}: an .avsc schemaRef must be an Avro record")
    dtype, _ = _Avro(where).convert(doc)
    _check_expansion(dtype, where)  # named types are shared, not copied
    return dtype.fields


_Seen = dict[int, tuple[ColumnType, bool]]  # id of a $ref target -> its converted type
_JSON_SIMPLE: dict[str, TypeName] = {"integer": "long", "number": "double", "boolean": "boolean"}
_JSON_FORMATS: dict[str, TypeName] = {"date": "date", "date-time": "timestamp"}


def _json_type(
    node: Any, root: dict, where: str, depth: int, seen: _Seen
) -> tuple[ColumnType, bool]:
    """(type, nullable by type list) of a JSON Schema node."""
    if not isinstance(node, dict):
        raise SchemaFileError(f"{where}: a JSON Schema node must be an object, got {node!r:.80}")
    if depth > MAX_NESTING:
        raise _nesting_error(where)
    if "$ref" in node:
        ref = node["$ref"]
        parts = ref.split("/") if isinstance(ref, str) else [""]
        if parts[0] != "#":
            raise SchemaFileError(f"{where}: only local $ref are supported, got {ref!r}")
        target: Any = root
        for p in parts[1:]:
            target = target.get(p) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            raise SchemaFileError(f"{where}: $ref {ref!r} does not resolve")
        if id(target) not in seen:  # each target converted once, then shared
            seen[id(target)] = _json_type(target, root, where, depth + 1, seen)
        return seen[id(target)]
    kind = node.get("type", "object" if "properties" in node else None)
    nullable = False
    if isinstance(kind, list):
        rest = [k for k in kind if k != "null"]
        if len(rest) != 1:
            raise SchemaFileError(f"{where}: unsupported JSON Schema type {json.dumps(kind)}")
        kind, nullable = rest[0], len(rest) < len(kind)
    if kind == "string":
        fmt = node.get("format", "")
        name = _JSON_FORMATS.get(fmt, "string") if isinstance(fmt, str) else "string"
        return ColumnType(name=name), nullable
    if isinstance(kind, str) and kind in _JSON_SIMPLE:
        return ColumnType(name=_JSON_SIMPLE[kind]), nullable
    if kind == "object":
        fields = _json_fields(node, root, where, depth, seen)
        return ColumnType(name="struct", fields=fields), nullable
    if kind == "array":
        items = node.get("items", {"type": "string"})
        item, _ = _json_type(items, root, where, depth + 1, seen)
        return ColumnType(name="array", element=item, element_nullable=True), nullable
    raise SchemaFileError(f"{where}: unsupported JSON Schema type {json.dumps(kind)}")


def _json_fields(
    node: dict, root: dict, where: str, depth: int, seen: _Seen
) -> tuple[SchemaColumn, ...]:
    required = node.get("required", [])
    props = node.get("properties", {})
    if not isinstance(props, dict) or not isinstance(required, list):
        raise SchemaFileError(f"{where}: `properties` must be an object and `required` a list")
    cols = []
    for name, sub in props.items():
        dtype, null_type = _json_type(sub, root, where, depth + 1, seen)
        cols.append(
            SchemaColumn(
                name=name,
                type=dtype,
                nullable=null_type or name not in required,
                description=_doc(sub, "description"),
            )
        )
    return tuple(cols)


def json_schema_columns(doc: Any, where: str = "schema") -> tuple[SchemaColumn, ...]:
    """The columns of a JSON Schema object (parsed .json)."""
    dtype = _json_type(doc, doc, where, 0, {})[0] if isinstance(doc, dict) else None
    if dtype is None or dtype.name != "struct":
        raise SchemaFileError(f"{where}: a JSON schemaRef must describe an object")
    _check_expansion(dtype, where)
    return dtype.fields


def parse_schema_text(text: str, name: str) -> tuple[SchemaColumn, ...]:
    """Schema text of file `name` (.avsc -> Avro, .json -> JSON Schema) as columns."""
    if not name.endswith((".avsc", ".json")):
        raise SchemaFileError(
            f"{name}: a schemaRef must be an Avro .avsc or a JSON Schema .json file"
        )
    too_big = size_problem(len(text.encode("utf-8", "surrogatepass")), *_SCHEMA_SIZE)
    if too_big:
        raise SchemaFileError(f"{name}: {too_big}")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaFileError(f"{name}: not valid JSON ({exc})") from exc
    except RecursionError:
        raise SchemaFileError(f"{name}: nested too deeply") from None
    try:
        if name.endswith(".avsc"):
            return avro_columns(doc, name)
        return json_schema_columns(doc, name)
    except RecursionError:
        raise SchemaFileError(f"{name}: nested too deeply") from None


_SCHEMA_SIZE = (MAX_SCHEMA_FILE_BYTES, "schemaRef files", "keep the columns the pipeline reads")


def is_remote(ref: str) -> bool:
    """A schemaRef read at run time only (s3://...): not checked at load."""
    return "://" in ref


def read_schema_file(app_dir: Path, ref: str) -> SchemaFile:
    """Read and parse the schemaRef `ref` of an app (relative to its folder, or absolute)."""
    path = Path(ref) if ref.startswith("/") else app_dir / ref
    if not path.is_file():
        raise SchemaFileError(f"schema file not found: {path}")
    try:
        with path.open("rb") as handle:  # never more than the limit (and one byte) in memory
            data = handle.read(MAX_SCHEMA_FILE_BYTES + 1)
        too_big = size_problem(max(len(data), path.stat().st_size), *_SCHEMA_SIZE)
        if too_big:
            raise SchemaFileError(f"{ref}: {too_big}")
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaFileError(f"schema file not readable: {path} ({exc})") from None
    return SchemaFile(ref=ref, columns=parse_schema_text(text, ref))
