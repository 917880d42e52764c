"""Shared pieces of the file readers: path checks, schemaRef loading, the source's files as the
engine asks for them (`SourceFiles`), the engine's read errors as the source's (`read_with`)."""

from __future__ import annotations

import glob
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from glob import has_magic
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

from datahub_assets.engines.read_ops import FileReadError, NoFileMatches
from datahub_assets.execute import schemas
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.sources import SourceError

__all__ = [
    "SourceError",
    "SourceFiles",
    "check_exists",
    "local_files",
    "read_with",
    "schema_for",
]


def _local(path: str) -> str | None:
    """The filesystem path of a local path (plain or file://), else None."""
    if path.startswith("file://"):
        return path[len("file://") :]
    return None if "://" in path else path


def check_exists(path: str, source_id: str) -> None:
    """A local path or glob must match at least one file or folder.

    Hadoop brace patterns (`{a,b}`) and remote paths (s3://) are left to the engine, whose
    error `read_with` translates.
    """
    local = _local(path)
    if local is None or "{" in local:
        return
    # glob.glob takes an absolute pattern with wildcards in any folder, as Spark does;
    # Path.glob takes only patterns relative to a fixed folder
    if not glob.glob(local):  # noqa: PTH207
        raise SourceError(f"source {source_id!r}: no file matches path {path!r}")


def schema_for(ref: str, ctx: ExecContext) -> StructType:
    """The StructType of a schemaRef (relative to the app folder, or s3://)."""
    path = ctx.app_path(ref)
    local = _local(path)
    return schemas.schema_for(ctx.spec, ref, local if local is not None else path)


def local_files(pattern: str, parquet: bool = False) -> list[str]:
    """The files a local path, folder or glob names, as Spark lists them (a folder: every file
    below it that is not hidden or `_`-prefixed); `parquet`: no `_`/`.` file either."""
    path = Path(pattern)
    if path.is_dir():
        found = sorted(
            str(p)
            for p in path.rglob("*")
            if p.is_file() and not any(part[:1] in "._" for part in p.relative_to(path).parts)
        )
    else:
        found = sorted(p for p in glob.glob(pattern) if Path(p).is_file())  # noqa: PTH207
    if parquet:
        return [p for p in found if not Path(p).name.startswith(("_", "."))]
    return found


@dataclass(frozen=True)
class SourceFiles:
    """The files of a file source's `path` (`engines.read_ops.FileSet`): the path itself for
    an engine that reads it (Spark), or local copies (DuckDB: its httpfs extension cannot be
    installed offline, so the objects of an s3:// path are downloaded into the run's folder,
    `s3_folder`, and removed once read)."""

    path: str
    source_id: str
    ctx: ExecContext

    def local_files(self, parquet: bool = False) -> list[str]:
        local = _local(self.path)
        if local is None:
            if not self.path.startswith(("s3://", "s3a://")):
                raise SourceError(
                    f"source {self.source_id!r}: {self.path!r}: the DuckDB engine reads local "
                    "files and s3:// objects only"
                )
            files = s3_download(self.path, self.source_id, self.ctx, parquet)
        else:
            files = local_files(local, parquet)
        if not files:
            raise SourceError(f"source {self.source_id!r}: no file matches path {self.path!r}")
        return files

    def local_root(self) -> str | None:
        local = _local(self.path)
        if local is None:  # downloaded S3 objects keep their keys under the run folder
            key = self.path.split("://", 1)[1].rstrip("/")
            local = str(s3_folder(self.ctx, self.source_id) / key)
            return local if not has_magic(key) else None
        return local if Path(local).is_dir() else None

    def download_folder(self) -> str | None:
        if _local(self.path) is not None:
            return None
        return str(s3_folder(self.ctx, self.source_id))

    def release(self) -> None:
        shutil.rmtree(s3_folder(self.ctx, self.source_id), ignore_errors=True)


def s3_folder(ctx: ExecContext, source_id: str) -> Path:
    """Where the S3 objects of a source are downloaded for an engine reading local files:
    below the pipeline's own work folder (two pipelines of a run may have sources of one id)."""
    return ctx.work_folder / "_s3" / source_id


def s3_download(path: str, source_id: str, ctx: ExecContext, parquet: bool) -> list[str]:
    """Download the objects matching `path` (a glob; a folder for parquet: every object below
    it) to `s3_folder/<bucket>/<key>`; the local paths."""
    from datahub_assets.ingest.store import default_s3_client, store_for

    store = store_for(path, ctx.s3_client or default_s3_client, ctx.settings)
    pattern = path
    if parquet and store.stat(path) is None:  # a folder of part files
        pattern = path.rstrip("/") + "/**"
    folder = s3_folder(ctx, source_id)
    out = []
    for info in sorted(store.list(pattern), key=lambda i: i.path):
        key = info.path.split("://", 1)[1]
        if parquet and Path(key).name.startswith(("_", ".")):
            continue
        target = folder / key
        target.parent.mkdir(parents=True, exist_ok=True)
        Path(store.localize(info.path, str(target.parent / ".dl"))).replace(target)
        out.append(str(target))
    return out


def read_with(files: SourceFiles, read: Callable[[], DataFrame]) -> DataFrame:
    """`read()`, an engine's read of `files`; what the engine rejects is the source's
    `SourceError` (naming the source id and the path)."""
    try:
        return read()
    except NoFileMatches:
        raise SourceError(
            f"source {files.source_id!r}: no file matches path {files.path!r}"
        ) from None
    except FileReadError as exc:
        raise SourceError(f"source {files.source_id!r} ({files.path}): {exc}") from None
