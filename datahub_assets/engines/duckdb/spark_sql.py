"""Spark SQL text on DuckDB: expressions and queries with Spark's result types.

sqlglot transpiles Spark SQL to DuckDB SQL, but the result types follow DuckDB: year() and
length() are BIGINT, `div` INTEGER, date_add() a TIMESTAMP, sum(int) HUGEINT, decimal
arithmetic and sum/avg of decimals other precisions (or DOUBLE), and Spark's CAST (ANSI:
fails on a bad value) becomes TRY_CAST. `spark_types` rewrites the parsed Spark expression
with explicit casts to Spark's result types (and calls of `engines.duckdb.udfs` functions
where DuckDB has no equivalent), so the same expression gives the same column:
`expr` (an expression: a derived column, a condition, a select-list item), `select_list` (a
select-list item, `s.*` of a struct expanded as Spark does) and `spark_query` (the whole query
of a `sql` step).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from sqlframe.duckdb import functions as DF

from datahub_assets.engines.columns import type_string
from datahub_assets.engines.duckdb.udfs import SPARK_JSON_FN, ensure_functions, udfs_in

_INT_RESULT = (
    "Year",
    "Month",
    "Day",
    "DayOfMonth",
    "DayOfYear",
    "Quarter",
    "WeekOfYear",
    "Hour",
    "Minute",
    "Second",
    "Length",
    "DateDiff",
    "ArraySize",
    "StrPosition",
)
_INT_WINDOW = ("RowNumber", "Rank", "DenseRank", "Ntile")
_INT_DIGITS = {"TINYINT": 3, "SMALLINT": 5, "INT": 10, "BIGINT": 20}
_MAX_PRECISION = 38
_TIMESTAMPS = ("TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMPLTZ", "TIMESTAMPNTZ")


def _decimal(p: int, s: int) -> tuple[int, int]:
    """Spark's bounded decimal with precision loss allowed (DecimalType.adjustPrecisionScale)."""
    if p <= _MAX_PRECISION:
        return p, s
    int_digits = p - s
    scale = max(_MAX_PRECISION - int_digits, min(s, 6))
    return _MAX_PRECISION, scale


def _as_decimal(node: Any, known: dict[int, Any]) -> tuple[int, int] | None:
    """(precision, scale) Spark gives `node` in decimal arithmetic; None if not exact numeric."""
    from sqlglot import exp

    if isinstance(node, exp.Paren):
        return _as_decimal(node.this, known)
    if id(node) in known:
        return known[id(node)]
    if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div | exp.Mod):
        return None  # not decimal by Spark's rules (`known` has those); e.g. decimal * double
    if isinstance(node, exp.Literal) and node.is_number:
        text = node.this.lstrip("-")
        if "e" in text.lower():
            return None
        digits = text.replace(".", "").lstrip("0") or "0"
        scale = len(text.split(".")[1]) if "." in text else 0
        return max(len(digits), scale, 1), scale
    dtype = node.type
    if dtype is None:
        return None
    if dtype.this == exp.DataType.Type.DECIMAL:
        params = dtype.expressions
        if len(params) == 2:
            return int(params[0].this.this), int(params[1].this.this)
        return None
    return (
        (_INT_DIGITS[dtype.sql("spark").upper()], 0)
        if dtype.sql("spark").upper() in _INT_DIGITS
        else None
    )


def _arith(node: Any, known: dict[int, Any]) -> tuple[int, int] | None:
    from sqlglot import exp

    left, right = _as_decimal(node.this, known), _as_decimal(node.expression, known)
    if left is None or right is None:
        return None
    lt, rt = node.this.type, node.expression.type
    is_dec = [t is not None and t.this == exp.DataType.Type.DECIMAL for t in (lt, rt)]
    if not any(is_dec):  # integer arithmetic: no decimal involved
        return None
    (p1, s1), (p2, s2) = left, right
    if isinstance(node, exp.Add | exp.Sub):
        s = max(s1, s2)
        return _decimal(max(p1 - s1, p2 - s2) + s + 1, s)
    if isinstance(node, exp.Mul):
        return _decimal(p1 + p2 + 1, s1 + s2)
    if isinstance(node, exp.Div):
        s = max(6, s1 + p2 + 1)
        return _decimal(p1 - s1 + s2 + s, s)
    if isinstance(node, exp.Mod):
        s = max(s1, s2)
        return _decimal(min(p1 - s1, p2 - s2) + s, s)
    return None


def _exact_division(node: Any, known: dict[int, Any]) -> Callable[[Any], Any] | None:
    """Spark's decimal division, exact: DuckDB divides decimals as doubles (25.835 becomes
    25.834999…, so a later CAST to 2 places gives 25.83 where Spark gives 25.84). The
    operands' unscaled integers are divided as HUGEINTs, rounded HALF_UP at Spark's result
    scale, and the quotient scaled back by an exact decimal product."""
    from sqlglot import exp

    left, right = _as_decimal(node.this, known), _as_decimal(node.expression, known)
    result = known.get(id(node))
    if left is None or right is None or result is None or result[1] >= _MAX_PRECISION:
        return None
    (_, s1), (_, s2), (p, s) = left, right, result
    shift = s + s2 - s1

    def unscaled(operand: Any, scale: int, times: int) -> Any:
        value = exp.Cast(
            this=exp.Mul(this=exp.Paren(this=operand), expression=exp.Literal.number(10**scale)),
            to=exp.DataType.build("int128"),
        )
        if not times:
            return value
        return exp.Mul(this=value, expression=exp.Literal.number(10**times))

    def build(n: Any) -> Any:
        P = exp.Paren  # noqa: N806  (sqlglot prints nested operators without parentheses)
        num = P(this=unscaled(n.this.copy(), s1, max(shift, 0)))
        den = P(this=unscaled(n.expression.copy(), s2, max(-shift, 0)))
        two = exp.Literal.number(2)
        twice_num = P(this=exp.Mul(this=exp.Abs(this=num), expression=two))
        rounded = P(this=exp.Add(this=twice_num, expression=exp.Abs(this=den.copy())))
        twice_den = P(this=exp.Mul(this=exp.Abs(this=den.copy()), expression=two))
        magnitude = P(this=exp.IntDiv(this=rounded, expression=twice_den))
        sign = P(
            this=exp.Mul(
                this=exp.Anonymous(this="sign", expressions=[num.copy()]),
                expression=exp.Anonymous(this="sign", expressions=[den.copy()]),
            )
        )
        quotient = exp.Cast(
            this=P(this=exp.Mul(this=magnitude, expression=sign)),
            to=exp.DataType.build("decimal(38,0)", dialect="spark"),
        )
        unit = exp.Cast(  # 10^-s, exactly
            this=exp.Literal.string(f"1e-{s}"),
            to=exp.DataType.build(f"decimal({s + 1},{s})", dialect="spark"),
        )
        return exp.Cast(
            this=P(this=exp.Mul(this=quotient, expression=unit)),
            to=exp.DataType.build(f"decimal({p},{s})", dialect="spark"),
        )

    return build


def _spark_type_of(node: Any, known: dict[int, Any]) -> str | None:  # noqa: C901
    """The Spark type to cast `node` to on DuckDB, or None to leave it."""
    from sqlglot import exp

    kind = type(node).__name__
    if kind in _INT_RESULT:
        return "int"
    if isinstance(node, exp.IntDiv | exp.CountIf):  # DuckDB's count_if is a HUGEINT
        return "bigint"
    if isinstance(node, exp.Window) and type(node.this).__name__ in _INT_WINDOW:
        return "int"
    if isinstance(node, exp.TsOrDsAdd | exp.DateAdd | exp.DateSub):
        return "date"
    if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div | exp.Mod):
        dec = _arith(node, known)
        if dec is not None:
            known[id(node)] = dec
            return f"decimal({dec[0]},{dec[1]})"
        return None
    if isinstance(node, exp.Sum | exp.Avg):
        arg = node.this
        dec = _as_decimal(arg, known)
        is_dec = dec is not None and (
            id(arg) in known or (arg.type is not None and arg.type.is_type("decimal"))
        )
        if isinstance(node, exp.Sum):
            if is_dec and dec:
                known[id(node)] = _decimal(dec[0] + 10, dec[1])
                return "decimal({},{})".format(*known[id(node)])
            return "bigint" if dec else None
        if is_dec and dec:
            known[id(node)] = _decimal(dec[0] + 4, dec[1] + 4)
            return "decimal({},{})".format(*known[id(node)])
        return "double"
    return None


_SHA_BITS = {224: "__datahub_sha224", 384: "__datahub_sha384", 512: "__datahub_sha512"}
_DIVIDE_BY_ZERO = "[DIVIDE_BY_ZERO] Division by zero"


def _is(node: Any, *types: Any) -> bool:
    return node is not None and node.type is not None and node.type.is_type(*types)


def _divisor(b: Any) -> Any:
    """`b`, or an error when it is 0 (Spark's ANSI division; DuckDB gives NULL)."""
    from sqlglot import exp

    fail = exp.Anonymous(this="error", expressions=[exp.Literal.string(_DIVIDE_BY_ZERO)])
    cond = exp.EQ(this=b.copy(), expression=exp.Literal.number(0))
    return exp.Case(ifs=[exp.If(this=cond, true=fail)], default=b.copy())


def _spark_round(node: Any) -> Any:
    """Spark rounds a double HALF_UP on its shortest decimal text (round(-2.675, 2) is -2.68);
    DuckDB on the binary value (-2.67)."""
    from sqlglot import exp

    x, digits = node.this, node.args.get("decimals") or exp.Literal.number(0)
    text = exp.Cast(this=x.copy(), to=exp.DataType.build("string", dialect="spark"))
    exact = exp.Cast(this=text, to=exp.DataType.build("decimal(35,20)", dialect="spark"))
    rounded = exp.Cast(
        this=exp.Round(this=exact, decimals=digits.copy()),
        to=exp.DataType.build("double", dialect="spark"),
    )
    small = exp.LT(this=exp.Abs(this=x.copy()), expression=exp.Literal.number("1e15"))
    return exp.If(this=small, true=rounded, false=exp.Round(this=x.copy(), decimals=digits.copy()))


INTEGER_TEXT = r"^\s*[+-]?[0-9]+\s*$"


def _integer_text(x: Any) -> Any:
    """`x` (text), or an error when it is not written as an integer."""
    from sqlglot import exp

    ok = exp.Or(
        this=exp.Is(this=x.copy(), expression=exp.Null()),
        expression=exp.RegexpLike(this=x.copy(), expression=exp.Literal.string(INTEGER_TEXT)),
    )
    fail = exp.Anonymous(
        this="error", expressions=[exp.Literal.string("[CAST_INVALID_INPUT] not an integer")]
    )
    return exp.If(this=ok, true=x.copy(), false=fail)


def _toward_zero(x: Any) -> Any:
    from sqlglot import exp

    neg = exp.LT(this=x.copy(), expression=exp.Literal.number(0))
    return exp.If(this=neg, true=exp.Ceil(this=x.copy()), false=exp.Floor(this=x.copy()))


def _rewrite(node: Any) -> Any:  # noqa: C901, PLR0911  (one case per Spark construct)
    """A function building the replacement of `node`, or None."""
    from sqlglot import exp

    if isinstance(node, exp.SHA2):
        bits = int(node.args["length"].this) if node.args.get("length") else 256
        if bits in _SHA_BITS:
            return lambda n: exp.Anonymous(this=_SHA_BITS[bits], expressions=[n.this.copy()])
        return None
    if isinstance(node, exp.Anonymous) and str(node.this).lower() == "crc32":
        return lambda n: exp.Anonymous(this="__datahub_crc32", expressions=[n.expressions[0]])
    if isinstance(node, exp.ToBase64) and _is(node.this, *exp.DataType.TEXT_TYPES):
        return lambda n: exp.Anonymous(this="__datahub_base64", expressions=[n.this.copy()])
    if isinstance(node, exp.Round) and _is(node.this, "double", "float"):
        return _spark_round
    if isinstance(node, exp.Floor | exp.Ceil):
        if _is(node.this, "double", "float"):
            return lambda n: exp.Cast(
                this=n.copy(), to=exp.DataType.build("bigint", dialect="spark")
            )
        dec = node.this.type
        if (
            _is(node.this, "decimal")
            and len(dec.expressions) == 2
            and not node.args.get("decimals")
        ):
            p, s = (int(e.this.this) for e in dec.expressions)
            to = exp.DataType.build(f"decimal({p - s + 1},0)", dialect="spark")
            return lambda n: exp.Cast(this=n.copy(), to=to)
        return None
    if isinstance(node, exp.RegexpReplace):
        repl = node.args.get("replacement")
        if isinstance(repl, exp.Literal) and "$" in repl.this:
            text = re.sub(r"\$(\d)", r"\\\1", repl.this)
            return lambda n: _with_arg(n, "replacement", exp.Literal.string(text))
        return None
    if isinstance(node, exp.JSONFormat) and node.this.type is not None:
        if not node.this.type.is_type(exp.DataType.Type.UNKNOWN) and not node.args.get("options"):
            return _to_json
        return None
    if isinstance(node, exp.ArrayAgg | exp.ArrayUniqueAgg):
        # collect_list/collect_set: Spark gives [] for a group of nulls, DuckDB null
        return lambda n: exp.Coalesce(this=n.copy(), expressions=[exp.Array(expressions=[])])
    if isinstance(node, exp.StrToUnix):  # unix_timestamp: whole seconds, bigint
        return _unix_seconds
    if isinstance(node, exp.DateTrunc) and isinstance(node.args.get("unit"), exp.Literal):
        return _trunc_date
    if isinstance(node, exp.StrToTime):
        return lambda n: exp.Cast(
            this=n.copy(), to=exp.DataType.build("timestamp", dialect="spark")
        )
    if isinstance(node, exp.AddMonths):
        return lambda n: exp.Cast(this=n.copy(), to=exp.DataType.build("date", dialect="spark"))
    if isinstance(node, exp.MonthsBetween):
        return lambda n: exp.Round(this=n.copy(), decimals=exp.Literal.number(8))
    if isinstance(node, exp.DayOfWeek):  # Spark: 1 = Sunday; DuckDB: 0 = Sunday
        return lambda n: exp.Cast(
            this=exp.Add(this=n.copy(), expression=exp.Literal.number(1)),
            to=exp.DataType.build("int", dialect="spark"),
        )
    return None


def _unix_seconds(node: Any) -> Any:
    """Spark's unix_timestamp(x[, fmt]): seconds since the epoch as a bigint, of a timestamp
    or date as it is (DuckDB's translation would parse it as text), of text by its format."""
    from sqlglot import exp

    bigint = exp.DataType.build("bigint", dialect="spark")
    if _is(node.this, *_TIMESTAMPS, "DATE"):  # the format applies to text only
        seconds = exp.TimeToUnix(this=node.this.copy())
    else:
        seconds = node.copy()
    return exp.Cast(this=exp.Floor(this=seconds), to=bigint)


_TRUNC_UNITS = {
    "YEAR": "year",
    "YYYY": "year",
    "YY": "year",
    "QUARTER": "quarter",
    "MONTH": "month",
    "MON": "month",
    "MM": "month",
    "WEEK": "week",
}


def _trunc_date(node: Any) -> Any:
    """Spark's trunc(date, fmt): a DATE (DuckDB's date_trunc knows no 'MM' and returns a
    timestamp); an unknown format gives null, as on Spark."""
    from sqlglot import exp

    unit = _TRUNC_UNITS.get(str(node.args["unit"].this).upper())
    date = exp.DataType.build("date", dialect="spark")
    if unit is None:
        return exp.Cast(this=exp.Null(), to=date)
    truncated = exp.Anonymous(
        this="date_trunc", expressions=[exp.Literal.string(unit), node.this.copy()]
    )
    return exp.Cast(this=truncated, to=date)


def _sqlglot_type_json(t: Any) -> Any:
    """Spark's JSON form of a type annotated by sqlglot (for `to_json` of an expression)."""
    from sqlglot import exp

    if t.is_type(exp.DataType.Type.STRUCT):
        return {
            "type": "struct",
            "fields": [
                {"name": cd.name, "type": _sqlglot_type_json(cd.args["kind"])}
                for cd in t.expressions
            ],
        }
    if t.is_type(exp.DataType.Type.ARRAY):
        return {"type": "array", "elementType": _sqlglot_type_json(t.expressions[0])}
    if t.is_type(exp.DataType.Type.MAP):
        return {"type": "map", "valueType": _sqlglot_type_json(t.expressions[1])}
    if t.is_type(exp.DataType.Type.TIMESTAMPNTZ, exp.DataType.Type.TIMESTAMP):
        return "timestamp_ntz"
    if t.is_type(exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.TIMESTAMPLTZ):
        return "timestamp"
    return t.sql(dialect="spark").lower().replace(", ", ",")


def _to_json(node: Any) -> Any:
    from sqlglot import exp

    spec = json.dumps(_sqlglot_type_json(node.this.type))
    duck_json = exp.Anonymous(this="to_json", expressions=[node.this.copy()])
    return exp.Anonymous(this=SPARK_JSON_FN, expressions=[duck_json, exp.Literal.string(spec)])


def _with_arg(node: Any, name: str, value: Any) -> Any:
    out = node.copy()
    out.set(name, value)
    return out


def _cast_fixes(node: Any) -> list[str]:
    from sqlglot import exp

    source, fixes = node.this.type, []
    to_text = node.to.is_type(*exp.DataType.TEXT_TYPES)
    if source is not None and to_text and source.is_type(*_TIMESTAMPS):
        fixes.append("ts_text")
    if source is not None and to_text and source.is_type("double"):
        fixes.append("double_text")
    to_integer = node.to.is_type(*exp.DataType.INTEGER_TYPES)
    if source is not None and to_integer and source.is_type("double", "float", "decimal"):
        fixes.append("toward_zero")
    if source is not None and to_integer and source.is_type(*exp.DataType.TEXT_TYPES):
        fixes.append("int_text")
    to_decimal = node.to.is_type(exp.DataType.Type.DECIMAL)
    if source is not None and to_decimal and source.is_type(exp.DataType.Type.DOUBLE):
        fixes.append("double_decimal")
    if isinstance(node, exp.TryCast) and not node.args.get("safe"):
        fixes.append("strict")
    return fixes


def spark_types(tree: Any, schema: dict[str, Any]) -> Any:
    """`tree` (a parsed Spark SELECT) with Spark's result types made explicit (see above)."""
    from sqlglot import exp
    from sqlglot.optimizer.annotate_types import annotate_types
    from sqlglot.optimizer.qualify import qualify

    tree = qualify(
        tree,
        schema=schema,
        dialect="spark",
        quote_identifiers=False,
        validate_qualify_columns=False,
    )
    annotate_types(tree, schema=schema, dialect="spark")
    known: dict[int, Any] = {}
    wraps: list[tuple[Any, Any]] = []  # (node, a type name, a fix name or a builder)
    for node in reversed(list(tree.walk(bfs=False))):  # children before parents
        rewrite = _rewrite(node)
        if rewrite is not None:
            wraps.append((node, rewrite))
            continue
        if isinstance(node, exp.Cast):
            wraps += [(node, fix) for fix in _cast_fixes(node)]
            continue
        to = _spark_type_of(node, known)
        if to is not None and isinstance(node, exp.Div) and to.startswith("decimal"):
            exact = _exact_division(node, known)
            wraps.append((node, exact or to))
        elif to is not None:
            wraps.append((node, to))
        divisor = node.expression if isinstance(node, exp.Div | exp.Mod | exp.IntDiv) else None
        if divisor is not None and not (divisor.is_number and divisor.to_py() != 0):
            divisor.replace(_divisor(divisor))
    for node, to in wraps:
        if callable(to):
            node.replace(to(node))
        elif to == "strict":  # Spark's CAST fails on a bad value (ANSI); DuckDB's CAST too
            node.replace(exp.Cast(this=node.this, to=node.to, format=node.args.get("format")))
        elif to == "double_text":  # Java's Double.toString (1.0E20), not DuckDB's 1e+20
            node.replace(exp.Anonymous(this="__datahub_double_text", expressions=[node.this]))
        elif to == "int_text":  # DuckDB reads '1.5' as 2; Spark's ANSI cast fails on it
            node.set("this", _integer_text(node.this))
        elif to == "toward_zero":  # Spark truncates (1.5 -> 1); DuckDB rounds (-> 2)
            node.set("this", _toward_zero(node.this))
        elif to == "double_decimal":  # Spark converts the double's shortest decimal text
            node.set(
                "this", exp.Cast(this=node.this, to=exp.DataType.build("string", dialect="spark"))
            )
        elif to == "ts_text":  # Spark prints the session-zone wall time without an offset
            inner = exp.Cast(
                this=node.this, to=exp.DataType.build("timestamp_ntz", dialect="spark")
            )
            node.set("this", inner)
        else:  # an aggregate over a window: cast the windowed value
            parent = node.parent
            target = parent if isinstance(parent, exp.Window) and parent.this is node else node
            target.replace(exp.Cast(this=target.copy(), to=exp.DataType.build(to, dialect="spark")))
    return tree


def spark_query(query: str, frames: dict[str, Any]) -> Any:
    """A Spark SQL query over `frames` (by name) with Spark's result types made explicit: the
    parsed tree (Spark's text would parse CAST back to TRY_CAST), or the text as written when
    sqlglot cannot parse it (sqlframe then reports the error)."""
    import sqlglot

    schema = {
        name: {f.name: type_string(f.dataType) for f in df.schema.fields}
        for name, df in frames.items()
    }
    try:
        tree = spark_types(sqlglot.parse_one(query, read="spark"), schema)
    except Exception:  # noqa: BLE001  (the engine reports what it cannot parse)
        return query
    ensure_functions(names=udfs_in(tree))
    return tree


def column_of(expression: Any) -> Any:
    """A sqlframe column of a sqlglot expression tree (the tree itself: its text would parse
    Spark's CAST back as TRY_CAST)."""
    from sqlframe.base.column import Column as SqlframeColumn

    return SqlframeColumn(expression)


_STRUCT_STAR = re.compile(r"^\s*`?(?P<name>[^`.\s]+)`?\.\*\s*$")


def select_list(text: str, df: Any) -> list[Any]:
    """The columns of one select-list item: `s.*` of a struct column `s` is its fields (as
    Spark expands it; sqlframe cannot), anything else one `expr`."""
    m = _STRUCT_STAR.match(text)
    if m:
        field = next((f for f in df.schema.fields if f.name == m["name"]), None)
        if field is not None and type(field.dataType).__name__ == "StructType":
            return [
                DF.col(f"`{field.name}`.`{sub.name}`").alias(sub.name)
                for sub in field.dataType.fields
            ]
    return [expr(text, df)]


def expr(text: str, df: Any = None) -> Any:
    """`F.expr(text)` with Spark's result types (`df`: the frame it runs on)."""
    import sqlglot
    from sqlglot import exp

    columns = {f.name: type_string(f.dataType) for f in df.schema.fields} if df is not None else {}
    try:
        select = sqlglot.parse_one(f"SELECT {text} FROM __datahub_t", read="spark")
        assert isinstance(select, exp.Select)
        if len(select.expressions) != 1 or select.find(exp.Star) is not None:
            return DF.expr(text)  # `*`, `t.*`: sqlframe expands stars itself
        aliased = isinstance(select.expressions[0], exp.Alias)
        select = spark_types(select, {"__datahub_t": columns})
        for col in select.find_all(exp.Column):
            col.set("table", None)
        projection = select.expressions[0]
        if not aliased and isinstance(projection, exp.Alias):
            projection = projection.this  # qualify named it; the engine names it as written
    except Exception:  # noqa: BLE001  (sqlframe reports what it cannot parse, with its words)
        return DF.expr(text)
    ensure_functions(names=udfs_in(projection))
    return column_of(projection)  # the tree itself: its text would parse CAST as TRY_CAST
