"""The Iceberg IO manager of Python assets: platform tables in, platform tables out.

An asset key `[app, layer, name]` is the Iceberg table `<app>_<layer>.<name>`, as for XML
pipelines (`spec.models.TableRef`).

`load_input` gives an input the table's current snapshot, in the type its annotation asks for:
- `pyspark.sql.DataFrame` (or no annotation): a lazy Spark Connect frame (pyiceberg plans the
  snapshot's files, Spark reads them: `iceberg.read.read_table`); any size.
- `pyarrow.Table` / `pandas.DataFrame`: read by pyiceberg in this process, for small tables:
  a table with more than `max_local_rows` rows (snapshot summary) is refused.

`handle_output` stores the returned frame (Spark; pandas and pyarrow are converted with
`spark.createDataFrame`, for small frames) through the write path of XML targets: Spark
stages Parquet files, the snapshot is committed on an audit branch, the asset's checks
(`datahub/checks` metadata, see `datahub_assets.python.checks`) run on that snapshot, and
main moves to it only when no blocking check failed. Mode, keys and partitioning come from
the asset's metadata (`datahub/write_mode`, `datahub/keys`, `datahub/partition_by`), set by
`datahub_assets.python.table_asset`. The output metadata mirrors the XML assets': table rows
after the commit, rows written, schema, snapshot ids, table name and location.
"""

from __future__ import annotations

import threading
from typing import Any

import dagster as dg
from pydantic import Field
from pyspark.sql import DataFrame, SparkSession

from datahub_resources import spark_watchdog
from datahub_resources.iceberg import IcebergResource
from datahub_resources.spark import SparkConnectResource

IO_MANAGER_KEY = "iceberg_io"
LAYERS = ("raw", "bronze", "silver", "gold", "service")
DEFAULT_MAX_LOCAL_ROWS = 1_000_000


class TableKeyError(ValueError):
    """An asset key that names no platform table."""


def table_ref(key: dg.AssetKey):
    """The TableRef of an asset key `[app, layer, name]`."""
    from datahub_assets.spec.models import TableRef

    path = key.path
    if len(path) != 3 or path[1] not in LAYERS:
        raise TableKeyError(
            f"asset {key.to_user_string()} is not a platform table: the Iceberg IO manager "
            f"reads and writes assets keyed [app, layer, name] with layer one of "
            f"{', '.join(LAYERS)}"
        )
    return TableRef(app=path[0], layer=path[1], table=path[2])


def _text(value: Any) -> str:
    """A metadata value as text (definition metadata may hold MetadataValue objects)."""
    value = getattr(value, "value", value)
    return "" if value is None else str(value)


def _split(value: Any) -> tuple[str, ...]:
    return tuple(p.strip() for p in _text(value).split(",") if p.strip())


def _wanted(annotation: Any) -> str:
    """`spark`, `arrow` or `pandas`: what an input's type annotation asks for."""
    module = getattr(annotation, "__module__", "") or ""
    name = getattr(annotation, "__name__", "")
    if module.startswith("pyarrow") and name == "Table":
        return "arrow"
    if module.startswith("pandas") and name == "DataFrame":
        return "pandas"
    return "spark"


def to_spark(spark: SparkSession, obj: Any, where: str) -> DataFrame:
    """A returned frame as a Spark frame: Spark as is; pandas and pyarrow converted by
    `spark.createDataFrame` (the rows travel through the client: small frames only)."""
    if isinstance(obj, DataFrame):
        return obj
    module = type(obj).__module__
    if module.startswith("pandas") and type(obj).__name__ == "DataFrame":
        return spark.createDataFrame(obj)
    if module.startswith("pyarrow") and type(obj).__name__ == "Table":
        return spark.createDataFrame(obj)  # pyright: ignore[reportArgumentType] - pyspark 4 takes Arrow tables
    raise dg.Failure(
        f"{where}: the asset returned {type(obj).__name__}; a table asset returns a Spark "
        "DataFrame, a pandas DataFrame or a pyarrow Table"
    )


# ------------------------------------------------------------------- outcomes to the body

_OUTCOMES: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def take_outcome(run_id: str, key: dg.AssetKey):
    """The TargetOutcome `handle_output` stored for (run, asset) in this process, once."""
    with _LOCK:
        return _OUTCOMES.pop((run_id, key.to_user_string()), None)


def _keep_outcome(run_id: str, key: dg.AssetKey, outcome) -> None:
    with _LOCK:
        _OUTCOMES[(run_id, key.to_user_string())] = outcome


# -------------------------------------------------------------------------- the write path


def _write(spark: SparkSession, catalog, write, *, run_id: str, log):
    """Stage -> audit branch -> checks on the audited snapshot -> one catalog commit: the
    XML targets' write path (`iceberg.tables.write_tables`) for one `TableWrite`.
    Raises ChecksFailed (nothing published) when a blocking check fails."""
    from datahub_assets.iceberg.tables import write_tables

    (outcome,) = write_tables(spark, catalog, [write], run_id=run_id, log=log, label=write.where)
    return outcome


def _referenced(ref, checks) -> dict:
    """Referential check name -> the table it reads (`ref="[app.]layer.table.column"`)."""
    from datahub_assets.spec.models import TableRef

    out = {}
    for check in checks:
        if check.kind == "referential":
            parts = check.ref.split(".")
            app, layer, table = ([ref.app, *parts] if len(parts) == 3 else parts)[:3]
            out[check.check_name] = TableRef(app=app, layer=layer, table=table)
    return out


def output_metadata(outcome) -> dict[str, Any]:
    """What the UI shows of a Python asset's materialisation (the XML assets' fields)."""
    from datahub_assets.runtime.metadata import table_metadata

    metadata = table_metadata(outcome)
    # the Python asset's table name even before its first snapshot
    metadata["datahub/iceberg_table"] = dg.MetadataValue.text(outcome.ref.identifier)
    for check in outcome.checks:  # also for assets without Dagster check specs
        metadata[f"datahub/check/{check.name}"] = dg.MetadataValue.text(
            ("passed" if check.passed else f"failed ({check.severity})")
            + f": {check.failing_rows} of {check.total_rows} rows failing"
        )
    return metadata


class IcebergIOManager(dg.ConfigurableIOManager):
    """Platform tables for Python assets: inputs as Spark (default), pyarrow or pandas frames
    by type annotation; outputs stored through the XML targets' write path with the asset's
    checks (write-audit-publish). Keys `[app, layer, name]` <-> `<app>_<layer>.<name>`."""

    spark: SparkConnectResource
    iceberg: IcebergResource
    max_local_rows: int = Field(
        default=DEFAULT_MAX_LOCAL_ROWS,
        description="Largest table (rows of its current snapshot) loaded into the step's "
        "process for a pyarrow.Table or pandas.DataFrame input; larger ones must be read as "
        "a Spark DataFrame.",
    )

    def load_input(self, context: dg.InputContext) -> Any:
        from datahub_assets.iceberg.read import load_table, read_table

        ref = table_ref(context.asset_key)
        kind = _wanted(getattr(context.dagster_type, "typing_type", None))
        catalog = self.iceberg.catalog()
        if kind == "spark":
            return read_table(self.spark.get_session(), catalog, ref)
        table = load_table(catalog, ref)
        snapshot = table.current_snapshot()
        total = snapshot.summary.get("total-records") if snapshot and snapshot.summary else None
        if total is not None and int(total) > self.max_local_rows:
            raise dg.Failure(
                f"input {context.name}: table {ref.identifier} has {total} rows, more than "
                f"max_local_rows={self.max_local_rows} for a {kind} input (read into this "
                "process); annotate the input as pyspark.sql.DataFrame to read it with Spark"
            )
        arrow = table.scan().to_arrow()
        context.log.info("read %s rows of %s with pyiceberg", arrow.num_rows, ref.identifier)
        return arrow if kind == "arrow" else arrow.to_pandas()

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        from datahub_assets.execute.outcomes import ChecksFailed
        from datahub_assets.iceberg.tables import TableWrite
        from datahub_assets.spec.check_json import from_json
        from datahub_assets.spec.models import TableTarget
        from datahub_resources.settings import Settings

        key = context.asset_key
        ref = table_ref(key)
        meta = context.definition_metadata or {}
        where = _text(meta.get("datahub/definition")) or key.to_user_string()
        if obj is None:
            raise dg.Failure(
                f"{where}: asset {key.to_user_string()} returned None; a table asset returns "
                "the frame to store"
            )
        spark = self.spark.get_session()
        target = TableTarget(
            table=ref.table,
            mode=_text(meta.get("datahub/write_mode")) or "overwrite",  # pyright: ignore[reportArgumentType] - validated by pydantic
            keys=_split(meta.get("datahub/keys")),
            partition_by=_split(meta.get("datahub/partition_by")),
        )
        checks = tuple(from_json(_text(meta["datahub/checks"]))) if "datahub/checks" in meta else ()
        write = TableWrite(
            ref=ref,
            df=to_spark(spark, obj, where),
            target=target,
            where=where,
            checks=checks,
            referenced=_referenced(ref, checks),
            app_dir=Settings.from_env().pipelines_dir / ref.app,
        )
        try:
            outcome = _write(
                spark, self.iceberg.catalog(), write, run_id=context.run_id, log=context.log
            )
        except ChecksFailed as failed:
            _keep_outcome(context.run_id, key, failed.outcomes[0] if failed.outcomes else None)
            raise dg.Failure(description=str(failed), allow_retries=False) from None
        except Exception as exc:
            err = spark_watchdog.explain(exc, spark)  # a dead local server: SparkServerDied
            if err is exc:
                raise
            raise err from exc
        except BaseException:  # terminated: stop the write's Spark work on the server
            spark_watchdog.interrupt(spark, context.log)
            raise
        _keep_outcome(context.run_id, key, outcome)
        context.add_output_metadata({**output_metadata(outcome), "datahub/write_mode": target.mode})
