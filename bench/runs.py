"""Run records (issue #9 item 4): the `datahub_run_records` sensor's tick over 10,000 runs.

    .venv/bin/python -m bench.runs [--runs 10000] [--new 10] [--steady 5] [--write]
    (`bench/run.py runs`)

Instance: a temporary SQLite Dagster instance configured by the repo's dagster.yaml (the
local default, and the worst case: one SQLite file per run for its events), catalog and
warehouse in a temporary DATAHUB_HOME.

Seeding: three real runs in this process (`dg.materialize`) of three stand-in pipelines that
look to the recorder exactly like Data Hub's (one multi_asset op `bench__<id>` tagged
`datahub/pipeline=bench.<id>`, targets `[bench, <layer>, <table>]`, materialisations with
`dagster/row_count`, `datahub/snapshot_id`, `datahub/iceberg_table`, asset checks, a failing
step) but do no Spark work: all pipelines succeed / gold fails / raw fails a blocking check
(silver skipped). Then `--runs` copies of those runs under new run ids, through the
instance's own write path (`add_run`, then `handle_new_event` for each event, which also sets
the run's status and start/end times), spread over the last 14 days and tagged as schedule,
file-drop, automation and manual runs.

Measured, with the real sensor evaluated as the code server does (`build_sensor_context`
with its `iceberg` resource and the definitions, `evaluate_tick`):
  backfill   the first start over the whole history: ticks until nothing is left (per tick:
             max and median s; the number of ticks; total s);
  steady     a tick when nothing finished since the last one (median of `--steady`);
  new runs   a tick after `--new` more runs finished.
Verified: one row per (run, pipeline) for every seeded run, none twice.
`--write` appends the row to the "## Run records" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import machine, revision  # noqa: E402

TARGET_S = 2.0
TRIGGERS = [
    {"dagster/schedule_name": "nightly"},
    {"dagster/sensor_name": "watch__bench__orders_raw__orders"},
    {"dagster/sensor_name": "datahub_follow_0", "dagster/from_automation_condition": "true"},
    {"dagster/sensor_name": "datahub_automation", "dagster/from_automation_condition": "true"},
    {},
]


def stand_in_assets():
    """Three pipelines shaped like the factory's (op name, op tag, metadata), no Spark."""
    import dagster as dg

    def pipeline(pid: str, layer: str, deps: list, checks=()):
        key = dg.AssetKey(["bench", layer, "orders"])

        @dg.multi_asset(
            name=f"bench__{pid}",
            op_tags={"datahub/pipeline": f"bench.{pid}"},
            specs=[dg.AssetSpec(key, deps=deps, group_name=layer)],
            check_specs=[dg.AssetCheckSpec(c, asset=key, blocking=True) for c in checks],
            config_schema={"fail": dg.Field(bool, default_value=False)},
        )
        def _asset(context):
            if context.op_config["fail"]:
                raise RuntimeError(
                    f"bench/{layer}/{pid}.xml:4:5: column no_such_column_"
                    f"{random.randint(1, 99)} cannot be resolved"
                )
            yield dg.MaterializeResult(
                asset_key=key,
                metadata={
                    "dagster/row_count": 1000,
                    "datahub/snapshot_id": str(random.getrandbits(62)),
                    "datahub/iceberg_table": f"bench_{layer}.orders",
                },
            )
            for c in checks:
                yield dg.AssetCheckResult(asset_key=key, check_name=c, passed=True)

        return _asset

    raw = pipeline("orders_raw", "raw", [], checks=("not_null_id", "unique_id"))
    silver = pipeline("orders_silver", "silver", [dg.AssetKey(["bench", "raw", "orders"])])
    gold = pipeline("orders_gold", "gold", [dg.AssetKey(["bench", "silver", "orders"])])
    return [raw, silver, gold]


KEEP = (
    "RUN_START",
    "RUN_SUCCESS",
    "RUN_FAILURE",
    "STEP_START",
    "STEP_SUCCESS",
    "STEP_FAILURE",
    "ASSET_MATERIALIZATION",
    "ASSET_CHECK_EVALUATION",
)


def templates(instance, assets) -> list:
    """3 real runs: all succeed / gold fails / raw fails (silver and gold skipped); for
    each, the run and its events of the types the recorder reads or that set run times."""
    import dagster as dg

    out = []
    for fail in (None, "bench__orders_gold", "bench__orders_raw"):
        config = {
            "ops": {a.node_def.name: {"config": {"fail": a.node_def.name == fail}} for a in assets}
        }
        result = dg.materialize(assets, instance=instance, run_config=config, raise_on_error=False)
        run = instance.get_run_by_id(result.run_id)
        events = [
            e
            for e in instance.all_logs(result.run_id)
            if e.dagster_event is not None and e.dagster_event.event_type.name in KEEP
        ]
        out.append((run, events))
    return out


def _empty_shard(instance) -> Path | None:
    """On SQLite, an initialised, empty per-run event shard to copy for each new run: the
    bench then skips Dagster's per-shard schema creation and alembic check (~0.1 s a run,
    which would make seeding 10,000 runs take hours); the events are still written by
    `handle_new_event`. Touches storage internals: a bench shortcut, nothing else does."""
    storage = instance.event_log_storage
    if not hasattr(storage, "path_for_shard"):
        return None
    with storage.run_connection("bench-template-shard"):
        pass
    return Path(storage.path_for_shard("bench-template-shard"))


def clone(instance, template_runs: list, runs: int, now: float, seed: int = 7) -> list[str]:
    """`runs` copies of the template runs under new run ids (8 in 10 succeed), spread over
    the 14 days before `now`, with trigger tags in turn; the new run ids."""
    shard = _empty_shard(instance)
    storage = instance.event_log_storage
    rng = random.Random(seed)
    ids = []
    with _no_fsync():
        for i in range(runs):
            ids.append(_clone_one(instance, storage, shard, template_runs, i, rng, now))
    return ids


@contextmanager
def _no_fsync():
    """SQLite without fsync while seeding (the bench's seeding speed is not measured; the
    ticks run with the defaults again)."""
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def fast(dbapi_connection, _record):
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.execute("PRAGMA synchronous=OFF")

    event.listen(Engine, "connect", fast)
    try:
        yield
    finally:
        event.remove(Engine, "connect", fast)


def _clone_one(instance, storage, shard, template_runs, i, rng, now) -> str:
    import dagster as dg

    run, events = template_runs[0 if i % 10 < 8 else 1 + i % 2]
    new_id = str(uuid.uuid4())
    if shard is not None:
        shutil.copyfile(shard, storage.path_for_shard(new_id))
        storage._initialized_dbs.add(new_id)
    tags = {**run.tags, **TRIGGERS[i % len(TRIGGERS)]}
    instance.add_run(run._replace(run_id=new_id, tags=tags, status=dg.DagsterRunStatus.NOT_STARTED))
    shift = now - rng.uniform(60, 14 * 86400) - events[0].timestamp
    for e in events:
        instance.handle_new_event(e._replace(run_id=new_id, timestamp=e.timestamp + shift))
    return new_id


def tick(sensor, instance, defs, cursor):
    import dagster as dg

    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=defs,
        resources={"iceberg": defs.resources["iceberg"]},
    ) as ctx:
        started = time.perf_counter()
        result = sensor.evaluate_tick(ctx)
        return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--new", type=int, default=10)
    parser.add_argument("--steady", type=int, default=5)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    (work / "dagster").mkdir()
    shutil.copy(ROOT / "dagster.yaml", work / "dagster" / "dagster.yaml")
    os.environ.update(
        DATAHUB_HOME=str(work / "home"),
        DAGSTER_HOME=str(work / "dagster"),
        DATAHUB_PIPELINES_DIR=str(work / "pipes"),
    )
    (work / "pipes").mkdir()
    import dagster as dg

    from datahub_assets.runs.defs import ops_definitions
    from datahub_assets.runs.store import read_rows
    from datahub_assets.spec.loader import load_project
    from datahub_resources.deployment import resources
    from datahub_resources.iceberg import load_catalog

    assets = stand_in_assets()
    ops_assets, sensor = ops_definitions(load_project(work / "pipes"))
    defs = dg.Definitions(assets=[*assets, *ops_assets], sensors=[sensor], resources=resources())
    instance = dg.DagsterInstance.get()
    started = time.perf_counter()
    template_runs = templates(instance, assets)
    clone(instance, template_runs, args.runs, time.time())
    seed_s = time.perf_counter() - started
    print(f"seeded {args.runs} runs (+3 templates) in {seed_s:.0f} s", flush=True)

    backfill, cursor = [], None
    while True:
        seconds, result = tick(sensor, instance, defs, cursor)
        cursor = result.cursor or cursor
        if not result.asset_events:
            break
        backfill.append(seconds)
    steady = [tick(sensor, instance, defs, cursor)[0] for _ in range(args.steady)]
    clone(instance, template_runs, args.new, time.time(), seed=8)
    new_s, result = tick(sensor, instance, defs, cursor)

    rows = read_rows(load_catalog(), None, ("run_id", "pipeline"))
    pairs = {(r["run_id"], r["pipeline"]) for r in rows}
    expected = 3 * (args.runs + args.new + len(template_runs))
    verified = len(rows) == len(pairs) == expected
    out = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "revision": revision(),
        "runs": args.runs,
        "seed_s": round(seed_s, 1),
        "backfill_ticks": len(backfill),
        "backfill_total_s": round(sum(backfill), 2),
        "backfill_tick_max_s": round(max(backfill), 3),
        "backfill_tick_median_s": round(statistics.median(backfill), 3),
        "steady_tick_s": round(statistics.median(steady), 4),
        "new_runs": args.new,
        "new_runs_tick_s": round(new_s, 3),
        "rows": len(rows),
        "expected_rows": expected,
        "verified": verified,
        "load": machine()["loadavg"],
    }
    print(json.dumps(out, indent=2))
    if args.write:
        _write(out)
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if verified and max([*backfill, *steady, new_s]) < TARGET_S else 1)


HEADER = """
## Run records (issue #9 item 4)

Target: the `datahub_run_records` sensor's tick stays under 2 s with 10,000 runs in the
instance (`bench/run.py runs`; method in `bench/runs.py`'s docstring).

| date (UTC) | revision | runs in instance | seeding s | backfill: ticks / total s \
| backfill tick s: median / max | steady tick s (median) | tick after 10 new runs s \
| rows (expected) | load |
|---|---|---:|---:|---|---|---:|---:|---|---|
"""


def _write(r: dict) -> None:
    """Add the row to the section's table (after its last row), creating the section."""
    results = ROOT / "bench" / "RESULTS.md"
    text = results.read_text()
    title = "## Run records (issue #9 item 4)"
    if title not in text:
        text = text.rstrip("\n") + "\n" + HEADER
    row = (
        f"| {r['date']} | {r['revision']} | {r['runs']:,} | {r['seed_s']} | "
        f"{r['backfill_ticks']} / {r['backfill_total_s']} | {r['backfill_tick_median_s']} / "
        f"**{r['backfill_tick_max_s']}** | **{r['steady_tick_s']}** | {r['new_runs_tick_s']} | "
        f"{r['rows']:,} ({'ok' if r['verified'] else 'MISMATCH'}: {r['expected_rows']:,}) | "
        f"{r['load'][0]} |"
    )
    lines = text.rstrip("\n").split("\n")
    section = lines.index(title)
    last = max(i for i, line in enumerate(lines) if i > section and line.startswith("|"))
    lines.insert(last + 1, row)
    results.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
