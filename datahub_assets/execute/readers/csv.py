"""`csv` source: delimited files matching a glob."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.engines.read_ops import CsvFormat
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.readers._files import SourceFiles, check_exists, read_with, schema_for
from datahub_assets.spec.models import CsvSource


def csv_format(source: CsvSource) -> CsvFormat:
    """The source's CSV options, as every engine's reader takes them."""
    return CsvFormat(
        header=source.header,
        delimiter=source.delimiter,
        quote=source.quote,
        escape=source.escape,
        encoding=source.encoding,
        null_value=source.null_value,
        date_format=source.date_format,
    )


def read_csv(source: CsvSource, ctx: ExecContext, corrupt: bool = False) -> DataFrame:
    """Options: header, delimiter (sep), inferSchema (ignored with schemaRef), quote,
    escape, encoding, nullValue, dateFormat; schemaRef gives an explicit schema.
    Without schemaRef or inferSchema every column is a string.

    `corrupt`: read in PERMISSIVE mode with the helper columns `_corrupt_record` (the raw
    line of a malformed record) and `__dh_file` (`execute.malformed` splits them off)."""
    path = ctx.data_path(source.path)
    check_exists(path, source.id)
    files = SourceFiles(path, source.id, ctx)
    schema = schema_for(source.schema_ref, ctx) if source.schema_ref else None
    infer = bool(source.infer_schema) and schema is None
    engine = ctx.active_engine
    return read_with(
        files, lambda: engine.read_csv(files, csv_format(source), schema, infer, corrupt)
    )
