"""Bounded retries of transient failures, for every pipeline step (asset or job).

A pipeline run is all-or-nothing (writes are staged, then committed in one catalog
transaction; a failure before the commit leaves every table as it was), so rerunning the
step is safe. Failures are classified by walking the exception chain (type, then message);
only these classes are retried, each with its own budget and exponential backoff
(`delay_s * 2**retry_number`, capped at 5 minutes):

- `spark_server_died`: the local Spark Connect server process died under the step
  (`SparkServerDied`, raised by `datahub_resources.spark_watchdog`, naming the server log):
  1 retry, first wait 1 s; the retry's connection starts a new server. One retry, not 3: a
  server that dies again on the same work (out of memory, a crashing plan) would die on
  every attempt, each costing a server start;
- `spark_session`: the Spark Connect session or channel is gone (server restarted, session
  expired or released, gRPC UNAVAILABLE, the channel closed): 3 retries, first wait 2 s;
- `commit_conflict`: another run committed first (Iceberg `CommitFailedException`, main
  moved while publishing, the watermark changed under the run): 3 retries, first wait 1 s;
- `db_connection`: a database connection dropped or was refused (SQLSTATE class 08,
  "Connection reset", "Lost connection", "server closed the connection"): 3 retries, first
  wait 3 s.

Anything else (bad data, a failed blocking check, a definition error) fails at once. Before a
`spark_session` retry the dead session is dropped, so the retry opens a new one.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg


@dataclass(frozen=True)
class RetryClass:
    name: str
    max_retries: int
    delay_s: float

    def wait(self, retry_number: int) -> float:
        return min(self.delay_s * 2**retry_number, 300.0)


SPARK_SERVER_DIED = RetryClass("spark_server_died", 1, 1.0)
SPARK_SESSION = RetryClass("spark_session", 3, 2.0)
COMMIT_CONFLICT = RetryClass("commit_conflict", 3, 1.0)
DB_CONNECTION = RetryClass("db_connection", 3, 3.0)

_SERVER_DIED = re.compile(r"SparkServerDied|Spark Connect server \(pid \d+.*\) died", re.I)
_SPARK = re.compile(
    r"NO_ACTIVE_SESSION|SESSION_CLOSED|SESSION_NOT_FOUND|SESSION_CHANGED|INVALID_HANDLE\.(OPERATION|SESSION)"
    r"|StatusCode\.UNAVAILABLE|failed to connect to all addresses|Cannot invoke RPC on closed "
    r"channel|Channel closed|Socket closed|GOAWAY|RST_STREAM",
    re.I,
)
_CONFLICT = re.compile(
    r"CommitFailedException|ConcurrentCommitError|another run committed|main moved from"
    r"|concurrent(ly)? (commit|modif)|changed while this run was reading"
    r"|branch main (has )?(changed|moved)|Requirement failed: .*(snapshot|branch)",
    re.I,
)
_DB = re.compile(
    r"SQLSTATE\W*08\d{3}|SQLState: 08|Connection reset|connection attempt failed|Connection "
    r"refused|Communications link failure|Lost connection to|server closed the connection "
    r"unexpectedly|I/O error occurred while sending to the backend|terminating connection due "
    r"to administrator command|Broken pipe",
    re.I,
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def classify(exc: BaseException) -> RetryClass | None:
    """The transient class of a failure, or None (not retried)."""
    from pyiceberg.exceptions import CommitFailedException

    chain = list(_chain(exc))
    if any(isinstance(e, CommitFailedException) for e in chain):
        return COMMIT_CONFLICT
    text = "\n".join(f"{type(e).__name__}: {e}" for e in chain)
    for cls, pattern in (
        (SPARK_SERVER_DIED, _SERVER_DIED),
        (SPARK_SESSION, _SPARK),
        (DB_CONNECTION, _DB),
        (COMMIT_CONFLICT, _CONFLICT),
    ):
        if pattern.search(text):
            return cls
    return None


def drop_session(session) -> None:
    """Forget a dead Spark Connect session so the next `get_session()` opens a new one."""
    # it is already broken; stopping only clears the cache
    with contextlib.suppress(Exception):
        session.stop()


def transient_retry(
    context: dg.OpExecutionContext,
    exc: BaseException,
    session=None,
    at_least: int = 0,
    policy_wait: float | None = None,
) -> None:
    """Raise `dg.RetryRequested` when `exc` is transient and the step has retries left.

    `at_least`/`policy_wait`: a job's onFailure="retry" budget and first wait, which apply to
    any failure; the larger budget wins."""
    cls = classify(exc)
    budget = max(cls.max_retries if cls else 0, at_least)
    number = context.retry_number
    if number >= budget:
        return
    if cls is None and policy_wait is None:
        return
    wait = cls.wait(number) if cls else min(policy_wait * 2**number, 3600.0)
    if cls in (SPARK_SESSION, SPARK_SERVER_DIED) and session is not None:
        drop_session(session)
    what = cls.name if cls else "onFailure=retry"
    context.log.warning(
        f"{what}: attempt {number + 1} of {budget + 1} failed "
        f"({type(exc).__name__}: {str(exc)[:300]}); retrying in {wait:.1f} s"
    )
    raise dg.RetryRequested(max_retries=budget, seconds_to_wait=wait) from exc
