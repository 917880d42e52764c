"""`csv` source: delimited files matching a glob."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.readers._files import check_exists, options, reader, resolve
from datahub_assets.spec.models import CsvSource


def read_csv(source: CsvSource, ctx: ExecContext) -> DataFrame:
    """Options: header, delimiter (sep), inferSchema (ignored with schemaRef), quote,
    escape, encoding, nullValue, dateFormat; schemaRef gives an explicit schema.
    Without schemaRef or inferSchema every column is a string."""
    path = ctx.data_path(source.path)
    check_exists(path, source.id)
    opts = options(
        header=source.header,
        sep=source.delimiter,
        inferSchema=source.infer_schema and not source.schema_ref,
        quote=source.quote,
        escape=source.escape,
        encoding=source.encoding,
        nullValue=source.null_value,
        dateFormat=source.date_format,
    )
    return resolve(reader(ctx, source.schema_ref).options(**opts).csv(path), source.id, path)
