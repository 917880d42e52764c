"""A long-lived local Spark Connect server, started once and shared by every step process.

A classic SparkSession costs ~5 s of JVM start per process and Dagster runs each step in
its own process, so steps connect (~0.5 s) to one server instead. Starting is race-free
across processes: an exclusive file lock guards "is it up? else start it", and the
server's port and pid are recorded in `<state_dir>/server.json`.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pyspark

from datahub_resources import s3
from datahub_resources.settings import Settings, environ

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
JDBC_JARS = (  # Debian packages libpostgresql-jdbc-java and libmariadb-java
    "/usr/share/java/postgresql.jar",
    "/usr/share/java/mariadb-java-client.jar",
)
START_TIMEOUT_S = 120


class SparkServerError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    port: int
    log: str

    @property
    def remote(self) -> str:
        return f"sc://localhost:{self.port}"


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _pid_alive(pid: int) -> bool:
    try:  # a server this process started and that exited: reap it (a zombie looks alive)
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """`pid` exited and waits for a parent to reap it: a server started by an earlier
    command (`datahub spark start`) is re-parented to PID 1, which need not reap it (a
    container's init may not), so it stays a zombie after it died."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"  # the state follows "(comm)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _locked(state_dir: Path):
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "server.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def status(state_dir: Path) -> ServerInfo | None:
    """The running server recorded in state_dir, or None."""
    state = state_dir / "server.json"
    if not state.exists():
        return None
    info = ServerInfo(**json.loads(state.read_text()))
    if _pid_alive(info.pid) and _port_open(info.port):
        return info
    return None


def _spark_conf(settings: Settings) -> dict[str, str]:
    return {
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.session.timeZone": "UTC",
        # pyiceberg reads Parquet timestamps as INT64 micros, not Spark's legacy INT96.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.shuffle.partitions": settings.spark_shuffle_partitions,
        "spark.sql.adaptive.enabled": "true",
        "spark.ui.enabled": settings.spark_ui,
        "spark.ui.showConsoleProgress": "false",
        "spark.connect.session.manager.defaultSessionTimeout": "60min",
    }


def _write_properties(state_dir: Path, conf: dict[str, str]) -> Path:
    path = state_dir / "s3a.properties"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for key, value in conf.items():
            f.write(f"{key} {value}\n")
    path.chmod(0o600)
    return path


def _ours(pid: int) -> bool:
    """`pid` is still a Spark Connect server process (not a reused pid)."""
    try:
        return SERVER_CLASS.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _kill_group(pid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # started with start_new_session: pgid == pid


def _reap_unserving(state_dir: Path) -> None:
    """A server recorded in server.json whose process lives but that does not serve (its
    starter was killed before the port opened, or it hung): kill it, forget it. Called under
    the lock, so never while another process is starting it."""
    state = state_dir / "server.json"
    if not state.exists():
        return
    info = ServerInfo(**json.loads(state.read_text()))
    if _pid_alive(info.pid) and not _port_open(info.port) and _ours(info.pid):
        _kill_group(info.pid)
    state.unlink(missing_ok=True)


def ensure_running(state_dir: Path, settings: Settings | None = None) -> ServerInfo:
    """Return the shared server, starting it first if none is up. Safe to call concurrently.
    A new server starts with the DATAHUB_SPARK_* settings (`settings`, else read now)."""
    with _locked(state_dir):
        info = status(state_dir)
        if info is not None:
            return info
        _reap_unserving(state_dir)
        return _start(state_dir, settings or Settings.from_env())


def _start(state_dir: Path, settings: Settings) -> ServerInfo:
    spark_home = Path(pyspark.__file__).parent
    process_env = environ()
    if shutil.which("java") is None and not process_env.get("JAVA_HOME"):
        raise SparkServerError(
            "Java 17 is required to start the local Spark Connect server: install "
            "openjdk-17-jre-headless (make setup does), or set DATAHUB_SPARK_REMOTE."
        )
    port = settings.spark_port or _free_port()
    log = state_dir / "server.log"
    cmd = [str(spark_home / "bin" / "spark-submit"), "--class", SERVER_CLASS]
    cmd += [
        "--name",
        "datahub-spark-connect",
        "--master",
        settings.spark_master,
    ]
    # JDBC drivers and the S3A connector (scripts/fetch_jars.sh); spark.jars also ships them
    # to the executors of a standalone cluster (DATAHUB_SPARK_MASTER)
    jars = [j for j in JDBC_JARS if Path(j).exists()] + s3.connector_jars(
        jars_root=settings.jars_dir
    )
    if jars:
        cmd += ["--jars", ",".join(jars)]
    conf = _spark_conf(settings) | {"spark.connect.grpc.binding.port": str(port)}
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    # S3 endpoint and credentials (AWS_* environment) in a file only this user can read:
    # never on the command line, where `ps` would show the secret key
    cmd += ["--properties-file", str(_write_properties(state_dir, s3.hadoop_conf()))]
    cmd.append("spark-internal")
    env = dict(process_env) | {"SPARK_HOME": str(spark_home), "SPARK_LOG_DIR": str(state_dir)}
    # Python workers (mapInArrow, UDFs) run this interpreter, so the venv's pymongo and
    # pyarrow are importable there; an explicit PYSPARK_PYTHON in the environment wins.
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=state_dir,
            start_new_session=True,
        )
    # recorded at once: a starter killed (-9) before the port opens leaves a pid that the
    # next ensure_running / stop finds and kills (_reap_unserving), not an unknown JVM
    info = ServerInfo(pid=proc.pid, port=port, log=str(log))
    (state_dir / "server.json").write_text(json.dumps(info.__dict__))
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SparkServerError(
                    f"Spark Connect server exited with code {proc.returncode}; see {log}"
                )
            if _port_open(port):
                return info
            time.sleep(0.25)
        raise SparkServerError(
            f"Spark Connect server did not listen within {START_TIMEOUT_S}s; see {log}"
        )
    except BaseException:  # also SIGTERM/interrupt of the starting run: no JVM left behind
        _kill_group(proc.pid)
        proc.wait()
        (state_dir / "server.json").unlink(missing_ok=True)
        raise


def stop(state_dir: Path) -> bool:
    """Stop the recorded server; True if one was running."""
    with _locked(state_dir):
        info = status(state_dir)
        if info is None:
            _reap_unserving(state_dir)
            return False
        (state_dir / "server.json").unlink(missing_ok=True)
        os.killpg(os.getpgid(info.pid), signal.SIGTERM)
        for _ in range(80):
            if not _pid_alive(info.pid):
                break
            time.sleep(0.25)
        else:
            os.killpg(os.getpgid(info.pid), signal.SIGKILL)
        return True
