"""File drops inside a run: take the batch, validate it, skip what was ingested, read the rest
with lineage columns, and after the commit move every file out of landing.

1. `plan_batch`: the files of each watched source, as requested by the sensor (run config
   `files.<source id>`) or, for a run started by hand, the oldest `maxFilesPerRun` settled
   files the path matches now. A file
   that is gone, outside the watched path or younger than `minAgeSeconds` is left alone (it
   stays in landing). Each file is validated (`ingest.validate`); an invalid file moves to
   `rejected/<date>/` at once with `<file>.reason.json`. Valid files whose fingerprint the
   ledger already holds (a crash after the commit, a retried run, a second request) are not
   read again: they only move to processed/.
2. `read_drops` (one loop for both engines; the engine reads each group of files,
   `engines.read_ops`): Spark reads the valid files from one work folder per read, so Spark
   lists one path, not hundreds: local files through hard links (a private copy where hard
   links are refused; never through a symbolic link, `ingest.store`) in
   `$DATAHUB_HOME/ingest/<run id>/<app>.<pipeline>/`; S3 objects through server-side copies
   (pinned to the validated ETag, so a file replaced since validation fails the run instead
   of being read) under `<root>_ingest/<run id>/<app>.<pipeline>/` in the same bucket
   (`<root>` is where processed/ and rejected/ go; listings never enter `_` folders), read by
   Spark straight from S3 (`s3a://`), so a remote cluster reads them too. DuckDB reads the
   links in the same work folder, S3 objects downloaded there. The pipeline in the
   path keeps the steps of one run apart (the multiprocess executor runs several pipelines of
   a run at once, and source ids are unique only within a pipeline). The work folder is
   removed after the step (the run folder with its last pipeline). CSV files
   are read per distinct header and unioned by column name, so a file with reordered
   columns cannot shift values. Every row gets `_source_file` (the path
   as landed), `_ingested_at` (the run's ingest time) and `_run_id`.
3. The runner commits the table targets and the ledger entries (`ledger_entries`,
   `ledger_change`) in one catalog transaction (`iceberg.tables.write_tables`).
4. `finish`: ingested and already-ingested files move to `processed/<date>/` (with their
   sidecars). A move that fails leaves the file in landing; the ledger makes the next run
   move it without ingesting it again. A move never replaces a file: when the name is taken
   (the same name dropped again that day) the file gets `<name>.<8 hex of its fingerprint>`
   before the extension (`paths.renamed`), as do rejected files and their reasons; the
   ledger's `moved_to` names the place chosen.

Symbolic links in landing are never followed (`ingest.store`): a link is rejected (rule
`symlink`; the link itself moves to rejected/, its target is untouched), and a requested file
below a linked folder is left where it is (`skipped`), neither read nor moved.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table
from pyspark.sql import Column, DataFrame

from datahub_assets.engines.api import F, T
from datahub_assets.engines.read_ops import CORRUPT, LINEAGE_COLUMNS, Lineage, StagedFolder
from datahub_assets.execute.context import ExecContext, work_name
from datahub_assets.execute.readers._files import schema_for
from datahub_assets.execute.readers.csv import csv_format
from datahub_assets.iceberg.multi_commit import TableChange, change_of
from datahub_assets.ingest import paths
from datahub_assets.ingest.fileinfo import FileInfo
from datahub_assets.ingest.ledger import LedgerEntry, ingested, ledger_ref, ledger_transaction
from datahub_assets.ingest.store import (
    FileStore,
    LinkRefused,
    S3Store,
    default_s3_client,
    store_for,
)
from datahub_assets.ingest.validate import Rejection, reason_document, validate_file
from datahub_assets.spec.models import PipelineSpec, TableRef
from datahub_resources import s3

INGEST, REJECTED, DUPLICATE = "ingest", "rejected", "duplicate"


@dataclass
class DropFile:
    source_id: str
    info: FileInfo
    status: str
    fingerprint: str = ""
    checksum: str | None = None
    header: tuple[str, ...] | None = None
    rejection: Rejection | None = None
    previous: LedgerEntry | None = None
    moved_to: str | None = None
    move_error: str | None = None
    local: str | None = None
    """The local file the engine reads (work-folder link, copy or download)."""
    dest: str | None = None
    """Where the file goes (processed/ or rejected/), once chosen: the ledger's `moved_to`."""
    sidecars: tuple[str, ...] | None = None
    """Its checksum sidecars found in landing, once looked for."""
    invalid_rows: int = 0
    """Malformed/invalid records of the file that were quarantined or dropped."""

    def summary(self) -> dict:
        out = {
            "file": self.info.path,
            "source": self.source_id,
            "status": self.status,
            "size": self.info.size,
        }
        if self.rejection:
            out.update(rule=self.rejection.rule, reason=self.rejection.message)
        if self.previous:
            out["ingested_by_run"] = self.previous.run_id
        if self.moved_to:
            out["moved_to"] = self.moved_to
        if self.move_error:
            out["move_error"] = self.move_error
        if self.invalid_rows:
            out["invalid_rows"] = self.invalid_rows
        return out


@dataclass
class DropBatch:
    ledger: TableRef
    ingested_at: datetime
    workdir: Path
    files: list[DropFile] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(path, why) of requested files left in landing (gone, too young, not watched)."""
    stores: dict[str, FileStore] = field(default_factory=dict)
    patterns: dict[str, str] = field(default_factory=dict)
    run_id: str = ""
    staged: list[str] = field(default_factory=list)
    """S3 copies made for the engine to read (removed by `cleanup`)."""

    def with_status(self, status: str, source_id: str | None = None) -> list[DropFile]:
        return [
            f
            for f in self.files
            if f.status == status and (source_id is None or f.source_id == source_id)
        ]

    @property
    def has_rows(self) -> bool:
        return bool(self.with_status(INGEST))

    def metadata(self) -> dict:
        """Counts and per-file outcomes for the materialisation / observation in the UI."""
        return {
            "files_ingested": len(self.with_status(INGEST)),
            "files_rejected": len(self.with_status(REJECTED)),
            "files_already_ingested": len(self.with_status(DUPLICATE)),
            "files_left_in_landing": len(self.skipped),
            "files": [f.summary() for f in self.files][:200],
            "ledger_table": self.ledger.identifier,
        }


def plan_batch(
    spec: PipelineSpec,
    ctx: ExecContext,
    catalog: Catalog,
    requested: dict[str, list[str]] | None,
    s3_client: Callable | None = None,
    now: float | None = None,
) -> DropBatch:
    """Step 1 of the module doc. Rejected files are already moved when this returns."""
    batch = DropBatch(
        ledger=ledger_ref(spec.app, spec.pipeline.id),
        ingested_at=datetime.now(UTC),
        workdir=ctx.settings.home / "ingest" / ctx.run_id / work_name(spec),
        run_id=ctx.run_id,
    )
    now = now if now is not None else batch.ingested_at.timestamp()
    for source in spec.watched_sources:
        pattern = ctx.data_path(source.path)
        store = store_for(pattern, s3_client or default_s3_client, ctx.settings)
        batch.stores[source.id], batch.patterns[source.id] = store, pattern
        if requested is not None and source.id in requested:
            infos = _requested(store, pattern, requested[source.id], batch)
        else:  # started by hand: the oldest maxFilesPerRun settled files
            settled = [
                i for i in store.list(pattern) if now - i.modified >= source.watch.min_age_seconds
            ]
            infos = sorted(settled, key=lambda i: (i.modified, i.path))[
                : source.watch.max_files_per_run
            ]
        expected = schema_for(source.schema_ref, ctx) if source.schema_ref else None
        for info in sorted(set(infos), key=lambda i: (i.modified, i.path)):
            if now - info.modified < source.watch.min_age_seconds:
                batch.skipped.append(
                    (info.path, f"younger than minAgeSeconds={source.watch.min_age_seconds}")
                )
                continue
            result = validate_file(store, info, source, expected)
            if isinstance(result, Rejection):
                batch.files.append(
                    DropFile(source.id, info, REJECTED, info.fingerprint(), rejection=result)
                )
            else:
                batch.files.append(
                    DropFile(
                        source.id,
                        info,
                        INGEST,
                        info.fingerprint(result.checksum),
                        checksum=result.checksum,
                        header=result.header,
                    )
                )
    valid = [f for f in batch.files if f.status == INGEST]
    if valid:
        seen = ingested(catalog, batch.ledger, [f.fingerprint for f in valid])
        for f in valid:
            if f.fingerprint in seen:
                f.status, f.previous = DUPLICATE, seen[f.fingerprint]
    for f in batch.with_status(REJECTED):
        _reject(batch, f, ctx, spec)
    for path, why in batch.skipped:
        ctx.log.info("file drop %s left in landing: %s", path, why)
    return batch


def _requested(
    store: FileStore, pattern: str, wanted: list[str], batch: DropBatch
) -> list[FileInfo]:
    regex = paths.glob_regex(pattern)
    infos = []
    for path in dict.fromkeys(wanted):
        if not regex.fullmatch(path) or paths.is_lifecycle_path(path, pattern):
            batch.skipped.append((path, f"not a file of the watched path {pattern}"))
            continue
        try:
            info = store.stat(path)
        except LinkRefused as exc:  # below a linked folder: neither read nor moved
            batch.skipped.append((path, str(exc)))
            continue
        if info is None:
            batch.skipped.append((path, "no longer in landing (moved or deleted)"))
        else:
            infos.append(info)
    return infos


def _sidecars(batch: DropBatch, f: DropFile) -> tuple[str, ...]:
    """The checksum sidecars of `f` in landing (looked for once)."""
    if f.sidecars is None:
        store = batch.stores[f.source_id]
        f.sidecars = tuple(s for s in paths.sidecars(f.info.path) if store.exists(s))
    return f.sidecars


def _free_destination(batch: DropBatch, f: DropFile, folder: str, ctx: ExecContext) -> str:
    """Where `f` goes in `folder` ("processed" or "rejected") on the run date: its own name
    (`paths.destination`) unless a file of that name (or of one of its sidecars) is already
    there; then the name with the first 8 hex of its fingerprint, else with a random token,
    before the extension (`paths.renamed`). A reason file alone does not take a name: it is
    the one a run that crashed before its move left for this file."""
    store = batch.stores[f.source_id]
    plain = paths.destination(f.info.path, batch.patterns[f.source_id], folder, ctx.run_date)
    companions = [s[len(f.info.path) :] for s in _sidecars(batch, f)]
    tokens = [f.fingerprint[:8], *(uuid.uuid4().hex[:8] for _ in range(3))]
    for dest in [plain, *(paths.renamed(plain, t) for t in tokens if t)]:
        if not any(store.exists(dest + c) for c in ["", *companions]):
            return dest
    return paths.renamed(plain, uuid.uuid4().hex)


def _move_with_sidecars(
    batch: DropBatch, f: DropFile, dest: str, folder: str, ctx: ExecContext
) -> str:
    """Move `f`, then its sidecars, to `dest`, or to another free name when a file of the
    same name took `dest` since it was chosen (a move never replaces); where it went."""
    store, path = batch.stores[f.source_id], f.info.path
    try:
        store.move(path, dest)
    except FileExistsError:
        taken, dest = dest, _free_destination(batch, f, folder, ctx)
        store.move(path, dest)
        ctx.log.warning("file drop %s: %s was taken meanwhile, moved to %s", path, taken, dest)
    for sidecar in _sidecars(batch, f):
        store.move(sidecar, dest + sidecar[len(path) :])
    return dest


def _reject(batch: DropBatch, f: DropFile, ctx: ExecContext, spec: PipelineSpec) -> None:
    store = batch.stores[f.source_id]
    assert f.rejection is not None, "a rejected file carries its rejection"
    document = reason_document(f.rejection, f.info, ctx.run_id, f.source_id, spec.key)
    reason = json.dumps(document, indent=2) + "\n"
    try:
        dest = f.dest = _free_destination(batch, f, "rejected", ctx)
        # the reason first: a crash before the move leaves the file in landing to be
        # rejected again, never a rejected file without its reason
        store.write_text(dest + ".reason.json", reason)
        f.moved_to = _move_with_sidecars(batch, f, dest, "rejected", ctx)
        if f.moved_to != dest:
            store.write_text(f.moved_to + ".reason.json", reason)
    except Exception as exc:  # noqa: BLE001 - reported, the file stays in landing
        f.move_error = f"{type(exc).__name__}: {exc}"
    ctx.log.warning(
        "file drop %s rejected (%s): %s", f.info.path, f.rejection.rule, f.rejection.message
    )


def reject_batch(
    batch: DropBatch, ctx: ExecContext, spec: PipelineSpec, rejection: Rejection
) -> None:
    """Refuse every file the run was ingesting (a blocking check failed on their rows)."""
    for f in batch.with_status(INGEST):
        f.status, f.rejection = REJECTED, rejection
        _reject(batch, f, ctx, spec)


def reject_files(
    batch: DropBatch, ctx: ExecContext, spec: PipelineSpec, rejections: dict[str, Rejection]
) -> None:
    """Refuse the files of the batch named in `rejections` (landed path -> why), e.g. the files
    holding malformed records under onInvalid="fail"."""
    for f in batch.with_status(INGEST):
        if f.info.path in rejections:
            f.status, f.rejection = REJECTED, rejections[f.info.path]
            _reject(batch, f, ctx, spec)


def finish(batch: DropBatch, ctx: ExecContext) -> None:
    """Step 4: move ingested and already-ingested files to processed/<date>/."""
    for f in batch.with_status(INGEST) + batch.with_status(DUPLICATE):
        dest = f.dest
        try:
            if dest is None:
                dest = f.dest = _free_destination(batch, f, "processed", ctx)
            f.moved_to = _move_with_sidecars(batch, f, dest, "processed", ctx)
        except Exception as exc:  # noqa: BLE001 - the ledger lets the next run move it
            f.move_error = f"{type(exc).__name__}: {exc}"
            ctx.log.warning(
                "file drop %s was ingested but could not be moved to %s (%s); "
                "the next run moves it without ingesting it again",
                f.info.path,
                dest,
                f.move_error,
            )
    cleanup(batch)


def cleanup(batch: DropBatch) -> None:
    """Remove the pipeline's work folder (the run folder too once no other pipeline of the
    run has one there) and its S3 copies."""
    shutil.rmtree(batch.workdir, ignore_errors=True)
    with contextlib.suppress(OSError):  # not empty: another pipeline of the run is at work
        batch.workdir.parent.rmdir()
    if batch.staged:
        store = next(s for s in batch.stores.values() if isinstance(s, S3Store))
        with contextlib.suppress(Exception):  # best effort: a leftover copy is never listed
            store.delete_many(batch.staged)
        batch.staged = []


# ---------------------------------------------------------------------------------- reading


def _name(f: DropFile, index: int) -> str:
    ext = (
        "".join(Path(f.info.path).suffixes[-2:])
        if f.info.path.endswith(".gz")
        else Path(f.info.path).suffix
    )
    return f"{index:06d}{ext}"


def _make_folder(folder: Path) -> None:
    """`mkdir -p` that outlasts another pipeline of the run removing the (then empty) run
    folder between two of its steps (`cleanup`)."""
    for _ in range(5):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return
        except FileNotFoundError:
            continue
    folder.mkdir(parents=True, exist_ok=True)


def _link(batch: DropBatch, f: DropFile, folder: Path, index: int) -> str:
    """`f` as `<folder>/<index><ext>`, a local file the engine reads: a hard link (it
    survives a concurrent move of the original), else a copy or an S3 download; never
    through a symbolic link (`FileStore.materialize` raises LinkRefused)."""
    _make_folder(folder)
    target = folder / _name(f, index)
    if not os.path.lexists(target):
        batch.stores[f.source_id].materialize(f.info.path, str(target))
    return str(target)


def _s3_folder(
    batch: DropBatch, store: S3Store, files: list[DropFile], source_id: str, group: int
) -> StagedFolder:
    """`_Group.folder` on S3: server-side copies of the validated object versions, in parallel.
    The engine reaches the bucket as the run's S3 client does (`s3.bucket_conf`: the `s3`
    resource's own endpoint and keys for MinIO-like stores, as session settings)."""
    pattern = batch.patterns[source_id]
    match = paths.compiled(pattern).root.match(files[0].info.path)
    root = match["root"] if match else paths.static_prefix(pattern)
    run = batch.run_id or batch.workdir.parent.name
    folder = f"{root}_ingest/{run}/{batch.workdir.name}/{source_id}/g{group}/"
    names = {_name(f, i): f.info.path for i, f in enumerate(files)}
    targets = [folder + name for name in names]
    batch.staged += targets
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(
            pool.map(
                lambda ft: store.copy_version(ft[0].info.path, ft[1], ft[0].info.etag),
                zip(files, targets, strict=True),
            )
        )
    bucket = folder.split("://", 1)[1].split("/", 1)[0]
    return StagedFolder(folder, names, s3.bucket_conf(store.client, bucket))


@dataclass(frozen=True)
class _Group:
    """One group of a batch's files read together (`engines.read_ops.DropFiles`), staged in
    the form the engine asks for."""

    batch: DropBatch
    files: list[DropFile]
    source_id: str
    index: int

    def folder(self) -> StagedFolder:
        """The files in one folder the engine reads whole: a read of N paths makes Spark
        Connect list the N paths again at every analysis of the plan, as a distributed job
        above 32 paths (measured 2.45 s per analysis at 500 paths, 0.19 s for one folder).
        Local files: links in the run folder; S3 objects: copies in their bucket."""
        store = self.batch.stores[self.source_id]
        if isinstance(store, S3Store):
            return _s3_folder(self.batch, store, self.files, self.source_id, self.index)
        folder = self.batch.workdir / self.source_id / f"g{self.index}"
        names = {}
        for i, f in enumerate(self.files):
            f.local = _link(self.batch, f, folder, i)
            names[Path(f.local).name] = f.info.path
        return StagedFolder(str(folder), names)

    def local_files(self) -> dict[str, str]:
        """{local file: landed path}: links in the run folder (S3 objects downloaded there)."""
        folder = self.batch.workdir / self.source_id / f"g{self.index}"
        out = {}
        for i, f in enumerate(self.files):
            f.local = _link(self.batch, f, folder, i)
            out[str(Path(f.local).absolute())] = f.info.path
        return out


def _col(name: str) -> Column:
    """The column `name`, whatever characters it holds (backquoted, backquotes doubled)."""
    return F.col("`" + name.replace("`", "``") + "`")


def _csv_schema(header: tuple[str, ...], declared: T.StructType | None) -> T.StructType | None:
    """Read schema of one header group: declared types by (case-insensitive) name, the
    rest strings; None without a declared schema (the engine names the columns from the
    header)."""
    if declared is None:
        return None
    by_name = {f.name.lower(): f for f in declared.fields}
    return T.StructType(
        [
            T.StructField(
                c, by_name[c.lower()].dataType if c.lower() in by_name else T.StringType()
            )
            for c in header
        ]
    )


def _header_groups(source, files: list[DropFile]) -> dict[tuple[str, ...] | None, list[DropFile]]:
    """CSV files by header (files with another column order are read apart); one group
    without a header row."""
    groups: dict[tuple[str, ...] | None, list[DropFile]] = {}
    for f in files:
        groups.setdefault(f.header if source.header else None, []).append(f)
    return groups


def _declared_names(df: DataFrame, declared: T.StructType, header: tuple[str, ...]) -> DataFrame:
    """The header's columns under the schemaRef's names (matched case-insensitively), in the
    schema's order, then the helper and lineage columns."""
    return df.select(
        *[
            _col(c).alias(d.name)
            for d in declared.fields
            for c in header
            if c.lower() == d.name.lower()
        ],
        CORRUPT,
        *LINEAGE_COLUMNS,
    )


def read_drops(source, ctx: ExecContext, batch: DropBatch) -> DataFrame:
    """Step 2 of the module doc: the valid new files of `source` with lineage columns.
    `source` may be a copy without schemaRef (onInvalid reads raw values first). csv and
    json frames carry the helper column `_corrupt_record` (`execute.malformed`). The engine
    reads each group (`engines.read_ops`: `read_drop_csv`, `read_drop_json`,
    `read_drop_parquet`), asking it for the folder or the local files it reads."""
    engine = ctx.active_engine
    files = batch.with_status(INGEST, source.id)
    declared = schema_for(source.schema_ref, ctx) if source.schema_ref else None
    lineage = Lineage(batch.ingested_at, ctx.run_id)
    frames: list[DataFrame] = []
    if source.kind == "csv":
        fmt = csv_format(source)
        infer = bool(source.infer_schema) and declared is None
        for n, (header, group) in enumerate(_header_groups(source, files).items()):
            schema = _csv_schema(header, declared) if header else declared
            staged = _Group(batch, group, source.id, n)
            df = engine.read_drop_csv(staged, fmt, schema, infer, lineage)
            if declared is not None and header:
                df = _declared_names(df, declared, header)
            frames.append(df)
    else:
        staged = _Group(batch, files, source.id, 0)
        if source.kind == "json":
            df = engine.read_drop_json(staged, bool(source.multiline), declared, lineage)
        else:
            df = engine.read_drop_parquet(staged, lineage)
        if source.kind == "parquet" and declared is not None:
            df = df.select(*[_col(d.name) for d in declared.fields], *LINEAGE_COLUMNS)
        frames.append(df)
    result = frames[0]
    for other in frames[1:]:
        result = result.unionByName(other, allowMissingColumns=True)
    return result


def empty_drops(source, ctx: ExecContext) -> DataFrame:
    """No valid new file for `source` (another watched source of the pipeline has some):
    an empty frame with the declared columns, if any, and the lineage columns."""
    declared = schema_for(source.schema_ref, ctx) if source.schema_ref else T.StructType()
    schema = T.StructType(
        list(declared.fields)
        + [
            T.StructField("_source_file", T.StringType()),
            T.StructField("_ingested_at", T.TimestampType()),
            T.StructField("_run_id", T.StringType()),
        ]
    )
    return ctx.active_engine.empty_frame(schema)


# ---------------------------------------------------------------------------------- ledger


def ledger_change(table: Table, entries: list[LedgerEntry]) -> TableChange:
    """The uncommitted change adding `entries` to the ledger `table`
    (`ingest.ledger.ledger_transaction`), for `commit_tables` with the data it describes."""
    return change_of(ledger_transaction(table, entries))


def ledger_entries(
    batch: DropBatch, ctx: ExecContext, snapshot_id: int | None, rows_by_file: dict[str, int]
) -> list[LedgerEntry]:
    """Ledger rows of this run: every ingested file (with its row count when the table keeps
    `_source_file`) and every rejected one."""
    entries = []
    for f in batch.with_status(INGEST) + batch.with_status(REJECTED):
        entries.append(
            LedgerEntry(
                fingerprint=f.fingerprint,
                source_id=f.source_id,
                path=f.info.path,
                size=f.info.size,
                modified=datetime.fromtimestamp(f.info.modified, UTC),
                etag=f.info.etag,
                checksum=f.checksum,
                status="ingested" if f.status == INGEST else "rejected",
                invalid_rows=f.invalid_rows if f.status == INGEST else None,
                rule=f.rejection.rule if f.rejection else None,
                reason=f.rejection.message if f.rejection else None,
                rows=rows_by_file.get(f.info.path, 0 if rows_by_file else None)
                if f.status == INGEST
                else None,
                moved_to=_ledger_destination(batch, f, ctx),
                run_id=ctx.run_id,
                snapshot_id=snapshot_id if f.status == INGEST else None,
                ingested_at=batch.ingested_at,
            )
        )
    return entries


def _ledger_destination(batch: DropBatch, f: DropFile, ctx: ExecContext) -> str:
    """The `moved_to` of `f`: where a rejected file went (or was to go), where an ingested
    one will go once the commit is done (chosen now, `finish` keeps it)."""
    if f.status == REJECTED:
        return f.moved_to or f.dest or _free_destination(batch, f, "rejected", ctx)
    if f.dest is None:
        f.dest = _free_destination(batch, f, "processed", ctx)
    return f.dest
