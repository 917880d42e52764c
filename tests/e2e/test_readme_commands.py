"""Everything README.md tells users to type in "Everyday commands" runs and does what it says.

The table is PARSED from README.md: every command in its first column must have a case here
(a new row without one fails the test, naming it), the options each case passes must be
written in the README's own syntax, and where the README lists alternatives
(`status|start|stop`, `--source csv|json|...`, `--format csv|json`) each alternative is run.
So edits to the README are followed: a renamed option or a new alternative is run as
written, or the test says what is missing.

Each command runs as a user runs it (the installed `datahub`/`dg`/`make` entry points, cwd the
repository) against a private project home: a copy of the example apps, its own data dir,
catalog, Dagster instance and crm servers on free ports; Spark work goes to the tests' shared
Spark Connect server (DATAHUB_SPARK_STATE, tests/conftest.py), except `datahub spark
start|stop`, which start and stop a private one so the shared server is never stopped.
Each command must exit 0 and show a real effect (rows in a table, a snapshot moved, a file
written or moved, a server port answering, output naming a table). Failures are collected
and reported together, one line per command, so one broken command does not hide the rest.
A command that fails today for a known reason is listed in KNOWN_FAILURES with it; that list
is strict (a listed command that works, or is no longer run, fails the test).

`make dev` is started, probed (HTTP 200 from the webserver's /server_info) and stopped. It
runs with `-o .venv/.installed` so that a pyproject.toml newer than the venv does not make it
reinstall the shared virtualenv in the middle of a test run (`make test` ran setup already).

The service's commands (`datahub serve`, `users`, `tokens`, `audit`) run in
test_sign_in_and_create_a_pipeline, which follows README's "Sign in and create a pipeline":
its bash block's commands as written, then the browser steps through the API (a change by an
editor, refused to its author, approved by a second user), the asset in `dg list defs` and
load_project, and an audit row for every step.

Not run here, with the reason:
- `make demo`, `make test` (the code block above the table): `make test` runs this test, and
  `make demo` is `datahub validate`, `datahub spark start`, `datahub demo --fresh`,
  `datahub launch --assets '*'` and `datahub tables`, each run here on a smaller selection
  (its full `*` materialisation is tests/e2e/test_examples_cli.py's);
- `make bench-*`: benchmarks of minutes to hours that write bench/RESULTS.md figures;
- the other selection syntaxes named in the `dg launch` row (`group:gold`, `kind:iceberg`,
  `tag:...`, `group:gold and key:...`) resolve through `dg list defs --assets` in
  tests/e2e/test_dg_cli.py; here `key:"<app>/<layer>/*"` and `+key:"..."` run for real.

Cost: 334 s measured (45 commands, 297 s of them in the commands: two small
materialisations of ecommerce and crm raw, one private Spark server start, the rest CLI
start-up), 692 s on the same 2 cores while five other test runs competed for them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.processes import stop_group

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
README = REPO / "README.md"
SECTION = "## Everyday commands"
pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.xdist_group("e2e")]

GOLD = "ecommerce.gold.customer_360"
GOLD_IDENT = ("ecommerce_gold", "customer_360")
EXCLUDED = {
    "make bench-": "benchmarks (minutes to hours) that write bench/RESULTS.md figures",
}
# the service's commands: run by test_sign_in_and_create_a_pipeline (the README walkthrough),
# which fails when one of them is not run there
SERVICE_KEYS = frozenset(
    {
        "datahub serve",
        "datahub users add",
        "datahub users grant",
        "datahub users revoke",
        "datahub users list",
        "datahub tokens create",
        "datahub audit",
    }
)
WALKTHROUGH = "## Sign in and create a pipeline"
# commands that fail today, each with the reason; strict: once one works, the test fails
# until its entry is removed here
KNOWN_FAILURES: dict[str, str] = {}


# ------------------------------------------------------------------------- the README


def documented_rows(text: str) -> list[tuple[str, str]]:
    """(command, its whole table row) for each code span of the first column of the
    "Everyday commands" table, `\\|` unescaped."""
    lines = text.split(SECTION, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[start:]:  # the first table of the section, up to its first other line
        if not line.startswith("|"):
            break
        table.append(line)
    out = []
    for line in table:
        if line.startswith("|---"):
            continue
        first = re.split(r"(?<!\\)\|", line)[1]
        row = line.replace("\\|", "|")
        out += [(c.replace("\\|", "|"), row) for c in re.findall(r"`([^`]+)`", first)]
    return [(c, row) for c, row in out if c != "command"]


def documented_commands(text: str) -> list[str]:
    return [c for c, _ in documented_rows(text)]


def key_of(command: str) -> str:
    """A documented command's name: its words up to the first placeholder, optional part,
    quoted argument or list of alternatives (`datahub spark`, `datahub demo --rows N`)."""
    words = []
    for word in command.split():
        if word[0] in "<['\"" or "|" in word:
            break
        words.append(word)
    return " ".join(words)


def alternatives(command: str, after: str) -> list[str]:
    """The alternatives the README lists right after `after` (`status|start|stop`)."""
    match = re.search(re.escape(after) + r"\s+([\w-]+(?:\|[\w-]+)+)", command)
    assert match, f"README: no list of alternatives after {after!r} in `{command}`"
    return match.group(1).split("|")


# ------------------------------------------------------------------------- running


class Session:
    """Runs commands, checks their effects, collects failures."""

    def __init__(
        self, env: dict[str, str], documented: dict[str, str], rows: dict[str, str]
    ) -> None:
        self.env, self.documented, self.rows = env, documented, rows
        self.failures: list[str] = []
        self.ran: set[str] = set()
        self.timings: list[tuple[str, float]] = []
        self.known: list[str] = []

    def doc(self, key: str) -> str:
        if key not in self.documented:
            self.failures.append(f"README no longer documents `{key}` (the test expects it)")
            return ""
        return self.documented[key]

    def run(
        self,
        key: str,
        argv: list[str],
        effect: Callable[[str], object] | None = None,
        env: dict[str, str] | None = None,
        codes: tuple[int, ...] = (0,),
        stdin: str | None = None,
    ) -> str:
        """Run `argv` for the README command `key`; its options must be the README's; the exit
        code must be in `codes` and `effect(output)` must hold. The output ('' on failure)."""
        shown = shlex.join(argv)
        self.doc(key)
        self.ran.add(key)
        row = self.rows.get(key, "")
        for word in argv:
            option = word.split("=", 1)[0]
            if option.startswith("--") and row and option not in row:
                self.failures.append(f"`{shown}`: option {option} is not in the README's row {row}")
        exe = argv[0] if "/" in argv[0] else str(BIN / argv[0])
        started = time.monotonic()
        try:
            proc = subprocess.run(
                [exe, *argv[1:]],
                env=env or self.env,
                cwd=REPO,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=900,
            )
        except subprocess.TimeoutExpired:
            self.failures.append(f"`{shown}`: timed out after 900 s")
            return ""
        finally:
            self.timings.append((shown, time.monotonic() - started))
        out = proc.stdout + proc.stderr
        known = KNOWN_FAILURES.get(shlex.join(argv))
        if known is not None:
            self.known.append(shown)
            if proc.returncode in codes:
                self.failures.append(f"`{shown}` works now: remove it from KNOWN_FAILURES")
            else:
                print(f"known failure (exit {proc.returncode}): `{shown}`: {known}")
            return ""
        if proc.returncode not in codes:
            self.failures.append(f"`{shown}`: exit code {proc.returncode}\n{out[-3000:]}")
            return ""
        if effect is not None:
            try:
                ok = effect(proc.stdout)
            except Exception as exc:
                ok = f"{type(exc).__name__}: {exc}"
            if ok is not True:
                why = ok if isinstance(ok, str) else "the expected effect is missing"
                self.failures.append(f"`{shown}`: {why}\n--- output:\n{out[-3000:]}")
        return proc.stdout


def _contains(*needles: str) -> Callable[[str], object]:
    def check(out: str) -> object:
        missing = [n for n in needles if n not in out]
        return True if not missing else f"output lacks {missing}"

    return check


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


# ------------------------------------------------------------------------- the test


@pytest.fixture
def home(tmp_path):
    """A private project: the example apps copied (commands write schemas and new apps into
    the pipelines dir), data, catalog, Dagster instance, crm servers on free ports."""
    from datahub_assets.demo.local_servers import free_port

    pipelines = tmp_path / "pipelines"
    shutil.copytree(REPO / "pipelines_xml", pipelines)
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
    drop = ("DATAHUB_CATALOG_URI", "DATAHUB_WAREHOUSE", "DATAHUB_SPARK_REMOTE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env |= {
        "DATAHUB_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "DATAHUB_DATA_DIR": str(tmp_path / "data"),
        "DATAHUB_PIPELINES_DIR": str(pipelines),
        "CRM_DB": "datahub",
        "CRM_DB_ADDRESS": f"127.0.0.1:{free_port()}",
        "CRM_PRODUCTS_MONGO_URI": f"mongodb://127.0.0.1:{free_port()}/",
    }
    try:
        yield tmp_path, env
    finally:  # whatever the test left running: the crm servers, the private Spark server
        for argv, extra in (
            (["servers", "stop", "--purge"], {}),
            (["spark", "stop"], {"DATAHUB_SPARK_STATE": str(tmp_path / "spark")}),
        ):
            subprocess.run(
                [str(BIN / "datahub"), *argv],
                env=env | extra,
                cwd=REPO,
                capture_output=True,
                timeout=120,
            )


def _catalog(env: dict[str, str]):
    from datahub_resources.iceberg import open_catalog

    home = Path(env["DATAHUB_HOME"])
    return open_catalog(f"sqlite:///{home / 'catalog.db'}", f"file://{home / 'warehouse'}")


def _snapshot(env, ident=GOLD_IDENT) -> int | None:
    """The table's current snapshot id; None when it has none or does not exist."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        snap = _catalog(env).load_table(ident).current_snapshot()
    except NoSuchTableError:
        return None
    return snap.snapshot_id if snap else None


def _rows(env, ident) -> int:
    """The table's rows (small example tables: read with pyiceberg); 0 when it is missing."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        return len(_catalog(env).load_table(ident).scan().to_arrow())
    except NoSuchTableError:
        return 0


def test_every_everyday_command_in_the_readme(home):
    tmp, env = home
    rows = documented_rows(README.read_text())
    documented = {key_of(c): c for c, _ in rows}
    s = Session(env, documented, {key_of(c): row for c, row in rows})
    data = tmp / "data"
    pg_port = int(env["CRM_DB_ADDRESS"].rsplit(":", 1)[1])

    # ---------------------------------------------------------------- definitions
    s.run("datahub validate", ["datahub", "validate"])
    s.run(
        "dg check defs",
        ["dg", "check", "defs"],
        _contains("All definitions loaded successfully"),
    )
    s.run("dg list defs", ["dg", "list", "defs"], _contains("ecommerce/gold/customer_360"))
    s.run(
        "dg list defs",
        ["dg", "list", "defs", "--assets", "group:gold"],
        lambda out: "ecommerce/gold/customer_360" in out and "ecommerce/raw/" not in out,
    )
    s.run(
        "dg list defs",
        ["dg", "list", "defs", "--json"],
        lambda out: any(
            a.get("asset_key") == "ecommerce/gold/customer_360" for a in json.loads(out)["assets"]
        ),
    )

    # ---------------------------------------------------------------- servers, sample data
    servers = s.doc("datahub servers")
    actions = alternatives(servers, "servers") if servers else []
    if "start" in actions:
        s.run(
            "datahub servers",
            ["datahub", "servers", "start"],
            lambda out: out.count("running on 127.0.0.1") == 2,
        )
    if "status" in actions:
        s.run(
            "datahub servers",
            ["datahub", "servers", "status"],
            lambda out: f"running on 127.0.0.1:{pg_port}" in out and _port_open(pg_port),
        )
    s.run(
        "datahub demo --rows N",
        ["datahub", "demo", "--rows", "50", "--fresh"],
        lambda out: (
            "dropped the tables" in out and any((data / "ecommerce" / "landing").rglob("*.*"))
        ),
    )

    # ---------------------------------------------------------------- materialise
    s.run(
        "dg launch --assets",
        ["dg", "launch", "--assets", '+key:"ecommerce/gold/customer_360"'],
        lambda _: (
            _rows(env, GOLD_IDENT) > 0
            and not list((data / "ecommerce" / "landing").rglob("*.*"))
            and any((data / "ecommerce" / "processed").rglob("*.*"))
        ),
    )
    first = _snapshot(env)
    s.run(
        "dg launch --assets",
        ["dg", "launch", "--assets", 'key:"ecommerce/gold/*"'],
        lambda _: _snapshot(env) not in (None, first) or "no new snapshot",
    )
    second = _snapshot(env)
    s.run(
        "datahub launch --assets",
        ["datahub", "launch", "--assets", 'key:"ecommerce/gold/*"'],
        lambda out: ": SUCCESS" in out and _snapshot(env) not in (None, second),
    )
    third = _snapshot(env)

    # ---------------------------------------------------------------- tables and snapshots
    s.run(
        "datahub tables",
        ["datahub", "tables"],
        _contains("ecommerce.gold.customer_360", str(third)),
    )
    s.run(
        "datahub history",
        ["datahub", "history", GOLD],
        lambda out: (
            out.find(str(third)) < out.find(str(second)) < out.find(str(first))
            and out.find(str(third)) >= 0
        ),
    )
    gold_rows = _rows(env, GOLD_IDENT)
    sql = s.doc("datahub sql")
    parse = {  # the count as each --format prints it
        "csv": lambda out: out.split(),
        "json": lambda out: json.loads(out.strip().splitlines()[-1]),
    }
    expected = {"csv": ["n", str(gold_rows)], "json": {"n": gold_rows}}
    for fmt in alternatives(sql, "--format") if sql else []:
        if fmt not in parse:
            s.failures.append(f"README lists --format {fmt}: add how to read it here")
            continue
        s.run(
            "datahub sql",
            [
                "datahub",
                "sql",
                "select count(*) as n from ecommerce_gold.customer_360",
                "--format",
                fmt,
            ],
            lambda out, fmt=fmt: parse[fmt](out) == expected[fmt] or f"read {parse[fmt](out)}",
        )
    s.run(
        "datahub sql",
        ["datahub", "sql", "select * from ecommerce_gold.customer_360", "--limit", "1"],
        lambda out: len([line for line in out.splitlines() if line.strip()]) >= 2,
    )
    s.run("datahub sql", ["datahub", "sql", "--tables"], _contains("ecommerce_gold.customer_360"))
    s.run(
        "datahub rollback",
        ["datahub", "rollback", GOLD],
        lambda _: _snapshot(env) == second or f"current is {_snapshot(env)}, not {second}",
    )
    s.run(
        "datahub rollback",
        ["datahub", "rollback", GOLD, "--to", str(first)],
        lambda _: _snapshot(env) == first or f"current is {_snapshot(env)}, not {first}",
    )

    # ---------------------------------------------------------------- crm: watermarks, mongo
    s.run(
        "dg launch --assets",
        ["dg", "launch", "--assets", 'key:"crm/raw/*"'],
        lambda _: _rows(env, ("crm_raw", "customers")) > 0,
    )
    watermark = s.doc("datahub watermark")
    wm_actions = alternatives(watermark, "watermark") if watermark else []
    if "show" in wm_actions:
        s.run(
            "datahub watermark",
            ["datahub", "watermark", "show", "crm.customers_extract"],
            lambda out: "column updated_at" in out and "none:" not in out,
        )
    s.run(
        "datahub demo --touch-crm",
        ["datahub", "demo", "--touch-crm"],
        _contains("crm: updated customer 1"),
    )
    if "reset" in wm_actions:
        s.run(
            "datahub watermark",
            ["datahub", "watermark", "reset", "crm.customers_extract"],
            _contains("watermark reset (snapshot"),
        )
        s.run(
            "datahub watermark",
            ["datahub", "watermark", "show", "crm.customers_extract"],
            _contains("none: the next run reads every row"),
        )
    schema = Path(env["DATAHUB_PIPELINES_DIR"]) / "crm" / "schemas" / "products.json"
    schema.unlink(missing_ok=True)
    s.run(
        "datahub mongo infer-schema",
        ["datahub", "mongo", "infer-schema", "crm.products_extract"],
        lambda _: "properties" in json.loads(schema.read_text()),
    )

    # ---------------------------------------------------------------- runs, maintenance
    s.run(
        "datahub runs",
        ["datahub", "runs", "--sync"],
        lambda out: (
            "ecommerce.customer_360" in out and _rows(env, ("ops_gold", "pipeline_runs")) > 0
        ),
    )
    s.run(
        "datahub runs",
        ["datahub", "runs", "--since", "7d"],
        lambda out: re.search(r"\d+ runs?, \d+ succeeded", out) is not None,
    )
    s.run("datahub runs", ["datahub", "runs", "--failed"], lambda out: bool(out.strip()))
    s.run(
        "datahub maintain",
        ["datahub", "maintain", GOLD],
        _contains("ecommerce_gold.customer_360: expired"),
    )
    s.run(
        "datahub maintain",
        ["datahub", "maintain", "--all", "--app", "ecommerce", "--no-compact"],
        lambda out: "ecommerce_gold.customer_360" in out and "crm_" not in out,
    )

    _scaffolding(s, env, tmp)
    _spark_server(s, env, tmp)

    # ---------------------------------------------------------------- make dev
    s.ran.add("make dev")
    dev_failure = _probe_make_dev(env, tmp)
    if dev_failure:
        s.failures.append(f"`make dev`: {dev_failure}")

    if "stop" in actions:
        s.run(
            "datahub servers",
            ["datahub", "servers", "stop", "--purge"],
            lambda out: "stopped:" in out and not _port_open(pg_port),
        )

    # ---------------------------------------------------------------- coverage
    for key, command in documented.items():
        if key in s.ran or key in SERVICE_KEYS or any(key.startswith(x) for x in EXCLUDED):
            continue
        s.failures.append(f"README command `{command}` has no case in this test")
    for command in set(KNOWN_FAILURES) - set(s.known):
        s.failures.append(f"KNOWN_FAILURES names `{command}`, which this test no longer runs")
    slow = sorted(s.timings, key=lambda t: -t[1])[:5]
    print("slowest:", "; ".join(f"{c} {t:.0f}s" for c, t in slow))
    print(f"total {sum(t for _, t in s.timings):.0f}s over {len(s.timings)} commands")
    assert not s.failures, f"{len(s.failures)} README command(s) failed:\n\n" + "\n\n".join(
        s.failures
    )


def _scaffolding(s: Session, env: dict[str, str], tmp: Path) -> None:
    """`datahub new app|pipeline` (every --source and --target the README lists) into a
    scratch pipelines dir, then `datahub validate` over what they wrote."""
    scratch = dict(env, DATAHUB_PIPELINES_DIR=str(tmp / "scratch"))
    s.run(
        "datahub new app",
        ["datahub", "new", "app", "shop"],
        lambda _: (tmp / "scratch" / "shop").is_dir(),
        env=scratch,
    )
    new = s.doc("datahub new pipeline")
    sources = alternatives(new, "--source") if new else []
    targets = alternatives(new, "--target") if new else []
    for source in ["csv", *(x for x in sources if x != "csv")]:  # a table source needs one
        layer = "silver" if source == "table" else "raw"
        pid = f"from_{source}"
        s.run(
            "datahub new pipeline",
            ["datahub", "new", "pipeline", "shop", layer, pid, "--source", source],
            lambda _, layer=layer, pid=pid: any(
                (tmp / "scratch" / "shop" / layer).glob(f"{pid}.*")
            ),
            env=scratch,
        )
    for target in targets:
        pid = f"to_{target}"
        s.run(
            "datahub new pipeline",
            ["datahub", "new", "pipeline", "shop", "raw", pid, "--source", "csv"]
            + ["--target", target],
            lambda _, pid=pid: any((tmp / "scratch" / "shop" / "raw").glob(f"{pid}.*")),
            env=scratch,
        )
    s.run("datahub validate", ["datahub", "validate"], env=scratch)


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (a dead server whose parent, PID 1 here for a
    server started by an earlier command, has not reaped it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _spark_server(s: Session, env: dict[str, str], tmp: Path) -> None:
    """`datahub spark status` on the shared server; `start` and `stop` on a private one."""
    shared = {k: v for k, v in env.items() if k != "DATAHUB_SPARK_STATE"}
    private = dict(
        shared,
        DATAHUB_SPARK_STATE=str(tmp / "spark"),
        DATAHUB_SPARK_DRIVER_MEMORY="1g",
    )
    spark = s.doc("datahub spark")
    for action in alternatives(spark, "spark") if spark else []:
        if action == "status":
            s.run(
                "datahub spark",
                ["datahub", "spark", "status"],
                _contains("running: sc://"),  # the shared server the launches above used
                env=env,
            )
        elif action == "start":
            s.run(
                "datahub spark",
                ["datahub", "spark", "start"],
                lambda out: "running: sc://" in out and (tmp / "spark" / "server.json").exists(),
                env=private,
            )
        elif action == "stop":
            pid = None
            if (tmp / "spark" / "server.json").exists():
                pid = json.loads((tmp / "spark" / "server.json").read_text()).get("pid")
            s.run(
                "datahub spark",
                ["datahub", "spark", "stop"],
                lambda _, pid=pid: pid is not None and not _alive(pid),
                env=private,
            )


def _probe_make_dev(env: dict[str, str], tmp: Path) -> str | None:
    """Start `make dev` (port from DAGSTER_WEBSERVER_PORT, the service's from SERVICE_PORT),
    wait for the webserver's /server_info and the service's /api/v1/health to answer 200,
    stop it; None, or what went wrong."""
    from datahub_assets.demo.local_servers import free_port

    port, service_port = free_port(), free_port()
    log_path = tmp / "make-dev.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            ["make", "-o", ".venv/.installed", "dev"],
            env=env
            | {
                "DAGSTER_WEBSERVER_PORT": str(port),
                "SERVICE_PORT": str(service_port),
                "DATAHUB_DAGSTER_URL": f"http://127.0.0.1:{port}",
            },
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        waiting = {
            f"http://127.0.0.1:{port}/server_info": "dagster_webserver_version",
            f"http://127.0.0.1:{service_port}/api/v1/health": '"status":"ok"',
        }
        while time.monotonic() < deadline and waiting:
            if proc.poll() is not None:
                return f"exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
            for url, needle in list(waiting.items()):
                try:
                    with urllib.request.urlopen(url, timeout=5) as resp:
                        body = resp.read().decode().replace(" ", "")
                        if resp.status == 200 and needle in body:
                            del waiting[url]
                except OSError:
                    pass
            time.sleep(2)
        if not waiting:
            return None
        return f"no HTTP 200 from {sorted(waiting)} in 300 s:\n" + log_path.read_text()[-3000:]
    finally:
        stop_group(proc, grace=60)


# ------------------------------------------------------------------------- the walkthrough

RETURNS_XML = """<pipeline id="returns_raw" version="1.0.0" layer="raw">
  <metadata>
    <owner>ecommerce-data</owner>
    <description>Returned orders from the shop backend, as delivered</description>
  </metadata>
  <sources>
    <csv id="returns" path="landing/returns/*.csv" header="true"/>
  </sources>
  <targets>
    <table table="returns" mode="append"/>
  </targets>
  <checks>
    <rowCount min="1"/>
  </checks>
</pipeline>
"""
RETURNS_KEY = "ecommerce/raw/returns"


def walkthrough_commands(text: str) -> list[str]:
    """The shell lines of the walkthrough's first ```bash block, comments dropped."""
    body = text.split(WALKTHROUGH, 1)[1]
    match = re.search(r"```bash\n(.*?)```", body, re.S)
    assert match, f"README: no ```bash block under {WALKTHROUGH!r}"
    lines = (line.split("#", 1)[0].strip() for line in match.group(1).splitlines())
    return [line for line in lines if line]


def _documented_key(line: str, documented: dict[str, str]) -> str | None:
    """The everyday-commands key a walkthrough line is an instance of (the longest prefix)."""
    keys = [k for k in documented if line == k or line.startswith(k + " ")]
    return max(keys, key=len) if keys else None


class Api:
    """JSON calls to the running service (urllib: what any script can do)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def call(
        self, method: str, path: str, token: str | None = None, body=None, form=None
    ) -> tuple[int, object]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=300) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw)
            except ValueError:
                return exc.code, raw.decode(errors="replace")


def _serve(env: dict[str, str], tmp: Path, port: int) -> subprocess.Popen:
    """`datahub serve --host 127.0.0.1 --port PORT`, once /api/v1/health answers 200."""
    log = (tmp / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "datahub"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"datahub serve exited {proc.returncode}:\n{_tail(tmp)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=5) as r:
                if r.status == 200 and json.loads(r.read()) == {"status": "ok"}:
                    return proc
        except OSError:
            pass
        time.sleep(0.5)
    stop_group(proc)
    raise AssertionError(f"datahub serve: no /api/v1/health in 180 s:\n{_tail(tmp)}")


def _tail(tmp: Path) -> str:
    return (tmp / "serve.log").read_text()[-3000:]


def _audit_rows(env: dict[str, str]) -> list[tuple[str, str, str, str]]:
    """(actor, action, target, outcome) of every audit row in the state database."""
    import sqlalchemy as sa

    uri = env.get("DATAHUB_STATE_URI") or f"sqlite:///{env['DATAHUB_HOME']}/hub.db"
    engine = sa.create_engine(uri)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("select actor, action, target, outcome from audit_events order by id")
            )
            return [tuple(r) for r in rows]
    finally:
        engine.dispose()


def test_sign_in_and_create_a_pipeline(home):
    """README's "Sign in and create a pipeline", as a new user follows it on the example
    project: the walkthrough's commands as written (users, grants; `make dev` as
    `datahub serve` on a free port, whose probe is the other test's; `make demo`'s parts are
    run there and by tests/e2e/test_examples_cli.py, and nothing here reads data), then what the
    browser steps do, through the API: alice (editor) signs in and opens a change adding
    ecommerce's raw `returns` pipeline, may not approve it herself, bob (approver) approves it
    with an API token from `datahub tokens create`; the merge is one commit with the trailers,
    the asset is in `dg list defs` and in load_project, and every step is in the audit log
    (`datahub audit`, and the rows in the state database). Then `datahub users revoke` makes
    the app invisible to alice (404)."""
    tmp, env = home
    text = README.read_text()
    rows = documented_rows(text)
    documented = {key_of(c): c for c, _ in rows}
    s = Session(env, documented, {key_of(c): row for c, row in rows})
    pipelines = Path(env["DATAHUB_PIPELINES_DIR"])
    passwords: dict[str, str] = {}
    for line in walkthrough_commands(text):
        argv = shlex.split(line)
        if argv[:2] in (["make", "demo"], ["make", "dev"]):
            continue
        key = _documented_key(line, documented)
        if key is None:
            s.failures.append(f"walkthrough line `{line}` is no everyday command")
            continue
        stdin = None
        if "--password-stdin" in argv:
            name = argv[3]
            passwords[name] = f"walkthrough-{name}-password"
            stdin = passwords[name] + "\n"  # typed, then Enter (and Ctrl-D)
        s.run(key, argv, stdin=stdin)
    assert {"alice", "bob"} <= set(passwords), f"the walkthrough adds {sorted(passwords)}"
    s.run(
        "datahub users list",
        ["datahub", "users", "list"],
        lambda out: (
            all(x in out for x in ("alice", "bob", "ecommerce", "editor", "approver"))
            or "alice/bob or their ecommerce roles missing"
        ),
    )

    from datahub_assets.demo.local_servers import free_port

    port = free_port()
    s.ran.add("datahub serve")
    server = _serve(env, tmp, port)
    try:
        _walk(s, env, Api(f"http://127.0.0.1:{port}"), passwords, pipelines)
    finally:
        stop_group(server)
    missing = SERVICE_KEYS - s.ran
    if missing:
        s.failures.append(f"the walkthrough test ran none of {sorted(missing)}")
    assert not s.failures, f"{len(s.failures)} walkthrough step(s) failed:\n\n" + "\n\n".join(
        s.failures
    )


def _walk(s: Session, env: dict[str, str], api: Api, passwords: dict, pipelines: Path) -> None:
    status, answer = api.call(
        "POST", "/api/v1/auth/token", form={"username": "alice", "password": "wrong-password"}
    )
    assert status == 401, f"a wrong password: {status} {answer}"
    status, answer = api.call(
        "POST", "/api/v1/auth/token", form={"username": "alice", "password": passwords["alice"]}
    )
    assert status == 200, f"alice signs in: {status} {answer}"
    assert isinstance(answer, dict)
    alice = answer["access_token"]
    status, apps = api.call("GET", "/api/v1/apps", alice)
    assert status == 200, f"GET /api/v1/apps: {status} {apps}"
    assert isinstance(apps, list)
    assert [(a["app"], a["role"]) for a in apps] == [("ecommerce", "editor")], apps

    change_body = {
        "app": "ecommerce",
        "title": "ecommerce: returned orders, as delivered",
        "files": [{"path": "raw/returns.xml", "content": RETURNS_XML}],
    }
    status, change = api.call("POST", "/api/v1/changes", alice, change_body)
    assert status == 201, f"create the change: {status} {change}"
    assert isinstance(change, dict)
    assert change["status"] == "open", change
    assert change["validation"]["ok"], change
    assert not (pipelines / "ecommerce" / "raw" / "returns.xml").exists(), "written before approval"
    cid = change["id"]
    status, own = api.call("POST", f"/api/v1/changes/{cid}/approve", alice, {})
    assert status == 403, f"the author approves her own change: {status} {own}"

    out = s.run(
        "datahub tokens create",
        ["datahub", "tokens", "create", "bob", "--expires", "1d"],
        lambda out: bool(out.split()) or "no token printed",
    )
    bob = out.split()[-1] if out.split() else ""
    status, merged = api.call("POST", f"/api/v1/changes/{cid}/approve", bob, {})
    assert status == 200, f"bob approves: {status} {merged}"
    assert isinstance(merged, dict)
    assert merged["status"] == "merged", merged
    _merged_commit(pipelines, merged["commit"], cid)

    s.run(
        "dg list defs",
        ["dg", "list", "defs", "--assets", f'key:"{RETURNS_KEY}"'],
        _contains(RETURNS_KEY),
    )
    from datahub_assets.spec.loader import load_project

    project = load_project(pipelines, default_engine="auto")
    keys = {"/".join(t.ref.asset_path) for p in project.pipelines for t in p.targets}
    assert RETURNS_KEY in keys, "load_project does not list the approved asset"

    s.run(
        "datahub audit",
        ["datahub", "audit", "--since", "1d"],
        _contains("user.add", "user.grant", "login", "token.create", "change.create"),
    )
    s.run(
        "datahub audit",
        ["datahub", "audit", "--app", "ecommerce"],
        _contains("change.approve", cid),
    )
    _audited(env, cid)

    s.run("datahub users revoke", ["datahub", "users", "revoke", "alice", "--app", "ecommerce"])
    status, gone = api.call("GET", "/api/v1/apps/ecommerce/pipelines", alice)
    assert status == 404, f"alice after the revoke: {status} {str(gone)[:300]}"


def _merged_commit(pipelines: Path, commit: str, cid: str) -> None:
    """HEAD of the pipelines work tree is the change's one commit, with its trailers."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(pipelines), *args], capture_output=True, text=True, check=True
        ).stdout

    assert git("rev-parse", "HEAD").strip() == commit
    message = git("log", "-1", "--format=%B")
    for trailer in (f"Change-Id: {cid}", "Requested-by: alice", "Approved-by: bob"):
        assert trailer in message, f"commit message lacks {trailer!r}:\n{message}"
    assert git("log", "-1", "--format=%an").strip() == "alice"
    assert git("show", "--name-only", "--format=", "HEAD").split() == ["ecommerce/raw/returns.xml"]
    assert (pipelines / "ecommerce" / "raw" / "returns.xml").read_text() == RETURNS_XML


def _audited(env: dict[str, str], cid: str) -> None:
    """Every step of the walkthrough has its audit row (actor, action, outcome)."""
    rows = _audit_rows(env)
    seen = {(actor, action, outcome) for actor, action, _, outcome in rows}
    for actor, action, outcome in (
        ("alice", "login", "ok"),
        ("alice", "change.create", "ok"),
        ("bob", "change.approve", "ok"),
    ):
        assert (actor, action, outcome) in seen, f"no audit row {actor} {action} {outcome}: {rows}"
    # her own approval was refused by the authorization dependency (action "access")
    assert any(
        (actor, action, outcome) == ("alice", "access", "denied") and f"{cid}/approve" in target
        for actor, action, target, outcome in rows
    ), rows
    assert any(a == "alice" and act == "login" and o != "ok" for a, act, _, o in rows), rows
    for action, name in (("user.add", "alice"), ("user.add", "bob"), ("user.grant", "alice")):
        assert any(act == action and name in target for _, act, target, _ in rows), (action, rows)
    assert any(act == "token.create" and "bob" in target for _, act, target, _ in rows), rows
    assert any(act == "change.approve" and cid in target for _, act, target, _ in rows), rows
    text = repr(rows)
    assert "walkthrough-alice-password" not in text
    assert "walkthrough-bob-password" not in text


def test_the_readme_table_parses():
    """The parser on the README as it is now (no processes: a quick guard)."""
    commands = documented_commands(README.read_text())
    keys = {key_of(c) for c in commands}
    assert {"make dev", "dg check defs", "datahub validate", "datahub maintain"} <= keys
    assert "status" in alternatives(next(c for c in commands if "servers" in c), "servers")
