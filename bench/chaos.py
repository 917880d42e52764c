"""Chaos benchmark (issue #13): file drops under the real Dagster daemon with one fault per
round, then a check that every valid file's rows are in the tables exactly once.

    .venv/bin/python bench/run.py chaos [--rounds 100] [--minutes 30] [--seed 13] [--write]
    (make bench-chaos)

Setup (everything under bench/_work/chaos/, emptied first): app `chaos`, a raw pipeline
`events` watching `landing/events/*.csv` (`<watch pollSeconds="2" minAgeSeconds="1"/>`, append)
and a bronze pipeline `events` (cast, overwrite) that follows it through Dagster's automation
sensor; a private DAGSTER_HOME (the repo's dagster.yaml), DATAHUB_HOME (SQLite catalog,
warehouse), data dir and a PRIVATE Spark Connect server (`DATAHUB_SPARK_STATE=
bench/_work/chaos/spark`, driver 1g): the daemon's environment is fixed when it starts and a
Spark kill can hit any round, so the shared server in .datahub/test-spark is never touched.
`dagster-daemon run -m datahub_assets.definitions` runs in its own session.

Each round drops 1-3 CSV files (5 rows each, a unique `event_id` per row; about one round in
ten also drops an empty file, which must be rejected), waits (at most 45 s) until a run worker
of this instance is alive, waits a random 0-12 s (a run takes ~15 s here, so any phase of it:
read, stage, commit, move) and injects one fault, the kinds cycling in a shuffled order; then
it waits (at most `--recover` s, default 45) until an ingest run that ended after the fault
succeeded, so faults interleave with commits instead of piling up on one stuck batch:

  kill_run        kill -9 of a process of a live run (the run worker or a step's process)
  kill_spark      kill -9 of the Spark Connect server's process group (the next step that
                  connects starts it again, as it does after a crash)
  kill_daemon     kill -9 of the daemon process (half of the time its whole process group:
                  code server and run workers with it, as when a container dies); restarted
  catalog_lock    an exclusive SQLite transaction on the catalog database held 7-10 s
                  (longer than SQLAlchemy's 5 s busy timeout), so commits fail
  data_readonly   the raw or bronze table's data folder made unwritable for 8-12 s (chmod 555;
                  as root, which chmod does not stop, `chattr +i`), so Spark's Parquet writes
                  fail (a failing write path / full disk)

Dagster's DefaultRunLauncher cannot check a run worker's health, so a run whose process was
killed stays STARTED forever (run monitoring does not cover it), and with
`datahub/ingest` limited to 1 run per pipeline every later batch would queue behind it. The
benchmark acts as the operator who force-terminates such runs: every loop, a STARTED/STARTING
run whose worker process is gone, or that has none 90 s after it left the queue, is reported
failed; the count is in the result (`runs_reaped`).

After the rounds: wait (at most 10 min) until landing holds no CSV, no run is queued or in
progress and the bronze table has as many rows as raw; then verify by `event_id` against the
generated files: rows lost, duplicated, unexpected (raw and bronze), every table of the
catalog scanned with pyiceberg, files left in landing / processed / rejected, the ledger.
JSON: bench/_work/results/chaos.json; `--write` appends a row to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import BENCH, WORK, machine, now, revision, write_json  # noqa: E402
from tests.daemon import Daemon, alive, processes  # noqa: E402

APP = "chaos"
BASE = WORK / "chaos"
ROWS_PER_FILE = 5
KINDS = ("kill_run", "kill_spark", "kill_daemon", "catalog_lock", "data_readonly")
RESULTS_MD = BENCH / "RESULTS.md"

RAW = """<pipeline id="events_raw" version="1.0.0" layer="raw">
  <sources>
    <csv id="events" path="landing/events/*.csv"><watch pollSeconds="2" minAgeSeconds="1"/></csv>
  </sources>
  <targets><table table="events" mode="append"/></targets>
</pipeline>
"""
BRONZE = """<pipeline id="events" version="1.0.0" layer="bronze">
  <sources><table id="e" ref="raw.events"/></sources>
  <transformations><cast source="e" types="event_id:int,amount:double"/></transformations>
  <targets><table table="events" source="e" mode="overwrite"/></targets>
</pipeline>
"""


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


# ------------------------------------------------------------------------------ processes


def _left_queue(rec) -> float:
    """When a run left the queue: its start time, else (STARTING, no worker yet) the time its
    status last changed. Not its creation: under load a run waits minutes in QUEUED, and a
    run just handed to its worker must not be reaped as dead."""
    if rec.start_time:
        return rec.start_time
    return rec.update_timestamp.timestamp()


class Harness:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.pipelines, self.data, self.home = BASE / "pipelines", BASE / "data", BASE / "home"
        self.dagster_home, self.spark_state = self.home / "dagster", BASE / "spark"
        self.landing = self.data / APP / "landing" / "events"
        self.expected: dict[str, str] = {}  # event_id -> file name
        self.valid_files: list[str] = []
        self.empty_files: list[str] = []
        self.faults: list[dict] = []
        self.reaped: set[str] = set()
        self._pids: dict[str, int] = {}
        self.slots_freed = 0
        self.spark_leaked: set[int] = set()
        self.daemon: Daemon  # created by setup(), with the environment
        self.next_id = 0
        self.file_no = 0

    # -- setup ---------------------------------------------------------------------------
    def setup(self) -> None:
        if (self.spark_state / "server.json").exists():
            self._stop_spark()
        shutil.rmtree(BASE, ignore_errors=True)
        for layer, text in (("raw", RAW), ("bronze", BRONZE)):
            (self.pipelines / APP / layer).mkdir(parents=True)
            (self.pipelines / APP / layer / "events.xml").write_text(text)
        self.dagster_home.mkdir(parents=True)
        shutil.copy(ROOT / "dagster.yaml", self.dagster_home / "dagster.yaml")
        self.landing.mkdir(parents=True)
        self.spark_state.mkdir(parents=True)
        drop = ("DATAHUB_CATALOG_URI", "DATAHUB_WAREHOUSE", "DATAHUB_SPARK_REMOTE")
        self.env = {k: v for k, v in os.environ.items() if k not in drop}
        self.env.update(
            DATAHUB_PIPELINES_DIR=str(self.pipelines),
            DATAHUB_DATA_DIR=str(self.data),
            DATAHUB_HOME=str(self.home),
            DAGSTER_HOME=str(self.dagster_home),
            DATAHUB_SPARK_STATE=str(self.spark_state),
            DATAHUB_SPARK_DRIVER_MEMORY="1g",
            DATAHUB_SPARK_SHUFFLE_PARTITIONS="2",
        )
        os.environ.update(self.env)
        self.daemon = Daemon(
            self.env,
            BASE / "daemon-{n}.log",
            on_start=lambda pid: log(f"daemon started (pid {pid})"),
        )
        for k in ("DATAHUB_CATALOG_URI", "DATAHUB_WAREHOUSE", "DATAHUB_SPARK_REMOTE"):
            os.environ.pop(k, None)

    def start_daemon(self) -> None:
        self.daemon.start()

    def stop_daemon(self) -> None:
        # and the run workers that outlived the daemon (they started sessions of their own
        # or were orphaned by a kill of the daemon pid alone)
        self.daemon.stop(timeout=30, reap=True)

    def _stop_spark(self) -> None:
        subprocess.run(
            [str(ROOT / ".venv" / "bin" / "datahub"), "spark", "stop"],
            env=os.environ | {"DATAHUB_SPARK_STATE": str(self.spark_state)},
            cwd=ROOT,
            capture_output=True,
        )

    # -- drops ---------------------------------------------------------------------------
    def drop(self, n: int, empty: bool) -> None:
        for _ in range(n):
            self.file_no += 1
            name = f"e{self.file_no:05d}.csv"
            lines = ["event_id,amount,note"]
            for _r in range(ROWS_PER_FILE):
                self.next_id += 1
                lines.append(f"{self.next_id},{self.rng.random() * 100:.2f},{name}")
                self.expected[str(self.next_id)] = name
            tmp = self.landing / (name + ".tmp")
            tmp.write_text("\n".join(lines) + "\n")
            tmp.replace(self.landing / name)  # atomic, as the docs ask of producers
            self.valid_files.append(name)
        if empty:
            self.file_no += 1
            name = f"e{self.file_no:05d}.csv"
            (self.landing / name).write_text("")
            self.empty_files.append(name)

    # -- runs ----------------------------------------------------------------------------
    def _pid_of(self, run_id: str) -> int | None:
        """The run worker's pid, from the run's 'Started process for run (pid: N)' event."""
        import dagster as dg

        if run_id in self._pids:
            return self._pids[run_id]
        for event in self.instance().all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            match = re.search(r"Started process for run \(pid: (\d+)\)", event.message or "")
            if match:
                self._pids[run_id] = int(match.group(1))
                return self._pids[run_id]
        return None

    def active_runs(self) -> list:
        import dagster as dg

        return self.instance().get_run_records(
            dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING])
        )

    def run_procs(self) -> list[tuple[int, int, str]]:
        """Live run workers of this instance and their descendants, minus a Spark server a
        run started (java) and compute-log helpers."""
        workers = {
            pid
            for rec in self.active_runs()
            if (pid := self._pid_of(rec.dagster_run.run_id)) and alive(pid)
        }
        procs = processes()
        tree, changed = set(workers), True
        while changed:
            changed = False
            for pid, ppid, cmd, _ in procs:
                if ppid in tree and pid not in tree and "java" not in cmd:
                    tree.add(pid)
                    changed = True
        return [
            (pid, ppid, cmd)
            for pid, ppid, cmd, _ in procs
            if pid in tree and "tail -F" not in cmd and "watch_orphans" not in cmd
        ]

    def wait_for_run(self, timeout: float = 45.0) -> list[tuple[int, int, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.reap()
            procs = self.run_procs()
            if procs:
                return procs
            time.sleep(0.5)
        return []

    def _claimed(self) -> list:
        storage = self.instance().event_log_storage
        return [
            s
            for key in storage.get_concurrency_keys()
            for s in storage.get_concurrency_info(key).claimed_slots
        ]

    def spark_servers(self) -> list[int]:
        """JVMs of this benchmark's private Spark state dir other than the recorded server:
        servers whose starter was killed before it wrote server.json (nobody owns them)."""
        try:
            recorded = json.loads((self.spark_state / "server.json").read_text())["pid"]
        except (OSError, ValueError, KeyError):
            recorded = None
        out = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) == recorded:
                continue
            try:
                cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes()
                env = Path(f"/proc/{entry.name}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if (
                b"java" in cmd
                and b"SparkConnectServer" in cmd
                and f"DATAHUB_SPARK_STATE={self.spark_state}".encode() in env
            ):
                out.append(int(entry.name))
        return out

    def instance(self):
        import dagster as dg

        if not hasattr(self, "_instance"):
            self._instance = dg.DagsterInstance.from_config(str(self.dagster_home))
        return self._instance

    def reap(self) -> None:
        """Report failed a STARTED/STARTING run whose worker process is gone (or that never
        got one within 90 s): the operator's force-termination; DefaultRunLauncher runs are
        not health-checked by run monitoring."""
        import dagster as dg

        inst = self.instance()
        # slots still claimed by runs that ended (as run monitoring's
        # free_slots_after_run_end_seconds would free them)
        for slot in self._claimed():
            run = inst.get_run_by_id(slot.run_id)
            if run is not None and run.is_finished and slot.run_id not in self.reaped:
                inst.event_log_storage.free_concurrency_slots_for_run(slot.run_id)
                self.slots_freed += 1
                log(f"   freed the spark slot of finished run {slot.run_id[:8]} ({run.status})")
        for rec in self.active_runs():
            run = rec.dagster_run
            pid = self._pid_of(run.run_id)
            if pid is not None:
                if alive(pid):
                    continue
            elif time.time() - _left_queue(rec) < 90:
                continue
            current = inst.get_run_by_id(run.run_id)  # it may have ended meanwhile
            if current.status not in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING):
                continue
            inst.report_run_failed(current, "chaos benchmark: run process is gone")
            # a step killed while holding a `spark` pool slot never gives it back (the slot
            # is freed by the step's own process); without this, two such kills block every
            # later run of the code location in QUEUED ("blocked by global concurrency
            # limits")
            self.slots_freed += len([s for s in self._claimed() if s.run_id == run.run_id])
            inst.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            self.reaped.add(run.run_id)
            log(
                f"   reaped run {run.run_id[:8]} ({run.tags.get('datahub/ingest', 'auto')}, "
                f"pid {pid})"
            )

    # -- faults --------------------------------------------------------------------------
    def catalog_db(self) -> Path:
        return self.home / "catalog.db"

    def table_data_dir(self, layer: str) -> Path | None:
        from datahub_resources.iceberg import load_catalog
        from datahub_resources.settings import Settings

        try:
            table = load_catalog(Settings.from_env()).load_table((f"{APP}_{layer}", "events"))
        except Exception:  # noqa: BLE001 - not created yet
            return None
        return Path(table.location().removeprefix("file://")) / "data"

    def inject(self, kind: str, procs: list) -> dict:
        fault = {"kind": kind, "run_alive": bool(procs), "at": round(time.time(), 1)}
        if kind == "kill_run":
            procs = self.run_procs() or procs
            if not procs:
                fault["detail"] = "no run process"
                return fault
            pid, _, cmd = self.rng.choice(procs)
            fault["detail"] = f"run process pid {pid}"
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                fault["detail"] += " (already gone)"
        elif kind == "kill_spark":
            try:
                info = json.loads((self.spark_state / "server.json").read_text())
                os.killpg(os.getpgid(info["pid"]), signal.SIGKILL)
                fault["detail"] = f"spark pid {info['pid']}"
            except (OSError, ValueError, KeyError) as exc:
                fault["detail"] = f"no spark server ({exc.__class__.__name__})"
        elif kind == "kill_daemon":
            group = self.rng.random() < 0.5
            fault["detail"] = "process group" if group else "daemon pid only"
            self.daemon.kill(group)
            time.sleep(self.rng.uniform(0, 3))
            self.start_daemon()
        elif kind == "catalog_lock":
            hold = self.rng.uniform(7, 10)
            con = sqlite3.connect(self.catalog_db(), timeout=30, isolation_level=None)
            try:
                con.execute("BEGIN EXCLUSIVE")
                time.sleep(hold)
                con.execute("ROLLBACK")
            finally:
                con.close()
            fault["detail"] = f"exclusive lock {hold:.1f} s"
        elif kind == "data_readonly":
            layer = self.rng.choice(("raw", "bronze"))
            folder = self.table_data_dir(layer) or self.table_data_dir("raw")
            if folder is None or not folder.exists():
                fault["detail"] = "no table yet"
                return fault
            hold = self.rng.uniform(8, 12)
            # chmod does not stop root (this box runs as uid 0): the immutable attribute does
            how = "chattr +i" if os.geteuid() == 0 else "chmod 555"
            if os.geteuid() == 0:
                subprocess.run(["chattr", "+i", str(folder)], check=True)
            else:
                folder.chmod(0o555)
            try:
                time.sleep(hold)
            finally:
                if os.geteuid() == 0:
                    subprocess.run(["chattr", "-i", str(folder)], check=True)
                else:
                    folder.chmod(0o755)
            fault["detail"] = f"{layer} data/ unwritable ({how}) {hold:.1f} s"
        return fault

    # -- end state -----------------------------------------------------------------------
    def busy(self) -> bool:
        import dagster as dg

        active = self.instance().get_run_records(
            dg.RunsFilter(
                statuses=[
                    dg.DagsterRunStatus.QUEUED,
                    dg.DagsterRunStatus.NOT_STARTED,
                    dg.DagsterRunStatus.STARTING,
                    dg.DagsterRunStatus.STARTED,
                    dg.DagsterRunStatus.CANCELING,
                ]
            )
        )
        return bool(active)

    def counts(self) -> tuple[int, int]:
        from datahub_resources.iceberg import load_catalog
        from datahub_resources.settings import Settings

        catalog = load_catalog(Settings.from_env())
        out = []
        for layer in ("raw", "bronze"):
            try:
                snap = catalog.load_table((f"{APP}_{layer}", "events")).current_snapshot()
                out.append(int(snap.summary.get("total-records", 0)) if snap else 0)
            except Exception:  # noqa: BLE001
                out.append(-1)
        return out[0], out[1]

    def recover(self, since: float, timeout: float) -> float | None:
        """Seconds until an ingest run that ended after `since` succeeded, or landing held
        no CSV; None after `timeout`."""
        import dagster as dg

        start = time.monotonic()
        while time.monotonic() - start < timeout:
            self.reap()
            done = self.instance().get_run_records(
                dg.RunsFilter(
                    statuses=[dg.DagsterRunStatus.SUCCESS],
                    tags={"datahub/ingest": f"{APP}.events_raw"},
                ),
                limit=1,
            )
            if (done and done[0].end_time and done[0].end_time > since) or not any(
                self.landing.glob("*.csv")
            ):
                return round(time.monotonic() - start, 1)
            time.sleep(1)
        return None

    def settle(self, timeout: float) -> dict:
        start = time.monotonic()
        quiet_since = None
        while time.monotonic() - start < timeout:
            self.reap()
            left = sorted(p.name for p in self.landing.glob("*.csv"))
            raw, bronze = self.counts()
            done = not left and not self.busy() and raw == bronze == len(self.expected)
            if done:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 10:  # nothing new starts for 10 s
                    return {"settled": True, "settle_s": round(time.monotonic() - start, 1)}
            else:
                quiet_since = None
            time.sleep(2)
        return {
            "settled": False,
            "settle_s": round(time.monotonic() - start, 1),
            "left": [p.name for p in self.landing.glob("*.csv")],
            "counts": self.counts(),
        }

    def verify(self) -> dict:
        from datahub_assets.ingest.ledger import ledger_ref, read_ledger
        from datahub_resources.iceberg import load_catalog
        from datahub_resources.settings import Settings

        catalog = load_catalog(Settings.from_env())
        out: dict = {"tables": {}}
        for ns in catalog.list_namespaces():
            for ident in catalog.list_tables(ns):
                name = ".".join(ident)
                try:
                    out["tables"][name] = catalog.load_table(ident).scan().to_arrow().num_rows
                except Exception as exc:  # noqa: BLE001 - unreadable is the finding
                    out["tables"][name] = f"UNREADABLE: {exc.__class__.__name__}: {exc}"
        out["tables_unreadable"] = sum(isinstance(v, str) for v in out["tables"].values())
        for layer in ("raw", "bronze"):
            try:
                ids = [
                    str(v)
                    for v in catalog.load_table((f"{APP}_{layer}", "events"))
                    .scan(selected_fields=("event_id",))
                    .to_arrow()["event_id"]
                    .to_pylist()
                ]
            except Exception:  # noqa: BLE001
                ids = []
            counts = collections.Counter(ids)
            lost = [i for i in self.expected if counts[i] == 0]
            dup = {i: c for i, c in counts.items() if c > 1}
            out[layer] = {
                "rows": len(ids),
                "expected": len(self.expected),
                "lost": len(lost),
                "duplicated_ids": len(dup),
                "duplicate_rows": sum(c - 1 for c in dup.values()),
                "unexpected": len([i for i in counts if i not in self.expected]),
                "lost_files": sorted({self.expected[i] for i in lost})[:20],
                "duplicated_files": sorted({self.expected[i] for i in dup if i in self.expected})[
                    :20
                ],
            }
        ref = ledger_ref(APP, "events_raw")
        try:
            ledger = read_ledger(catalog.load_table((ref.namespace, ref.table)))
            by_status = collections.Counter(e.status for e in ledger)
            names = collections.Counter(Path(e.path).name for e in ledger if e.status == "ingested")
            out["ledger"] = {
                "entries": len(ledger),
                **by_status,
                "files_ingested_twice": sum(1 for c in names.values() if c > 1),
            }
        except Exception as exc:  # noqa: BLE001
            out["ledger"] = {"error": str(exc)}
        processed = [p.name for p in (self.data / APP / "processed").rglob("*.csv")]
        rejected = [p.name for p in (self.data / APP / "rejected").rglob("*.csv")]
        out["files"] = {
            "valid_dropped": len(self.valid_files),
            "empty_dropped": len(self.empty_files),
            "left_in_landing": sorted(p.name for p in self.landing.glob("*.csv")),
            "processed": len(processed),
            "rejected": len(rejected),
            "valid_rejected": sorted(set(rejected) & set(self.valid_files)),
            "empty_not_rejected": sorted(set(self.empty_files) - set(rejected)),
        }
        return out

    def run_stats(self) -> dict:
        import dagster as dg

        inst = self.instance()
        recs = inst.get_run_records(dg.RunsFilter())
        by, why = collections.Counter(), collections.Counter()
        for r in recs:
            kind = "ingest" if "datahub/ingest" in r.dagster_run.tags else "other"
            by[f"{kind}_{r.dagster_run.status.value.lower()}"] += 1
            if r.dagster_run.status != dg.DagsterRunStatus.FAILURE:
                continue
            if r.dagster_run.run_id in self.reaped:
                why["process gone (reaped)"] += 1
                continue
            reason = "run failure"
            for e in inst.all_logs(r.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
                err = e.dagster_event.step_failure_data.error
                while err and err.cause:
                    err = err.cause
                reason = f"{err.cls_name}: {err.message.strip()[:90]}" if err else reason
            why[reason] += 1
        return {
            "runs": len(recs),
            **dict(sorted(by.items())),
            "failures": dict(why.most_common(12)),
        }


# ------------------------------------------------------------------------------ main


def run(args: argparse.Namespace) -> dict:
    h = Harness(args.seed)
    h.setup()
    before = machine()
    started = time.monotonic()
    budget = args.minutes * 60
    h.instance()  # create the instance's storage before the daemon opens it
    h.start_daemon()
    try:
        # round 0: no fault; creates the tables (and starts the private Spark server)
        h.drop(2, empty=False)
        log("round 0 (no fault): waiting for the first ingest and bronze")
        first = h.settle(300)
        log(f"   {first}")
        order: list[str] = []
        rounds = 0
        while rounds < args.rounds and time.monotonic() - started < budget:
            rounds += 1
            if not order:
                order = list(args.kinds)
                h.rng.shuffle(order)
            kind = order.pop()
            h.drop(h.rng.randint(1, 3), empty=h.rng.random() < 0.1)
            procs = h.wait_for_run()
            time.sleep(h.rng.uniform(0, 12))  # a run here takes ~15 s: hit any phase
            fault = h.inject(kind, procs)
            fault["round"] = rounds
            h.faults.append(fault)
            raw, bronze = h.counts()
            log(
                f"round {rounds}: {kind} ({fault.get('detail', '')}); run alive "
                f"{fault['run_alive']}; rows raw {raw} bronze {bronze} / {len(h.expected)}"
            )
            if not h.daemon.running:  # died by itself (a kill of a child)
                log("   daemon exited: restarting")
                h.start_daemon()
            # recovery: the next round's fault waits until a batch commits again (or landing
            # is empty), at most --recover s, so faults interleave with successful commits
            fault["recovered_s"] = h.recover(fault["at"], args.recover)
        faults_s = round(time.monotonic() - started, 1)
        log("rounds done: waiting for the backlog to settle")
        settle = h.settle(args.settle)
        log(f"   {settle}")
        result = h.verify()
        stats = h.run_stats()
    finally:
        h.stop_daemon()
        leaked = h.spark_servers()
        h._stop_spark()
        for pid in leaked + h.spark_servers():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    by_kind = collections.Counter(f["kind"] for f in h.faults)
    effective = collections.Counter(
        f["kind"]
        for f in h.faults
        if f["run_alive"] and not str(f.get("detail", "")).startswith(("no ", "no spark"))
    )
    out = {
        "benchmark": "chaos",
        "date": now(),
        "revision": revision(),
        "seed": args.seed,
        "rounds": len(h.faults),
        "rounds_requested": args.rounds,
        "faults_by_kind": by_kind,
        "faults_during_a_run": effective,
        "faults_s": faults_s,
        "wall_s": round(time.monotonic() - started, 1),
        **settle,
        "first_round": first,
        "runs_reaped": len(h.reaped),
        "slots_freed": h.slots_freed,
        "spark_servers_orphaned": len(leaked),
        "run_stats": stats,
        "rounds_recovered": sum(f.get("recovered_s") is not None for f in h.faults),
        "daemon_starts": h.daemon.starts,
        **result,
        "faults": h.faults,
        "machine_before": before,
        "machine_after": machine(),
    }
    out["lost"] = out["raw"]["lost"]
    out["duplicated"] = out["raw"]["duplicate_rows"]
    out["ok"] = (
        out["raw"]["lost"]
        == out["raw"]["duplicate_rows"]
        == out["raw"]["unexpected"]
        == out["bronze"]["lost"]
        == out["bronze"]["duplicate_rows"]
        == 0
        and out["tables_unreadable"] == 0
        and not out["files"]["left_in_landing"]
        and not out["files"]["valid_rejected"]
    )
    return out


def _write(r: dict) -> None:
    kinds = ", ".join(f"{k} {r['faults_by_kind'].get(k, 0)}" for k in KINDS)
    load = f"{r['machine_before']['loadavg'][0]} → {r['machine_after']['loadavg'][0]}"
    row = (
        f"| {r['date'].replace('T', ' ')[:16]} | {r['revision']} | {r['rounds']} | {kinds} | "
        f"{r['files']['valid_dropped']} ({r['raw']['expected']} rows) | "
        f"**{r['raw']['lost']} / {r['raw']['duplicate_rows']}** | "
        f"{r['bronze']['lost']} / {r['bronze']['duplicate_rows']} | "
        f"{len(r['files']['left_in_landing'])} | {r['tables_unreadable']} | "
        f"{r['runs_reaped']} | {r['wall_s']} | {load} |"
    )
    text = RESULTS_MD.read_text()
    marker = "<!-- chaos rows -->"
    if marker in text:
        RESULTS_MD.write_text(text.replace(marker, row + "\n" + marker))
        print(f"appended a row to {RESULTS_MD}")
    else:
        print("no chaos table in RESULTS.md; row:\n" + row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument(
        "--minutes",
        type=float,
        default=180.0,
        help="stop injecting after this many minutes even if rounds remain",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=600.0,
        help="seconds to wait for the backlog after the last round",
    )
    parser.add_argument(
        "--recover",
        type=float,
        default=45.0,
        help="after a fault, wait at most this long for a batch to commit",
    )
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=KINDS,
        default=list(KINDS),
        help="fault kinds to cycle through (default: all five)",
    )
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    # `kill <pid>` stops the benchmark through its finally: (daemon, Spark servers)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    out = run(args)
    write_json(WORK / "results" / "chaos.json", out)
    print(
        json.dumps(
            {
                k: out[k]
                for k in (
                    "rounds",
                    "faults_by_kind",
                    "faults_during_a_run",
                    "lost",
                    "duplicated",
                    "runs_reaped",
                    "slots_freed",
                    "spark_servers_orphaned",
                    "rounds_recovered",
                    "settled",
                    "wall_s",
                    "tables_unreadable",
                    "ok",
                )
            },
            default=str,
        )
    )
    print(
        json.dumps(
            {k: out[k] for k in ("raw", "bronze", "files", "ledger", "run_stats")}, default=str
        )
    )
    if args.write:
        _write(out)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
