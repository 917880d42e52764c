"""CSV exports (contract 4.3 `csv` target), atomic for readers on local paths.

strftime codes in the path (`%Y/%m/%d`) expand from the run date. Spark writes the files in
parallel into a hidden temporary sibling folder; only after the write succeeded is it
renamed into place: `overwrite` swaps the old folder out (and then deletes it), `append`
moves the new files into the existing folder (each file appears whole), `error` fails and
`ignore` does nothing when the folder already exists. Spark's `_SUCCESS` and `.crc` side
files are removed. s3:// paths use Spark's writer directly (S3 has no rename): readers may
see a partially written export there. The row count comes from one `count()` of the frame,
locally checkpointed first so the write does not recompute it. On the DuckDB engine DuckDB
writes the files (`engines.duckdb_write.write_csv_folder`: Spark's file names, folders,
quoting and value formats), on S3 too (`write_csv_s3`: Spark's save modes).
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from datahub_assets.engines import duckdb_write
from datahub_assets.spec.models import CsvTarget
from datahub_resources import s3


@dataclass(frozen=True)
class ExportResult:
    path: str
    files: tuple[str, ...]
    rows: int
    skipped: bool = False


def expand_path(path: str, run_date: date) -> str:
    """`exports/%Y/%m/%d/x` -> `exports/2024/03/01/x` (any strftime code; `%%` is `%`)."""
    return run_date.strftime(path) if "%" in path else path


def _options(target: CsvTarget) -> dict[str, str]:
    return {
        "header": str(target.header).lower(),
        "sep": target.delimiter,
        "compression": target.compression,
    }


def _writer(df: DataFrame, target: CsvTarget, mode: str):
    writer = df.write.mode(mode).options(**_options(target))
    if target.partition_by:
        writer = writer.partitionBy(*target.partition_by)
    return writer


def _clean(folder: Path) -> tuple[str, ...]:
    """Remove Spark's side files; return the data files, relative to `folder`."""
    files = []
    for root, _, names in os.walk(folder):
        for name in names:
            full = Path(root) / name
            if name == "_SUCCESS" or name.endswith(".crc"):
                full.unlink()
            else:
                files.append(str(full.relative_to(folder)))
    return tuple(sorted(files))


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file:")


def write_csv(
    spark: SparkSession, df: DataFrame, target: CsvTarget, path: str, run_date: date
) -> ExportResult:
    """Export `df` as CSV to `path` (after strftime expansion) following `target`."""
    del spark  # the frame carries its session; kept for a uniform writer signature
    path = expand_path(path, run_date)
    if not _is_local(path):
        df = df.localCheckpoint()
        rows = df.count()
        if duckdb_write.is_duckdb(df):
            duckdb_write.write_csv_s3(
                df,
                path,
                target.mode,
                list(target.partition_by),
                target.header,
                target.delimiter,
                target.compression,
            )
        else:
            _writer(df, target, target.mode).csv(s3.to_spark(path))
        return ExportResult(path=path, files=(), rows=rows)

    final = Path(path.removeprefix("file://")).absolute()
    if final.exists() and target.mode == "error":
        raise FileExistsError(f"CSV export {final} already exists (mode=error)")
    if final.exists() and target.mode == "ignore":
        return ExportResult(path=str(final), files=(), rows=0, skipped=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex}"
    try:
        df = df.localCheckpoint()
        rows = df.count()
        if duckdb_write.is_duckdb(df):
            duckdb_write.write_csv_folder(
                df,
                str(tmp),
                list(target.partition_by),
                target.header,
                target.delimiter,
                target.compression,
            )
        else:
            _writer(df, target, "error").csv(str(tmp))
        files = _clean(tmp)
        if target.mode == "append" and final.exists():
            for rel in files:
                dest = final / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).replace(dest)
            shutil.rmtree(tmp)
            return ExportResult(
                path=str(final), files=tuple(str(final / f) for f in files), rows=rows
            )
        if final.exists():  # overwrite: swap the old folder out only now
            old = final.parent / f".{final.name}.old-{uuid.uuid4().hex}"
            final.replace(old)
            tmp.replace(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.replace(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(path=str(final), files=tuple(str(final / f) for f in files), rows=rows)
