"""CSV exports (contract 4.3 `csv` target), atomic for readers on local paths.

strftime codes in the path (`%Y/%m/%d`) expand from the run date. Spark writes the files in
parallel into a hidden temporary sibling folder; only after the write succeeded is it
renamed into place: `overwrite` swaps the old folder out (and then deletes it), `append`
moves the new files into the existing folder (each file appears whole), `error` fails and
`ignore` does nothing when the folder already exists. Spark's `_SUCCESS` and `.crc` side
files are removed. s3:// paths use Spark's writer directly (S3 has no rename): readers may
see a partially written export there. The row count comes from one `count()` of the frame,
locally checkpointed first so the write does not recompute it. The engine that made the
frame writes the files (`WriteOps.write_csv_folder` / `write_csv_remote`): on DuckDB with
Spark's file names, folders, quoting and value formats, on S3 with Spark's save modes.

Every export folder (local or S3) carries a `_DATAHUB_EXPORT` marker naming the target that
wrote it (`owner`, the target's asset key). `overwrite` replaces only an empty folder or one
holding this target's marker: a folder of other files, another target's export, a symbolic
link or a file at the path is refused before anything is written or deleted. `append` into a
folder it did not create adds no marker (appending claims nothing). Readers skip the marker
as they skip `_SUCCESS` (Spark/Hadoop ignore `_`-prefixed files; `*.csv` globs miss it).
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from datahub_assets.engines.frames import write_ops_of
from datahub_assets.spec.models import CsvTarget
from datahub_resources import s3

MARKER = "_DATAHUB_EXPORT"


@dataclass(frozen=True)
class ExportResult:
    path: str
    files: tuple[str, ...]
    rows: int
    skipped: bool = False


def expand_path(path: str, run_date: date) -> str:
    """`exports/%Y/%m/%d/x` -> `exports/2024/03/01/x` (any strftime code; `%%` is `%`)."""
    return run_date.strftime(path) if "%" in path else path


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


def _check_replaceable(where: str, marker: str | None, has_files: bool, owner: str) -> None:
    """Raise unless the folder at `where` (its marker's text, whether it holds anything) may
    be replaced by an export of `owner`."""
    if marker is None and has_files:
        raise FileExistsError(
            f"CSV export to {where} refused (mode=overwrite): the folder holds files and no "
            f"{MARKER} marker, so it is no earlier export of {owner}; nothing was deleted. "
            "Export to another path, or move those files away (an export written before "
            f"markers existed: add the file {where}/{MARKER} holding the line {owner})"
        )
    found = (marker or "").strip()
    if marker is not None and found != owner:
        raise FileExistsError(
            f"CSV export to {where} refused (mode=overwrite): the folder is the export of "
            f"{found[:200] or '(an empty marker)'}, not of {owner}; nothing was deleted. Give each "
            "target a path of its own"
        )


def _local_marker(folder: Path) -> str | None:
    marker = folder / MARKER
    return marker.read_text("utf-8", errors="replace") if marker.is_file() else None


def _check_local(final: Path, owner: str) -> None:
    """`final` (which exists) may be replaced by `owner`'s export: a real folder, empty or
    holding `owner`'s marker."""
    if final.is_symlink():
        raise FileExistsError(
            f"CSV export to {final} refused (mode=overwrite): it is a symbolic link; nothing "
            "was deleted. Export to the real folder's path"
        )
    if not final.is_dir():
        raise FileExistsError(
            f"CSV export to {final} refused (mode=overwrite): it is not a folder; nothing was "
            "deleted"
        )
    _check_replaceable(str(final), _local_marker(final), any(final.iterdir()), owner)


def _s3_client():
    from datahub_assets.ingest.store import default_s3_client

    return default_s3_client()


def _s3_key(path: str) -> tuple[str, str]:
    """(bucket, key prefix of the folder's objects: "" or ending in "/")."""
    bucket, _, key = path.split("://", 1)[1].partition("/")
    key = key.strip("/")
    return bucket, f"{key}/" if key else ""


def _s3_state(client, path: str) -> tuple[bool, str | None]:
    """(objects below the s3:// folder `path`?, its marker's text or None)."""
    bucket, prefix = _s3_key(path)
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    try:
        body = client.get_object(Bucket=bucket, Key=prefix + MARKER)["Body"].read()
    except client.exceptions.NoSuchKey:
        return bool(listed.get("KeyCount")), None
    return True, body.decode("utf-8", errors="replace")


def _write_remote(df: DataFrame, target: CsvTarget, path: str, owner: str) -> ExportResult:
    """An export to an s3:// folder: the overwrite check and the marker through boto3 (other
    URI schemes have no marker check: only append/error/ignore write there)."""
    client = _s3_client() if s3.is_s3(path) else None
    existed = False
    if client is not None:
        existed, marker = _s3_state(client, path)
        if target.mode == "overwrite":
            _check_replaceable(path, marker, existed, owner)
    elif target.mode == "overwrite":
        raise FileExistsError(
            f"CSV export to {path} refused (mode=overwrite): only local and s3:// folders "
            f"can be checked for this target's {MARKER} marker; use mode=append, error or ignore"
        )
    df = df.localCheckpoint()
    rows = df.count()
    write_ops_of(df).write_csv_remote(
        df,
        path,
        target.mode,
        list(target.partition_by),
        target.header,
        target.delimiter,
        target.compression,
    )
    if client is not None and (target.mode == "overwrite" or not existed):
        bucket, prefix = _s3_key(path)
        client.put_object(Bucket=bucket, Key=prefix + MARKER, Body=f"{owner}\n".encode())
    return ExportResult(path=path, files=(), rows=rows)


def write_csv(
    spark: SparkSession,
    df: DataFrame,
    target: CsvTarget,
    path: str,
    run_date: date,
    owner: str | None = None,
) -> ExportResult:
    """Export `df` as CSV to `path` (after strftime expansion) following `target`. `owner`:
    the target's identity written into the folder's marker (the runner passes its asset key
    `app.layer.name`; default: `csv:<name or path>` of `target`)."""
    del spark  # the frame carries its session; kept for a uniform writer signature
    owner = owner or f"csv:{target.name or target.path}"
    path = expand_path(path, run_date)
    if not _is_local(path):
        return _write_remote(df, target, path, owner)

    final = Path(path.removeprefix("file://")).absolute()
    exists = final.exists() or final.is_symlink()
    if exists and target.mode == "error":
        raise FileExistsError(f"CSV export {final} already exists (mode=error)")
    if exists and target.mode == "ignore":
        return ExportResult(path=str(final), files=(), rows=0, skipped=True)
    if exists and target.mode == "overwrite":
        _check_local(final, owner)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex}"
    try:
        df = df.localCheckpoint()
        rows = df.count()
        write_ops_of(df).write_csv_folder(
            df,
            str(tmp),
            list(target.partition_by),
            target.header,
            target.delimiter,
            target.compression,
        )
        files = _clean(tmp)
        (tmp / MARKER).write_text(f"{owner}\n", "utf-8")
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
