"""A dead Spark Connect server fails the step in seconds; a terminated run stops its Spark work.

Without this, pyspark's default retry policy keeps a blocked call (and the background
ReleaseExecute calls, which keep the process from exiting) reattaching to a dead server for
~10 minutes. Two bounds:

- **Client retry budget** (every session, local or `DATAHUB_SPARK_REMOTE`): gRPC UNAVAILABLE
  and reattach failures are retried with backoff 100 ms doubling to 2 s for at most
  `DATAHUB_SPARK_RETRY_SECONDS` (default 10) per call, then the call raises. That covers a
  network blip; a Connect endpoint that restarts takes longer, loses the session anyway, and
  the step's `spark_session` retry (runtime/retries.py) reconnects.
- **Watchdog** (local server only): a daemon thread checks every
  `DATAHUB_SPARK_WATCHDOG_SECONDS` (default 1; 0 turns it off) that the server process
  recorded in `<state_dir>/server.json` is alive. When it is gone it closes the session's gRPC
  channel, so the blocked call raises at once, and `explain()` turns the step's error into
  `SparkServerDied`, naming `<state_dir>/server.log`. The retry's `connect()` then starts a
  new server (`spark_server.ensure_running`).

`interrupt()` is called when Dagster interrupts a step (SIGTERM, `dagster run terminate`, UI
Terminate): it cancels the session's operations on the server (`interruptAll`), bounded to a
few seconds, so the Spark job stops with the run.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from pyspark.sql.connect.client.retries import DefaultPolicy

from datahub_resources import spark_server

RETRY_ENV = "DATAHUB_SPARK_RETRY_SECONDS"
WATCHDOG_ENV = "DATAHUB_SPARK_WATCHDOG_SECONDS"
INTERRUPT_TIMEOUT_S = 3.0
log = logging.getLogger(__name__)


class SparkServerDied(RuntimeError):
    """The local Spark Connect server exited while a step was using it."""


def retry_policy(budget_s: float = 10.0) -> DefaultPolicy:
    """pyspark's default policy (UNAVAILABLE, RetryInfo, a preempted cursor), with retries
    bounded so their waits add up to about `budget_s` seconds instead of ~10 minutes."""
    budget_ms = 1000 * budget_s
    waits, wait, total = 0, 100.0, 0.0
    while total < budget_ms:
        waits, total, wait = waits + 1, total + wait, min(wait * 2, 2000.0)
    return DefaultPolicy(
        max_retries=waits,
        initial_backoff=100,
        backoff_multiplier=2.0,
        max_backoff=2000,
        jitter=200,
        min_jitter_threshold=2000,
        max_server_retry_delay=int(max(budget_ms, 1000)),
    )


@dataclass
class _Guard:
    url: str
    server: spark_server.ServerInfo | None
    died: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)


_guards: weakref.WeakKeyDictionary[SparkSession, _Guard] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def bound(session: SparkSession, budget_s: float = 10.0) -> None:
    """Apply the bounded retry budget (DATAHUB_SPARK_RETRY_SECONDS) to a session's client."""
    client = session.client
    client.set_retry_policies([retry_policy(budget_s)])
    # reattach after OPERATION_NOT_FOUND / a stream deadline: 1 hour by default
    client._max_retry_exception_elapsed_time = max(budget_s, 1.0)


def _server_gone(server: spark_server.ServerInfo) -> bool:
    return not spark_server._pid_alive(server.pid)


def _died_message(server: spark_server.ServerInfo) -> str:
    return (
        f"the local Spark Connect server (pid {server.pid}, {server.remote}) died while "
        f"this step was using it; see its log {server.log}. The next connection starts "
        "a new server"
    )


def _close_channel(session: SparkSession) -> None:
    # terminates every RPC in flight on it; later calls fail at once (best effort: it is
    # already broken)
    with contextlib.suppress(Exception):
        session.client._channel.close()


def _watch(ref: weakref.ref, guard: _Guard, interval: float) -> None:
    server = guard.server
    assert server is not None
    while not guard.stop.wait(interval):
        session = ref()
        if session is None or session.client.is_closed:
            return
        if _server_gone(server):
            guard.died = _died_message(server)
            log.warning("Spark watchdog: %s", guard.died)
            _close_channel(session)
            return
        del session


def watch(
    session: SparkSession,
    url: str,
    server: spark_server.ServerInfo | None,
    retry_seconds: float = 10.0,
    interval: float = 1.0,
) -> None:
    """Bound the session's retries to `retry_seconds` (DATAHUB_SPARK_RETRY_SECONDS) and, for
    a local server, check its process every `interval` s (DATAHUB_SPARK_WATCHDOG_SECONDS;
    0 turns the watchdog off), once per session."""
    with _lock:
        if session in _guards:
            return
        guard = _Guard(url=url, server=server)
        _guards[session] = guard
    bound(session, retry_seconds)
    if server is not None and interval > 0:
        threading.Thread(
            target=_watch,
            args=(weakref.ref(session), guard, interval),
            name="datahub-spark-watchdog",
            daemon=True,
        ).start()


def usable(session: SparkSession, url: str) -> bool:
    """False when a cached session talks to another URL or to a server that died."""
    guard = _guards.get(session)
    # a Spark Connect session (the classic SparkSession type has no is_stopped)
    if session.client.is_closed or getattr(session, "is_stopped", False):
        return False
    if guard is None:
        return True
    if guard.url != url or guard.died:
        return False
    return guard.server is None or not _server_gone(guard.server)


def discard(session: SparkSession) -> None:
    """Stop a session that is no longer usable (its channel closed first when its server is
    gone, so releasing it does not retry against a dead server)."""
    guard = _guards.pop(session, None)
    if guard is not None:
        guard.stop.set()
        if guard.died or (guard.server is not None and _server_gone(guard.server)):
            _close_channel(session)
    with contextlib.suppress(Exception):  # it is broken already; stopping clears the cache
        session.stop()


def died(session: SparkSession | None) -> str | None:
    """Why the session's local server is gone, or None (alive, remote, or not watched)."""
    if session is None:
        return None
    guard = _guards.get(session)
    if guard is None or guard.server is None:
        return None
    if guard.died is None and _server_gone(guard.server):
        guard.died = _died_message(guard.server)
        _close_channel(session)
    return guard.died


def explain(exc: BaseException, session: SparkSession | None) -> BaseException:
    """`exc`, or a `SparkServerDied` caused by it when the local server died under it."""
    reason = died(session)
    if reason is None or isinstance(exc, SparkServerDied):
        return exc
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    err = SparkServerDied(f"{reason} ({type(exc).__name__}: {first})")
    err.__cause__ = exc
    return err


def interrupt(session: SparkSession | None, log_to=None) -> None:
    """Cancel the session's operations on the server (a terminated step); at most a few s."""
    if session is None:
        return
    if died(session):
        return

    def cancel() -> None:
        try:
            ids = session.client.interrupt_all()
            (log_to or log).warning(
                f"step interrupted: cancelled {len(ids or [])} Spark operation(s) on the server"
            )
        except Exception as exc:  # noqa: BLE001 - best effort, the run is ending
            log.warning("interrupting Spark operations failed: %s", exc)

    worker = threading.Thread(target=cancel, name="datahub-spark-interrupt", daemon=True)
    worker.start()
    worker.join(INTERRUPT_TIMEOUT_S)
    if worker.is_alive():  # the server does not answer: stop waiting on it
        _close_channel(session)
