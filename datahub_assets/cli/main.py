"""`datahub` operator commands: validate definitions, demo data, tables, the Spark server."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from datahub_resources.settings import Settings


def _validate(_args: argparse.Namespace, settings: Settings) -> int:
    from datahub_assets.spec.errors import SpecErrors
    from datahub_assets.spec.loader import load_project

    try:
        project = load_project(settings.pipelines_dir)
    except SpecErrors as exc:
        print(exc, file=sys.stderr)
        return 1
    targets = sum(len(p.targets) for p in project.pipelines)
    print(
        f"ok: {len(project.pipelines)} pipelines, {targets} assets in "
        f"{len(project.apps)} apps under {settings.pipelines_dir}"
    )
    return 0


DEMO_APPS = ("ecommerce", "github", "customer", "crm")


def _reset_demo(settings: Settings) -> None:
    """Drop the example apps' tables (file ledgers included) and their landing, processed,
    rejected and service files (nothing else)."""
    import shutil

    from datahub_resources.iceberg import load_catalog

    catalog = load_catalog(settings)
    for (namespace,) in catalog.list_namespaces():
        if namespace.split("_")[0] not in DEMO_APPS:
            continue
        for ident in catalog.list_tables(namespace):
            location = catalog.load_table(ident).location()
            catalog.drop_table(ident)
            if location.startswith("file://"):
                shutil.rmtree(location.removeprefix("file://"), ignore_errors=True)
        catalog.drop_namespace(namespace)
    for app in DEMO_APPS:
        for folder in ("landing", "processed", "rejected", "service"):
            shutil.rmtree(settings.data_dir / app / folder, ignore_errors=True)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from datahub_assets.demo.data import generate

    if args.fresh:
        _reset_demo(settings)
        print(f"dropped the tables and sample files of {', '.join(DEMO_APPS)}")
    if args.touch_crm:
        from datahub_assets.demo.databases import touch_crm

        touch_crm(settings.home)
        print("crm: updated customer 1 and added orders (one at the watermark's timestamp)")
        return 0
    files = generate(settings.data_dir, rows=args.rows, seed=args.seed)
    count = sum(len(v) for v in files.values())
    print(f"wrote {count} sample files for {', '.join(sorted(files))} under {settings.data_dir}")
    _settle(settings)
    from datahub_assets.demo.databases import seed_crm

    counts = seed_crm(settings.home, rows=args.rows, seed=args.seed)
    print(
        "seeded crm: PostgreSQL crm.public.customers ({customers}), orders ({orders}); "
        "MongoDB catalog.products ({products})".format(**counts)
    )
    return 0


def _launch(args: argparse.Namespace, settings: Settings) -> int:
    """A run of the workspace's code location (see datahub_assets/cli/launch.py)."""
    import dagster as dg

    from datahub_assets.cli.launch import LaunchError, launch_assets

    workspace = Path(args.workspace).resolve()
    if not workspace.exists():
        print(f"error: {workspace} does not exist (pass --workspace)", file=sys.stderr)
        return 1
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        try:
            run = launch_assets(instance, workspace, args.assets, args.location)
        except LaunchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    origin = run.remote_job_origin
    where = origin.location_name if origin else "?"
    print(f"run {run.run_id} ({where}, {args.assets}): {run.status.value}")
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        for line in _engines_of_run(instance, run.run_id):
            print(line)
    if run.status != dg.DagsterRunStatus.SUCCESS:
        print(f"see {settings.ui_url}/runs/{run.run_id} (make dev)", file=sys.stderr)
        return 1
    return 0


def _engines_of_run(instance, run_id: str) -> list[str]:
    """One line per materialised asset of the run: the engine that ran it and why (the
    `datahub/engine` metadata of `runtime/engine.py`; Python assets run on Spark)."""
    import dagster as dg

    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10_000
    ).records
    rows: dict[str, tuple[str, str]] = {}
    for record in records:
        mat = record.event_log_entry.asset_materialization
        if mat is None:
            continue
        meta = mat.metadata
        engine = meta.get("datahub/engine")
        reason = meta.get("datahub/engine_reason")
        rows[mat.asset_key.to_user_string()] = (
            str(engine.value) if engine else "spark",
            str(reason.value) if reason else "Python asset",
        )
    if not rows:
        return []
    counts = {
        e: sum(1 for v in rows.values() if v[0] == e) for e in sorted({v[0] for v in rows.values()})
    }
    lines = ["engines: " + ", ".join(f"{e} {n} asset(s)" for e, n in counts.items())]
    lines += [f"  {key}: {engine} ({reason})" for key, (engine, reason) in sorted(rows.items())]
    return lines


def _settle(settings: Settings) -> None:
    """Wait until the sample files are older than the watched sources' minAgeSeconds
    (`demo_data.settle`)."""
    from datahub_assets.demo.data import settle

    print("waiting for the files to settle in landing (minAgeSeconds)")
    settle(settings.pipelines_dir, DEMO_APPS)


def _servers(args: argparse.Namespace, settings: Settings) -> int:
    from datahub_assets.demo import databases as dbs

    if args.action == "stop":
        stopped = dbs.stop_servers(settings.home, purge=args.purge)
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return 0
    if args.action == "start":
        dbs.start_servers(settings.home)
    state = dbs.status(settings.home)
    for kind, server in state.items():
        print(
            f"{kind}: "
            + (
                f"running on 127.0.0.1:{server.port} (pid {server.pid}, {server.root})"
                if server
                else "not running"
            )
        )
    return 0 if all(state.values()) else 3


def _tables(_args: argparse.Namespace, settings: Settings) -> int:
    from datahub_assets.python.discovery import discover
    from datahub_assets.spec.loader import load_project
    from datahub_resources.iceberg import load_catalog

    catalog = load_catalog(settings)
    project = load_project(settings.pipelines_dir)
    refs = [t.ref for spec in project.pipelines for t in spec.targets if t.target.kind == "table"]
    refs += list(discover(settings.pipelines_dir).tables)  # Python assets' tables
    rows = [("asset", "rows", "snapshot id")]
    for ref in refs:
        ident = (ref.namespace, ref.table)
        if not catalog.table_exists(ident):
            rows.append((str(ref), "-", "not materialised"))
            continue
        snap = catalog.load_table(ident).current_snapshot()
        summary = snap.summary if snap else None
        total = summary.additional_properties.get("total-records", "0") if summary else "0"
        rows.append((str(ref), total, str(snap.snapshot_id) if snap else "-"))
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)))
    return 0


def _history(args: argparse.Namespace, settings: Settings) -> int:
    from datahub_assets.cli.ops import history, parse_table
    from datahub_resources.iceberg import load_catalog

    rows = history(load_catalog(settings), parse_table(args.table))
    header = (
        "snapshot id",
        "committed at (UTC)",
        "operation",
        "+rows",
        "-rows",
        "total",
        "run id",
        "refs",
    )
    table = [header] + [
        (
            str(r["snapshot_id"]),
            r["committed_at"],
            r["operation"] or "",
            str(r["added_records"] or 0),
            str(r["deleted_records"] or 0),
            str(r["total_records"] or 0),
            (r["run_id"] or "")[:8],
            ",".join(r["refs"])
            + (" (current)" if r["current"] and "main" not in r["refs"] else ""),
        )
        for r in rows
    ]
    width = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)))
    return 0


def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    from datahub_assets.cli.ops import parse_table, rollback
    from datahub_resources.iceberg import load_catalog

    before, after = rollback(load_catalog(settings), parse_table(args.table), args.to)
    print(f"{args.table}: main moved from snapshot {before} to {after}")
    return 0


def _spark(args: argparse.Namespace, settings: Settings) -> int:
    from datahub_resources import spark_server

    state = settings.spark_state_dir
    if args.action == "start":
        info = spark_server.ensure_running(state)
        print(f"running: {info.remote} (pid {info.pid}, log {info.log})")
    elif args.action == "stop":
        print("stopped" if spark_server.stop(state) else "not running")
    else:
        if settings.spark_remote:
            print(f"remote: {settings.spark_remote} (DATAHUB_SPARK_REMOTE)")
            return 0
        info = spark_server.status(state)
        print(f"running: {info.remote} (pid {info.pid}, log {info.log})" if info else "not running")
        return 0 if info else 3
    return 0


def _watermark(args: argparse.Namespace, settings: Settings) -> int:
    from datahub_assets.cli import ops
    from datahub_assets.spec.loader import load_project
    from datahub_resources.iceberg import load_catalog

    spec = ops.find_pipeline(load_project(settings.pipelines_dir), args.pipeline)
    catalog = load_catalog(settings)
    if args.action == "reset":
        snapshot = ops.reset_watermarks(catalog, spec, args.source)
        print(
            f"{spec.key}: watermark reset"
            + (
                f" (snapshot {snapshot}); the next run reads every row"
                if snapshot
                else ": the table does not exist yet, nothing to reset"
            )
        )
        return 0
    for w in ops.watermarks(catalog, spec):
        value = (
            f"{w['value']} ({w['type']}, snapshot {w['snapshot_id']})"
            if w["value"]
            else "none: the next run reads every row"
        )
        print(f"{spec.key} source {w['source']} column {w['column']} in {w['table']}: {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="datahub", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("validate", help="parse and validate every pipeline definition")
    demo = sub.add_parser("demo", help="write deterministic sample files for the example apps")
    demo.add_argument("--rows", type=int, default=1000)
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument(
        "--fresh",
        action="store_true",
        help="first drop the example apps' tables and sample files, so the demo "
        "starts from nothing (raw pipelines ingest each file in landing/ "
        "once and move it to processed/)",
    )
    demo.add_argument(
        "--touch-crm",
        action="store_true",
        help="only change the crm source data (new and updated rows), to show an incremental run",
    )
    launch = sub.add_parser(
        "launch",
        help="run assets as a run of the workspace's code location (as the UI launches it)",
    )
    launch.add_argument(
        "--assets", default="*", help="Dagster selection, e.g. '*', 'key:\"ecommerce/*\"'"
    )
    launch.add_argument("--workspace", default="workspace.yaml", help="default ./workspace.yaml")
    launch.add_argument("--location", default=None, help="code location (default: the only one)")
    servers = sub.add_parser(
        "servers", help="the crm example's local PostgreSQL and MongoDB-wire servers"
    )
    servers.add_argument("action", choices=["status", "start", "stop"])
    servers.add_argument(
        "--purge",
        action="store_true",
        help="with stop: also delete the servers' data (make clean does)",
    )
    sub.add_parser("tables", help="list every table asset with its rows and current snapshot")
    hist = sub.add_parser("history", help="snapshots of a table, newest first")
    hist.add_argument("table", help="<app>.<layer>.<table>")
    back = sub.add_parser("rollback", help="point a table's main branch at an older snapshot")
    back.add_argument("table", help="<app>.<layer>.<table>")
    back.add_argument(
        "--to",
        type=int,
        default=None,
        help="snapshot id (default: the parent of the current snapshot)",
    )
    mark = sub.add_parser("watermark", help="committed watermarks of incremental sources")
    mark.add_argument("action", choices=["show", "reset"])
    mark.add_argument("pipeline", help="<app>.<pipeline id>")
    mark.add_argument("--source", default=None, help="only this source (reset)")
    spark = sub.add_parser("spark", help="the local shared Spark Connect server")
    spark.add_argument("action", choices=["status", "start", "stop"])
    from datahub_assets.cli import mongo as mongo_cli

    mongo_cli.add_parser(sub)
    from datahub_assets.cli import runs as runs_cli

    runs_cli.add_parser(sub)
    from datahub_assets.cli import sql as sql_cli

    sql_cli.add_parser(sub)
    from datahub_assets.cli import maintain as maintain_cli

    maintain_cli.add_parser(sub)
    from datahub_assets.cli import scaffold

    scaffold.add_parser(sub)
    from datahub_assets.cli import audit as audit_cli
    from datahub_assets.cli import serve as serve_cli
    from datahub_assets.cli import users as users_cli

    serve_cli.add_parser(sub)
    users_cli.add_parser(sub)
    audit_cli.add_parser(sub)
    args = parser.parse_args(argv)
    handler = {
        "validate": _validate,
        "demo": _demo,
        "launch": _launch,
        "tables": _tables,
        "spark": _spark,
        "history": _history,
        "rollback": _rollback,
        "watermark": _watermark,
        "servers": _servers,
        "mongo": mongo_cli.run,
        "runs": runs_cli.run,
        "sql": sql_cli.run,
        "maintain": maintain_cli.run,
        "new": scaffold.run,
        "serve": serve_cli.run,
        "users": users_cli.run,
        "tokens": users_cli.run,
        "audit": audit_cli.run,
    }
    try:
        return handler[args.command](args, Settings.from_env())
    except (ValueError, LookupError) as exc:  # bad table name, unknown snapshot, no table
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
