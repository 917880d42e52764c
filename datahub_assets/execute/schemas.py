"""schemaRef files -> Spark StructType.

The files are parsed in pure Python by `spec/schema_files.py` (at load: a validated
PipelineSpec keeps them in `spec.schemas`); this module turns the parsed columns into Spark
types. `schema_for` takes the spec's copy; `load_schema` reads a file (the CLI, `s3://`
schemaRefs, which the loader does not read) and converts it the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datahub_assets.engines.api import T
from datahub_assets.spec.schema_files import (
    ColumnType,
    SchemaColumn,
    SchemaFileError,
    avro_columns,
    json_schema_columns,
    parse_schema_text,
)

SchemaError = SchemaFileError  # the name callers catch

_SIMPLE: dict[str, str] = {  # type names of the running engine's `T`
    "boolean": "BooleanType",
    "int": "IntegerType",
    "long": "LongType",
    "float": "FloatType",
    "double": "DoubleType",
    "binary": "BinaryType",
    "string": "StringType",
    "date": "DateType",
    "timestamp": "TimestampType",
    "timestamp_ntz": "TimestampNTZType",
}


def spark_type(t: ColumnType) -> T.DataType:
    """The Spark type of a parsed column type."""
    if t.name in _SIMPLE:
        return getattr(T, _SIMPLE[t.name])()
    if t.name == "decimal":
        return T.DecimalType(t.precision, t.scale)
    if t.name == "struct":
        return to_struct(t.fields)
    assert t.element is not None, t  # arrays and maps always carry one (schema_files)
    if t.name == "array":
        return T.ArrayType(spark_type(t.element), t.element_nullable)
    return T.MapType(T.StringType(), spark_type(t.element), t.element_nullable)


def to_struct(columns: tuple[SchemaColumn, ...]) -> T.StructType:
    """Parsed columns as a StructType (descriptions stay in the spec: `column_descriptions`)."""
    return T.StructType([T.StructField(c.name, spark_type(c.type), c.nullable) for c in columns])


def avro_to_struct(doc: Any, where: str = "schema") -> T.StructType:
    """An Avro record schema (parsed .avsc) as a StructType."""
    return to_struct(avro_columns(doc, where))


def json_schema_to_struct(doc: Any, where: str = "schema") -> T.StructType:
    """A JSON Schema object (parsed .json) as a StructType."""
    return to_struct(json_schema_columns(doc, where))


def parse_schema(text: str, name: str) -> T.StructType:
    """Schema text of file `name` (.avsc -> Avro, .json -> JSON Schema) as a StructType."""
    return to_struct(parse_schema_text(text, name))


def schema_for(spec: Any, ref: str, path: str | Path) -> T.StructType:
    """The StructType of schemaRef `ref`: the copy parsed at load when the spec has it
    (`PipelineSpec.schemas`), else read from `path` (`s3://` refs)."""
    parsed = getattr(spec, "schemas", {}).get(ref) if spec is not None else None
    if parsed is not None:
        return to_struct(parsed.columns)
    return load_schema(path)


def _read_s3_text(uri: str) -> str:
    import boto3

    bucket, _, key = uri.split("://", 1)[1].partition("/")
    try:
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"]
    except Exception as exc:  # noqa: BLE001 - botocore's errors: reported with the path
        raise SchemaError(f"schema file not readable: {uri} ({exc})") from None
    with body:
        return body.read().decode("utf-8")


def load_schema(path: str | Path) -> T.StructType:
    """Read a schema file (local, or `s3://` through boto3 and the AWS environment) and
    convert it (see `parse_schema`)."""
    if str(path).startswith(("s3://", "s3a://")):
        return parse_schema(_read_s3_text(str(path)), str(path))
    p = Path(path)
    if not p.is_file():
        raise SchemaError(f"schema file not found: {p}")
    return parse_schema(p.read_text(encoding="utf-8"), str(p))
