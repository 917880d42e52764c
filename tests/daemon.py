"""The one harness that runs the real `dagster-daemon` for end-to-end tests and benchmarks
(tests/e2e/test_file_drop_daemon.py, tests/e2e/test_postgres_instance.py, bench/chaos.py).

`Daemon(env, log)` starts `dagster-daemon run -m datahub_assets.definitions` in its own
session (so a stop reaches its whole process tree: the sensor/schedule threads' code-location
server and the run workers it launched), appends its output to `log` (or writes one file per
start when `log` contains `{n}`), and stops it with SIGTERM to the group, SIGKILL after a
grace period. `stop(reap=True)` also kills run workers that outlived the daemon (a worker
started a session of its own, or was orphaned by a kill of the daemon pid alone): every
process whose DAGSTER_HOME is the daemon's. `kill()` is the chaos fault: SIGKILL of the pid
or of the whole group, no cleanup.

Only the standard library: bench/ imports it without pytest.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODULE = "datahub_assets.definitions"

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str, log: Path) -> T:
    """Poll `predicate` every 2 s until it returns something truthy, and return that; after
    `timeout` s fail with the tail of the daemon log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(2)
    tail = log.read_text()[-8000:] if log.exists() else "(no log)"
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; daemon log:\n{tail}")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def processes() -> list[tuple[int, int, str, str]]:
    """(pid, ppid, cmdline, DAGSTER_HOME) of every process this user can read."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ")
            env = Path(f"/proc/{entry.name}/environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        home = next((e[12:].decode() for e in env if e.startswith(b"DAGSTER_HOME=")), "")
        out.append((int(entry.name), ppid, cmd.decode(errors="replace"), home))
    return out


class Daemon:
    """A `dagster-daemon run` in its own session (module doc)."""

    def __init__(
        self,
        env: dict[str, str],
        log: Path,
        cwd: Path = REPO,
        module: str = MODULE,
        on_start: Callable[[int], None] | None = None,
    ) -> None:
        self.env, self.log, self.cwd, self.module = env, log, cwd, module
        self.on_start = on_start
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the daemon was never started")
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_path(self, n: int | None = None) -> Path:
        """The log of start `n` (default: the latest)."""
        n = self.starts - 1 if n is None else n
        return Path(str(self.log).format(n=max(n, 0)))

    def start(self) -> None:
        path = Path(str(self.log).format(n=self.starts))
        with path.open("a") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-m", self.module],
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        if self.on_start is not None:
            self.on_start(self.proc.pid)

    def kill(self, group: bool = True) -> None:
        """SIGKILL of the daemon's process group (or of its pid alone); waits for the pid."""
        if self.proc is None:
            return
        try:
            if group:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
                os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def stop(self, timeout: float = 60, reap: bool = False) -> None:
        """SIGTERM to the group, SIGKILL after `timeout` s; `reap`: then kill every process
        left with this daemon's DAGSTER_HOME (orphaned run workers)."""
        if self.running:
            assert self.proc is not None
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if reap:
            self.reap()

    def reap(self) -> list[int]:
        """Kill the dagster processes of this daemon's DAGSTER_HOME that are still alive."""
        home = self.env.get("DAGSTER_HOME")
        killed = []
        if not home:
            return killed
        for pid, _, cmd, proc_home in processes():
            if proc_home == home and "dagster" in cmd and pid != os.getpid():
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
        return killed

    def __enter__(self) -> Daemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
