"""Which engine runs a pipeline, and why (issue 12).

The requested engine is the pipeline's `engine=`, else its app.yaml's `engine:`, else the
deployment's DATAHUB_ENGINE (`requested_engine`). At run time `choose` turns it into spark or
duckdb:

- the run tag `datahub/engine=spark|duckdb` (`override`) wins for that run;
- `spark` / `duckdb` as requested;
- `auto`: Spark when the pipeline has something DuckDB cannot run (`PipelineSpec.
  duckdb_blockers`: database/mongo sources, database targets, Spark SQL that does not
  translate), or when the size of an input cannot be told; else DuckDB when its inputs total
  at most `settings.engine_auto_max_bytes` (DATAHUB_ENGINE_AUTO_MAX_MB), else Spark.

Inputs are the files of its csv/json/parquet sources (the batch for a file-drop run; else
what the path matches, locally or on S3) and the current snapshot of each Iceberg table it
reads (its summary's `total-files-size`, metadata only; a table not written yet counts 0).
Lookup files (small by design) are not counted. DuckDB on a pipeline with a blocker is
refused: at load for an explicit engine="duckdb" (spec/engine_rules.py), at run time
(`EngineRefused`) for the run tag.
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from datahub_assets.spec.engine_rules import blockers_of, resolve_requested
from datahub_assets.spec.models import (
    ENGINE_NAMES,
    CsvSource,
    JsonSource,
    ParquetSource,
    PipelineSpec,
    TableSource,
)

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from datahub_resources.settings import Settings

RUN_TAG = "datahub/engine"
MB = 1024 * 1024
_S3 = ("s3://", "s3a://")


@dataclass(frozen=True)
class Choice:
    """The engine a run uses and why (recorded in the materialisation metadata)."""

    engine: Literal["spark", "duckdb"]
    reason: str
    """Human text, e.g. `auto: inputs 12.3 MB ≤ 2048 MB → duckdb`."""
    requested: str
    """spark, duckdb or auto: what the definition (or the run tag) asked for."""
    input_bytes: int | None = None
    """The inputs' total size when `auto` measured it; None otherwise."""
    origin: str = ""
    """Where `requested` came from: `pipeline <file>:<line>`, `app.yaml`, `DATAHUB_ENGINE` or
    `run tag datahub/engine`."""


class EngineRefused(ValueError):
    """DuckDB was asked for a pipeline it cannot run (the message lists why)."""


def requested_engine(spec: PipelineSpec, settings: Settings) -> tuple[str, str]:
    """(engine, origin): spark, duckdb or auto, and where it was set: `pipeline <file>:<line>`
    (the pipeline's engine=), `app.yaml`, or `DATAHUB_ENGINE` (the deployment default)."""
    return resolve_requested(
        spec.pipeline.engine, spec.app_engine, settings.engine, spec.file, spec.line
    )


def choose(
    spec: PipelineSpec,
    settings: Settings,
    catalog: Catalog | None,
    override: str | None = None,
    files: Mapping[str, Iterable[str]] | None = None,
) -> Choice:
    """The engine of one run of `spec` (see the module docstring). `override`: the run tag
    `datahub/engine` (spark, duckdb; auto re-applies the size rule). `files`: source id -> the
    paths of a file-drop batch, counted instead of the source's whole path. `catalog`: where
    table sources are sized (None: the platform catalog of `settings`, opened only if needed).
    Raises EngineRefused for DuckDB on a pipeline with a blocker, ValueError for an unknown
    `override`."""
    requested, origin = requested_engine(spec, settings)
    if override is not None and override.strip():
        value = override.strip().lower()
        if value not in ENGINE_NAMES:
            raise ValueError(
                f"run tag {RUN_TAG}={override!r} is not an engine; allowed: "
                + ", ".join(ENGINE_NAMES)
            )
        requested, origin = value, f"run tag {RUN_TAG}"
    if requested == "spark":
        return Choice("spark", f"engine=spark ({origin})", requested, origin=origin)
    if requested == "duckdb":
        _refuse_blocked(spec, origin)
        return Choice("duckdb", f"engine=duckdb ({origin})", requested, origin=origin)
    return _auto(spec, settings, catalog, files, origin)


def _refuse_blocked(spec: PipelineSpec, origin: str) -> None:
    blockers = blockers_of(spec)
    if blockers:
        raise EngineRefused(
            f"pipeline {spec.key} cannot run on DuckDB (engine=duckdb from {origin}): "
            + "; ".join(str(b) for b in blockers)
        )


def _auto(
    spec: PipelineSpec,
    settings: Settings,
    catalog: Catalog | None,
    files: Mapping[str, Iterable[str]] | None,
    origin: str,
) -> Choice:
    blockers = blockers_of(spec)
    if blockers:
        first, *rest = blockers
        more = f" (and {len(rest)} more)" if rest else ""
        why = f"auto: {first}{more} → spark"
        return Choice("spark", why, "auto", origin=origin)
    total, unknown = input_bytes(spec, settings, catalog, files)
    if unknown:
        why = f"auto: the size of {unknown[0]} is unknown → spark"
        return Choice("spark", why, "auto", origin=origin)
    limit = settings.engine_auto_max_bytes
    if total <= limit:
        why = f"auto: inputs {human_size(total)} ≤ {limit / MB:g} MB → duckdb"
        return Choice("duckdb", why, "auto", total, origin)
    why = f"auto: inputs {human_size(total)} > {limit / MB:g} MB → spark"
    return Choice("spark", why, "auto", total, origin)


def human_size(n: int) -> str:
    """`512 bytes`, `12.3 KB`, `12.3 MB` (binary units, as DATAHUB_ENGINE_AUTO_MAX_MB)."""
    if n < 1024:
        return f"{n} bytes"
    if n < MB:
        return f"{n / 1024:.1f} KB"
    return f"{n / MB:.1f} MB"


# ------------------------------------------------------------------------------ sizes


def input_bytes(
    spec: PipelineSpec,
    settings: Settings,
    catalog: Catalog | None,
    files: Mapping[str, Iterable[str]] | None = None,
    s3_client_factory: Callable[[], Any] | None = None,
) -> tuple[int, list[str]]:
    """(total bytes of the pipeline's inputs, what could not be sized): file sources' files
    (`files[source id]` when given, else what the path matches) and table sources' current
    snapshots. An input that cannot be sized is named in the list and counts 0. S3 paths are
    listed with `s3_client_factory`'s client (default: boto3's, configured by the
    environment)."""
    s3 = _S3Stores(s3_client_factory)
    total, unknown = 0, []
    opened: list[Catalog] = [catalog] if catalog is not None else []
    for src in spec.pipeline.sources:
        try:
            if isinstance(src, CsvSource | JsonSource | ParquetSource):
                batch = files.get(src.id) if files is not None else None
                if batch is not None:
                    paths = [settings.data_path(spec.app, p) for p in batch]
                    total += _batch_bytes(paths, settings.data_path(spec.app, src.path), s3)
                else:
                    total += _path_bytes(settings.data_path(spec.app, src.path), s3)
            elif isinstance(src, TableSource) and src.id in spec.source_refs:
                if not opened:
                    from datahub_resources.iceberg import load_catalog

                    opened.append(load_catalog(settings))
                size = _table_bytes(opened[0], spec.source_refs[src.id].identifier)
                if size is None:
                    unknown.append(f'table source "{src.id}" (no total-files-size in its snapshot)')
                else:
                    total += size
        except Exception as exc:  # noqa: BLE001 - any failure to size an input means "unknown"
            first = (str(exc).splitlines() or [""])[0][:160]
            unknown.append(f'source "{src.id}" ({type(exc).__name__}: {first})')
    return total, unknown


def _table_bytes(catalog: Catalog, identifier: str) -> int | None:
    """`total-files-size` of the table's current snapshot; 0 for a table not created or never
    written; None when the summary does not say."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    try:
        table = catalog.load_table(identifier)
    except (NoSuchTableError, NoSuchNamespaceError):
        return 0
    snapshot = table.current_snapshot()
    if snapshot is None:
        return 0
    size = snapshot.summary.get("total-files-size") if snapshot.summary else None
    return int(size) if size is not None else None


_LIST_ABOVE = 20  # S3 batches larger than this are sized from one listing, not a HEAD each


def _batch_bytes(paths: list[str], pattern: str, s3: _S3Stores) -> int:
    """The sizes of a file-drop batch's files (a file gone since counts 0): local files by
    stat; S3 objects by one listing of the source's pattern for a large batch, else (and for
    objects the listing misses) a HEAD each."""
    total = 0
    remote = []
    for path in paths:
        if path.startswith(_S3):
            remote.append(path)
            continue
        with contextlib.suppress(FileNotFoundError):
            total += Path(_local(path)).lstat().st_size  # a link is rejected, never read
    if not remote:
        return total
    store = s3.store()
    listed: dict[str, int] = {}
    if len(remote) > _LIST_ABOVE and pattern.startswith(_S3):
        listed = {i.path: i.size for p in expand_braces(pattern) for i in store.list(p)}
    for path in remote:
        if path in listed:
            total += listed[path]
        else:
            info = store.stat(path)
            total += info.size if info is not None else 0
    return total


def _path_bytes(path: str, s3: _S3Stores) -> int:
    """Bytes of what a source path reads: the files its glob matches (Hadoop `{a,b}` braces
    expanded), folders counted with every file below them (names starting with `_` or `.`
    skipped, as Spark does)."""
    total, seen = 0, set()
    for pattern in expand_braces(path):
        for found in _matches(pattern, s3):
            if found.path not in seen:
                seen.add(found.path)
                total += found.size
    return total


@dataclass(frozen=True)
class _Found:
    path: str
    size: int


def _matches(pattern: str, s3: _S3Stores) -> Iterable[_Found]:
    if pattern.startswith(_S3):
        return _s3_matches(pattern, s3.store())
    return _local_matches(_local(pattern))


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def _hidden(name: str) -> bool:
    return name.startswith(("_", "."))


def _local_matches(pattern: str) -> Iterable[_Found]:
    for match in glob.glob(pattern):  # noqa: PTH207 - an absolute pattern, wildcards anywhere
        if Path(match).is_dir():
            for folder, dirs, names in os.walk(match):
                dirs[:] = [d for d in dirs if not _hidden(d)]
                for name in names:
                    if not _hidden(name):
                        full = Path(folder) / name
                        yield _Found(str(full), full.stat().st_size)
        else:
            yield _Found(match, Path(match).stat().st_size)


class _S3Stores:
    """One S3 store per sizing, made on first use."""

    def __init__(self, factory: Callable[[], Any] | None) -> None:
        self.factory = factory
        self._store: Any = None

    def store(self) -> Any:
        if self._store is None:
            from datahub_assets.ingest.store import default_s3_client, store_for

            self._store = store_for("s3://", self.factory or default_s3_client)
        return self._store


def _s3_matches(pattern: str, store: Any) -> Iterable[_Found]:
    from datahub_assets.ingest.paths import has_magic

    if not has_magic(pattern):
        info = store.stat(pattern)
        if info is not None:
            return [_Found(info.path, info.size)]
        pattern = pattern.rstrip("/") + "/**"  # a folder: everything below it
    return [_Found(i.path, i.size) for i in store.list(pattern)]


def expand_braces(pattern: str) -> list[str]:
    """`a/{x,y}/*.csv` -> [`a/x/*.csv`, `a/y/*.csv`] (nested braces too; an unclosed `{` is
    literal)."""
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    depth = 0
    parts: list[str] = []
    last = start + 1
    for i in range(start, len(pattern)):
        char = pattern[i]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                parts.append(pattern[last:i])
                head, tail = pattern[:start], pattern[i + 1 :]
                return [
                    expanded for part in parts for expanded in expand_braces(head + part + tail)
                ]
        elif char == "," and depth == 1:
            parts.append(pattern[last:i])
            last = i + 1
    return [pattern]


__all__: list[str] = [
    "RUN_TAG",
    "Choice",
    "EngineRefused",
    "choose",
    "expand_braces",
    "human_size",
    "input_bytes",
    "requested_engine",
]
