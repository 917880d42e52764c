"""The small languages inside attributes, parsed at load into typed values.

- `<cast types="amount:decimal(12,2), ts:timestamp">` -> (("amount", "decimal(12,2)"),
  ("ts", "timestamp")); every type must be a Spark SQL type name (`spark_type_problem`).
- `<rename mapping="old:new, ...">` -> (("old", "new"), ...); a new name may appear once.
- `<lookup on="src=ref, ..." defaults="field:value, ...">` -> pairs likewise.

YAML may also give a mapping (`types: {amount: "decimal(12,2)"}`) or a list of `x:y`
strings. A ValueError from these parsers becomes a load error at the element's line.
Pure Python: the transformations in `execute/transforms/` use the parsed pairs as they are.
"""

from __future__ import annotations

import re
from typing import Any

Pairs = tuple[tuple[str, str], ...]


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside parentheses, brackets, quotes and backticks; strip; drop empties.

    `"a, upper(concat(b, c)) as d, 'x,y'"` -> `["a", "upper(concat(b, c)) as d", "'x,y'"]`.
    """
    parts: list[str] = []
    depth, quote, start = 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch in "([<":
            depth += 1
        elif ch in ")]>" and depth > 0:
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _items(value: Any, sep: str, what: str) -> list[tuple[str, str]]:
    """`"a:b, c:d"` / `["a:b"]` / `{a: b}` -> [("a", "b"), ...]; both sides required."""
    if isinstance(value, dict):
        raw = [(str(k), "" if v is None else str(v)) for k, v in value.items()]
        items = [f"{k}{sep}{v}" for k, v in raw]
    elif isinstance(value, list | tuple):
        if all(isinstance(v, list | tuple) and len(v) == 2 for v in value):
            items = [f"{a}{sep}{b}" for a, b in value]
        else:
            items = [str(v) for v in value]
    elif isinstance(value, str):
        items = split_top_level(value)
    else:
        raise ValueError(f"{what} must be text of `x{sep}y` items")
    out = []
    for item in items:
        left, found, right = item.partition(sep)
        if not found or not left.strip() or not right.strip():
            raise ValueError(f"{what} item {item.strip()!r} is not of the form 'x{sep}y'")
        out.append((left.strip(), right.strip()))
    return out


def _unique(pairs: list[tuple[str, str]], side: int, what: str) -> None:
    seen: set[str] = set()
    for pair in pairs:
        if pair[side] in seen:
            raise ValueError(f"{what} names {pair[side]!r} twice")
        seen.add(pair[side])


def parse_cast_types(value: Any) -> Any:
    if isinstance(value, tuple) and all(isinstance(p, tuple) for p in value):
        return value  # already parsed (model_copy / model_validate of a dump)
    pairs = _items(value, ":", "types")
    if not pairs:
        raise ValueError("types names no `column:type` item")
    _unique(pairs, 0, "types")
    for column, type_text in pairs:
        problem = spark_type_problem(type_text)
        if problem:
            raise ValueError(f"type {type_text!r} of column {column!r} {problem}")
    return tuple(pairs)


def parse_rename_mapping(value: Any) -> Any:
    if isinstance(value, tuple) and all(isinstance(p, tuple) for p in value):
        return value
    pairs = _items(value, ":", "mapping")
    if not pairs:
        raise ValueError("mapping names no `old:new` item")
    _unique(pairs, 0, "mapping")
    _unique(pairs, 1, "mapping (new names)")
    return tuple(pairs)


def parse_lookup_on(value: Any) -> Any:
    if isinstance(value, tuple) and all(isinstance(p, tuple) for p in value):
        return value
    pairs = _items(value, "=", "on")
    if not pairs:
        raise ValueError("on names no `source_column=reference_column` key")
    return tuple(pairs)


def parse_defaults(value: Any) -> Any:
    if value is None or (isinstance(value, tuple) and all(isinstance(p, tuple) for p in value)):
        return value
    pairs = _items(value, ":", "defaults")
    _unique(pairs, 0, "defaults")
    return tuple(pairs)


# ------------------------------------------------------------------- Spark SQL types

_PRIMITIVES = {
    "boolean",
    "tinyint",
    "byte",
    "smallint",
    "short",
    "int",
    "integer",
    "bigint",
    "long",
    "float",
    "real",
    "double",
    "date",
    "timestamp",
    "timestamp_ntz",
    "timestamp_ltz",
    "string",
    "binary",
    "void",
    "variant",
}
_SIZED = {"char", "character", "varchar"}
_DECIMAL = {"decimal", "dec", "numeric"}
_UNITS = ("year", "month", "day", "hour", "minute", "second")
_TOKEN = re.compile(r"\s*(`[^`]*`|[A-Za-z_][A-Za-z0-9_]*|\d+|'(?:[^'\\]|\\.)*'|[<>(),:])")
ALLOWED_TYPES = (
    "boolean, tinyint, smallint, int, bigint, float, double, decimal(p,s), string, "
    "char(n), varchar(n), binary, date, timestamp, timestamp_ntz, "
    "array<T>, map<K,V>, struct<name:T,...>, interval"
)


class _TypeParser:
    def __init__(self, text: str) -> None:
        self.tokens: list[str] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise ValueError(f"has an unexpected character {text[pos:].strip()[:1]!r}")
            self.tokens.append(m.group(1))
            pos = m.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
        self.i = 0

    def peek(self) -> str:
        return self.tokens[self.i] if self.i < len(self.tokens) else ""

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if not tok or (expected is not None and tok.lower() != expected):
            raise ValueError(f"expects {expected!r} but found {tok or 'the end'!r}")
        self.i += 1
        return tok

    def number(self) -> int:
        tok = self.take()
        if not tok.isdigit():
            raise ValueError(f"expects a number but found {tok!r}")
        return int(tok)

    def type_(self) -> None:
        name = self.take().lower()
        if name in _PRIMITIVES:
            return
        if name in _SIZED:
            self.take("(")
            if self.number() < 1:
                raise ValueError(f"{name} length must be at least 1")
            self.take(")")
            return
        if name in _DECIMAL:
            self.decimal()
            return
        if name == "interval":
            self.interval()
            return
        if name in ("array", "map", "struct"):
            self.take("<")
            getattr(self, name)()
            self.take(">")
            return
        raise ValueError(f"is not a Spark SQL type ({name!r} is unknown)")

    def decimal(self) -> None:
        if self.peek() != "(":
            return
        self.take("(")
        precision, scale = self.number(), 0
        if self.peek() == ",":
            self.take(",")
            scale = self.number()
        self.take(")")
        if not 1 <= precision <= 38 or scale > precision:
            raise ValueError("needs 1 <= precision <= 38 and scale <= precision")

    def interval(self) -> None:
        if self.peek().lower() not in _UNITS:
            return
        first = _UNITS.index(self.take().lower())
        if self.peek().lower() == "to":
            self.take()
            last = self.take().lower()
            if last not in _UNITS or _UNITS.index(last) <= first:
                raise ValueError(f"has an invalid interval range ending in {last!r}")

    def array(self) -> None:
        self.type_()

    def map(self) -> None:
        self.type_()
        self.take(",")
        self.type_()

    def struct(self) -> None:
        if self.peek() == ">":
            return
        while True:
            field = self.take()
            if not (field.startswith("`") or re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", field)):
                raise ValueError(f"has an invalid struct field name {field!r}")
            if self.peek() == ":":
                self.take(":")
            self.type_()
            if self.peek().lower() == "not":
                self.take()
                self.take("null")
            if self.peek().lower() == "comment":
                self.take()
                if not self.take().startswith("'"):
                    raise ValueError("expects a quoted comment")
            if self.peek() != ",":
                return
            self.take(",")

    def parse(self) -> None:
        self.type_()
        if self.peek():
            raise ValueError(f"has unexpected text {self.peek()!r} after the type")


def spark_type_problem(text: str) -> str | None:
    """Why `text` is not a Spark SQL data type name (None: it is). Case-insensitive; the
    grammar of Spark's `parseDataType` for the types a cast can produce."""
    try:
        _TypeParser(text).parse()
    except ValueError as exc:
        return f"{exc}; allowed: {ALLOWED_TYPES}"
    return None
