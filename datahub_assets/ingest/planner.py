"""What one sensor tick asks for: new landed files, grouped into bounded batches.

A tick lists the watched path and requests runs for files that are old enough
(`minAgeSeconds`, so a file still being written is not taken) and not already asked for.
It never decides whether a file was ingested: the run does that against the ledger
(`ingest.ledger`), so a duplicate request can waste a run but never duplicates rows.

The cursor (JSON, stored by Dagster with each tick) remembers the batches asked for and not
yet finished, as 16-hex-char fingerprints of (path, size, mtime/ETag):

    {"v": 1, "batches": {"<batch id>": {"at": <epoch s>, "files": ["<fp>", ...]}},
     "retry": {"<fp>": [<failed attempts>, <not before epoch s>]}}

A batch is forgotten once its run is no longer queued or running (its files have moved out
of landing, or they are listed again). A file whose run failed is asked for again after a
backoff that doubles per failure (poll interval x 2^attempts, at most an hour), so a broken
pipeline does not start a run every tick. A batch whose run is not found yet stays in flight
for a grace period (the daemon launches runs after the tick). Files are taken oldest first,
at most `maxFilesPerRun` per run, with at most `max_runs` batches in flight at once (runs of
one pipeline commit one after another, so queueing more gains nothing): a burst of 10,000
files becomes 20 runs of 500, a larger backlog waits in landing, the cursor stays below
`max_runs` x `maxFilesPerRun` fingerprints (190 KB at 20 x 500), and a backlog of any size
costs one listing per tick.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from datahub_assets.ingest.fileinfo import FileInfo

MAX_BACKOFF_SECONDS = 3600.0


def short_fingerprint(info: FileInfo) -> str:
    return info.fingerprint()[:16]


@dataclass
class WatchCursor:
    batches: dict[str, dict] = field(default_factory=dict)
    retry: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> WatchCursor:
        if not text:
            return cls()
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return cls()  # an unreadable cursor only costs duplicate requests, never rows
        return cls(batches=dict(data.get("batches", {})), retry=dict(data.get("retry", {})))

    def dumps(self) -> str:
        return json.dumps(
            {"v": 1, "batches": self.batches, "retry": self.retry},
            separators=(",", ":"),
            sort_keys=True,
        )

    def in_flight(self) -> set[str]:
        return {fp for batch in self.batches.values() for fp in batch["files"]}


@dataclass(frozen=True)
class Batch:
    batch_id: str
    files: tuple[FileInfo, ...]


@dataclass
class TickPlan:
    batches: list[Batch]
    cursor: WatchCursor
    listed: int = 0
    too_young: int = 0
    in_flight: int = 0
    waiting_retry: int = 0
    left_for_next_tick: int = 0

    def summary(self) -> str:
        return (
            f"listed {self.listed}, requested {sum(len(b.files) for b in self.batches)} in "
            f"{len(self.batches)} run(s); in flight {self.in_flight}, younger than "
            f"minAge {self.too_young}, waiting to retry {self.waiting_retry}, left for "
            f"the next tick {self.left_for_next_tick}"
        )


def settle(
    cursor: WatchCursor,
    now: float,
    active: set[str],
    failed: set[str],
    grace_seconds: float,
    poll_seconds: float,
    succeeded: frozenset[str] | set[str] = frozenset(),
) -> None:
    """Forget the batches whose runs ended; files of failed runs wait for a backoff. A batch
    with no run found (active or ended) stays in flight for `grace_seconds`."""
    for batch_id in list(cursor.batches):
        batch = cursor.batches[batch_id]
        ended = batch_id in failed or batch_id in succeeded
        if batch_id in active or (not ended and now - batch["at"] < grace_seconds):
            continue
        del cursor.batches[batch_id]
        if batch_id in failed:
            for fp in batch["files"]:
                attempts = cursor.retry.get(fp, [0, 0])[0] + 1
                wait = min(MAX_BACKOFF_SECONDS, poll_seconds * 2**attempts)
                cursor.retry[fp] = [attempts, now + wait]


def plan_tick(
    listing: Iterable[FileInfo],
    cursor: WatchCursor,
    now: float,
    *,
    min_age_seconds: float,
    max_files_per_run: int,
    max_runs: int,
) -> TickPlan:
    """The batches to request for `listing` (and the cursor to store with them)."""
    plan = TickPlan(batches=[], cursor=cursor)
    flying = cursor.in_flight()
    listed_fps: set[str] = set()
    new: list[tuple[FileInfo, str]] = []
    for info in listing:
        plan.listed += 1
        fp = short_fingerprint(info)
        listed_fps.add(fp)
        if now - info.modified < min_age_seconds:
            plan.too_young += 1
        elif fp in flying:
            plan.in_flight += 1
        elif fp in cursor.retry and cursor.retry[fp][1] > now:
            plan.waiting_retry += 1
        else:
            new.append((info, fp))
    # retry entries of files no longer listed (moved, replaced) are dropped
    cursor.retry = {fp: v for fp, v in cursor.retry.items() if fp in listed_fps}
    new.sort(key=lambda item: (item[0].modified, item[0].path))
    # back-pressure: at most `max_runs` batches in flight (runs of one pipeline commit one
    # after another anyway); the rest waits in landing, which keeps the cursor small
    capacity = max_files_per_run * max(0, max_runs - len(cursor.batches))
    plan.left_for_next_tick = max(0, len(new) - capacity)
    new = new[:capacity]
    for start in range(0, len(new), max_files_per_run):
        chunk = new[start : start + max_files_per_run]
        digest = hashlib.sha256(f"{now}".encode())
        for _, fp in chunk:
            digest.update(fp.encode())
        batch_id = digest.hexdigest()[:20]
        plan.batches.append(Batch(batch_id=batch_id, files=tuple(i for i, _ in chunk)))
        cursor.batches[batch_id] = {"at": now, "files": [fp for _, fp in chunk]}
    return plan
