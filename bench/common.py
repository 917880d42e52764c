"""Shared helpers for the benchmark scripts: paths, machine facts, timed subprocesses."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / "_work"
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
DAGSTER = VENV_BIN / "dagster"
DEFINITIONS_MODULE = "datahub_assets.definitions"
DEFAULT_SPARK_STATE = ROOT / ".datahub" / "test-spark"


def machine() -> dict:
    """nproc, memory and load right now (baseline numbers are only comparable on the same box)."""
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "mem_gb": round(mem_kb / 1024 / 1024, 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "host": platform.node(),
    }


def revision() -> str:
    """The platform code measured: HEAD commit, `+dirty` when the work tree has changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "datahub_assets", "datahub_resources"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def spark_env() -> dict[str, str]:
    """Environment pointing at the shared Spark Connect server (unless the caller set one)."""
    env = dict(os.environ)
    env.setdefault("DATAHUB_SPARK_STATE", str(DEFAULT_SPARK_STATE))
    return env


def platform_env(pipelines: Path, data: Path, home: Path) -> dict[str, str]:
    """Environment for a platform run on the shared Spark server, with its own DATAHUB_HOME
    and a Dagster instance configured like `make setup` does (the repo's dagster.yaml)."""
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    env = spark_env()
    env.update(
        DATAHUB_PIPELINES_DIR=str(pipelines),
        DATAHUB_DATA_DIR=str(data),
        DATAHUB_HOME=str(home),
        DAGSTER_HOME=str(dagster_home),
    )
    return env


def definitions_present() -> bool:
    return (ROOT / "datahub_assets" / "definitions.py").exists()


@dataclass
class Timed:
    cmd: list[str]
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_mb: float
    stdout_tail: str
    stderr_tail: str

    def as_dict(self) -> dict:
        return asdict(self)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def timed_run(
    cmd: list[str],
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    timeout: float | None = None,
) -> Timed:
    """Run `cmd`, measuring wall time and the peak RSS of the process tree it waited for.

    os.wait4 gives the same rusage as `/usr/bin/time -v` (max RSS of the child and of every
    descendant it reaped), without depending on that binary.
    """
    out_path = WORK / "logs" / f"cmd-{os.getpid()}-{time.monotonic_ns()}"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        out_path.with_suffix(".out").open("w+") as out,
        out_path.with_suffix(".err").open("w+") as err,
    ):
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL
        )
        deadline = None if timeout is None else start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    return Timed(
        cmd=[str(c) for c in cmd],
        returncode=proc.returncode,
        wall_s=round(wall, 3),
        user_s=round(usage.ru_utime, 3),
        sys_s=round(usage.ru_stime, 3),
        max_rss_mb=round(usage.ru_maxrss / 1024, 1),
        stdout_tail=_tail(stdout),
        stderr_tail=_tail(stderr),
    )
