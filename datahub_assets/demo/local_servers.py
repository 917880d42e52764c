"""Private database servers on loopback, for tests and for `make demo` (never production).

Each server lives in a folder of its own (data, socket, log, `server.json`), listens on a free
127.0.0.1 port and is stopped by `stop()`. The same code serves the test fixtures and the
`crm` example app of `datahub demo`, so the demo runs against the servers the tests prove.

- PostgreSQL: `initdb` (Debian's `postgresql`), trust auth on loopback for the superuser
  `datahub`; `add_password_user` adds a role that must log in with a password (scram).
- MariaDB: `mariadb-install-db` (Debian's `mariadb-server`), root without a password over TCP.
- MongoDB wire protocol: the `nx-27017` server (a MongoDB-wire server on SQLite, from PyPI).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

START_TIMEOUT_S = 60


class LocalServerError(RuntimeError):
    pass


@dataclass(frozen=True)
class LocalServer:
    kind: str
    """postgres | mariadb | mongo"""
    root: str
    """Where `server.json` records the server (the caller's folder)."""
    port: int
    pid: int
    files: str = ""
    """Where the server keeps its data and log: `root`, or a folder the service user can reach
    (`_service_home`)."""

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def jdbc_url(self, database: str) -> str:
        scheme = {"postgres": "postgresql", "mariadb": "mariadb"}[self.kind]
        return f"jdbc:{scheme}://127.0.0.1:{self.port}/{database}"

    @property
    def mongo_uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    @property
    def sqlalchemy_url(self) -> str:
        """The PostgreSQL server as a SQLAlchemy URL (the Iceberg SQL catalog's form)."""
        return f"postgresql+psycopg://datahub@127.0.0.1:{self.port}/postgres"

    def alive(self) -> bool:
        return _pid_alive(self.pid) and _port_open(self.port)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie left by a server this process started counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    if state == "Z":
        with contextlib.suppress(ChildProcessError):  # not our child: its parent reaps it
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


SERVICE_BASE = Path("/var/tmp/datahub-servers")
"""Where a server run as root keeps its files when its service user cannot reach the caller's
folder: `<SERVICE_BASE>/<user>-<hash of the caller's folder>`."""


def _service_home(root: Path, user: str) -> tuple[Path, list[str]]:
    """(folder for the server's files, command prefix to run as the service user).

    Database servers refuse to run as root, so as root they run as `user` (postgres, mysql)
    in a folder handed to it. When `user` cannot reach `root` (e.g. under /root or pytest's
    private tmp dir), the files go to `SERVICE_BASE/<user>-<hash of root>` (`_private_folder`)."""
    if os.geteuid() != 0:
        return root, []
    prefix = ["runuser", "-u", user, "--"]
    subprocess.run(["chown", "-R", f"{user}:", str(root)], check=True)
    if subprocess.run(prefix + ["test", "-w", str(root)], capture_output=True).returncode == 0:
        return root, prefix
    digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
    return _private_folder(SERVICE_BASE, f"{user}-{digest}", user), prefix


def _private_folder(base: Path, name: str, user: str) -> Path:
    """`base/name`, a folder of `user`'s (mode 0700), in `base`, a folder only root writes in.

    The name is predictable and `base` lies in a world-writable folder (/var/tmp), so another
    local user could have put something there first to have root chown or chmod what it points
    to: a `base` that is a link or not root's, or a `name` that is a link or another user's
    folder, is refused (nothing is changed). A `base` left world-writable by an earlier
    version is made 0755; the folder itself is made here, or kept if it is `user`'s or root's."""
    import pwd
    import stat

    account = pwd.getpwnam(user)
    base.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        base.mkdir(mode=0o755)
    found = os.lstat(base)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != 0:
        raise LocalServerError(
            f"{base} is not a folder owned by root (a link, or another user's); the database "
            "servers keep their files below it: remove it and retry"
        )
    if found.st_mode & 0o022:
        base.chmod(0o755)  # a root-owned folder in a sticky one: no one else can swap it
    home = base / name
    with contextlib.suppress(FileExistsError):
        home.mkdir(mode=0o700)
    found = os.lstat(home)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid not in (0, account.pw_uid):
        raise LocalServerError(
            f"{home} is not a folder owned by root or {user} (a link, or another user's); "
            "remove it and retry"
        )
    os.chown(home, account.pw_uid, account.pw_gid, follow_symlinks=False)
    home.chmod(0o700)
    return home


def _wait(proc_pid: int, port: int, log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        if not _pid_alive(proc_pid):
            break
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise LocalServerError(f"{what} did not start on port {port}; log {log}:\n{tail}")


def _record(server: LocalServer) -> LocalServer:
    (Path(server.root) / "server.json").write_text(json.dumps(asdict(server)))
    return server


def running(root: Path) -> LocalServer | None:
    """The server recorded in `root`, if it is up."""
    state = root / "server.json"
    if not state.exists():
        return None
    server = LocalServer(**json.loads(state.read_text()))
    return server if server.alive() else None


# ----------------------------------------------------------------------------- PostgreSQL


def pg_bin() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not candidates:
        raise LocalServerError("PostgreSQL binaries not found: `make setup` installs `postgresql`")
    return candidates[-1].parent


def start_postgres(root: Path, port: int | None = None) -> LocalServer:
    """A private PostgreSQL cluster in `root` (made on first use, reused after), on `port`
    (default: a free one)."""
    root.mkdir(parents=True, exist_ok=True)
    up = running(root)
    if up is not None:
        return up
    home, prefix = _service_home(root, "postgres")
    bin_dir, data, log = pg_bin(), home / "data", home / "pg.log"
    if not (data / "PG_VERSION").exists():
        subprocess.run(
            prefix
            + [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "datahub",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            check=True,
            capture_output=True,
        )
    port = port or free_port()
    subprocess.run(
        prefix
        + [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(log),
            "-o",
            f"-p {port} -k {home} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    pid = int((data / "postmaster.pid").read_text().split()[0])
    return _record(LocalServer("postgres", str(root), port, pid, str(home)))


def add_password_user(server: LocalServer, user: str, password: str) -> None:
    """A role that must authenticate with `password` (scram-sha-256) over TCP, superuser so
    tests can use it for anything; other roles keep trust."""
    import psycopg
    from psycopg import sql

    hba = Path(server.files) / "data" / "pg_hba.conf"
    line = f"host all {user} 127.0.0.1/32 scram-sha-256\n"
    text = hba.read_text()
    if line not in text:
        hba.write_text(line + text)
    with psycopg.connect(
        host="127.0.0.1", port=server.port, user="datahub", dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (user,)).fetchone()
        verb = "alter" if exists else "create"
        conn.execute(
            sql.SQL("{} role {} with login superuser password {}").format(
                sql.SQL(verb), sql.Identifier(user), sql.Literal(password)
            )
        )
        conn.execute("select pg_reload_conf()")


def create_database(server: LocalServer, name: str) -> None:
    """`create database` on a PostgreSQL or MariaDB server, if it is not there yet."""
    if server.kind == "postgres":
        import psycopg
        from psycopg import sql

        with psycopg.connect(
            host="127.0.0.1", port=server.port, user="datahub", dbname="postgres", autocommit=True
        ) as conn:
            if (
                conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
                is None
            ):
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        return
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=server.port, user="root", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"create database if not exists `{name}`")
    finally:
        conn.close()


# -------------------------------------------------------------------------------- MariaDB


def start_mariadb(root: Path, port: int | None = None) -> LocalServer:
    """A private MariaDB server in `root` (datadir made on first use), on `port` (default: a
    free one)."""
    root.mkdir(parents=True, exist_ok=True)
    up = running(root)
    if up is not None:
        return up
    mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    install = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
    if not Path(mariadbd).exists():
        raise LocalServerError("MariaDB not found: `make setup` installs `mariadb-server`")
    home, prefix = _service_home(root, "mysql")
    data, log = home / "data", home / "mariadb.log"
    user = ["--user=mysql"] if prefix else []
    if not (data / "mysql").exists():
        subprocess.run(
            prefix
            + [
                install,
                f"--datadir={data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *user,
            ],
            check=True,
            capture_output=True,
        )
    port = port or free_port()
    cmd = [
        mariadbd,
        "--no-defaults",
        f"--datadir={data}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--socket={home / 'mariadb.sock'}",
        f"--pid-file={home / 'mariadb.pid'}",
        f"--log-error={log}",
        "--skip-grant-tables=0",
        "--innodb-buffer-pool-size=64M",
        "--skip-log-bin",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_unicode_ci",
        *user,
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait(proc.pid, port, log, "MariaDB")
    return _record(LocalServer("mariadb", str(root), port, proc.pid, str(home)))


# -------------------------------------------------------------------- MongoDB wire (nx-27017)


def start_mongo(root: Path, port: int | None = None) -> LocalServer:
    """The `nx-27017` MongoDB-wire server with its SQLite files in `root`, on `port` (default:
    a free one)."""
    root.mkdir(parents=True, exist_ok=True)
    up = running(root)
    if up is not None:
        return up
    port, log = port or free_port(), root / "mongo.log"
    exe = Path(sys.executable).parent / "nx-27017"
    cmd = [
        str(exe) if exe.exists() else "nx-27017",
        "--data-dir",
        str(root / "data"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-file",
        str(log),
        "--pid-file",
        str(root / "mongo.pid"),
    ]
    (root / "data").mkdir(exist_ok=True)
    with (root / "mongo.out").open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _wait(proc.pid, port, log, "nx-27017 (MongoDB wire)")
    return _record(LocalServer("mongo", str(root), port, proc.pid, str(root)))


# ---------------------------------------------------------------------------------- stop


def stop(root: Path, purge: bool = False) -> bool:
    """Stop the server recorded in `root`; True if one was running. `purge` also deletes its
    files when they live outside `root` (tests: the caller removes `root` itself)."""
    state = root / "server.json"
    if not state.exists():
        return False
    server = LocalServer(**json.loads(state.read_text()))
    state.unlink()
    was_running = _pid_alive(server.pid)
    if was_running:
        _terminate(server)
    files = Path(server.files) if server.files else root
    if purge and files.resolve() != root.resolve():
        shutil.rmtree(files, ignore_errors=True)
    return was_running


def _terminate(server: LocalServer) -> None:
    if server.kind == "postgres":
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            prefix
            + [
                str(pg_bin() / "pg_ctl"),
                "-D",
                str(Path(server.files) / "data"),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
            capture_output=True,
        )
    else:
        os.kill(server.pid, signal.SIGTERM)
    for _ in range(100):
        if not _pid_alive(server.pid):
            return
        time.sleep(0.1)
    os.kill(server.pid, signal.SIGKILL)
