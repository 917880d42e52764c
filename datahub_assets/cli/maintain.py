"""`datahub maintain [<app.layer.table> ...|--all] [--app APP]`: compact, expire, remove orphans.

Settings per app come from its app.yaml `maintenance:` (spec.models.Maintenance); `--all`
covers every table in the apps' namespaces (`<app>_<layer>`: targets, quarantine tables and
file ledgers)."""

from __future__ import annotations

import argparse

from datahub_resources.settings import Settings


def add_parser(sub) -> None:
    p = sub.add_parser(
        "maintain",
        help="table maintenance: compact small files, expire old snapshots, remove orphan files",
    )
    p.add_argument("tables", nargs="*", help="<app>.<layer>.<table> (default with --all: all)")
    p.add_argument("--all", action="store_true", help="every table of every app")
    p.add_argument("--app", default=None, help="with --all: only this app")
    p.add_argument("--no-compact", action="store_true", help="skip compaction (no Spark)")


def tables_of(catalog, apps: list[str]) -> list[tuple[str, str]]:
    """(namespace, table) of every table in the namespaces of `apps` (`<app>_<layer>`: app
    `shop` does not take `shop_eu_raw`, which is app `shop_eu`'s)."""
    out = []
    wanted = set(apps)
    for namespace, *_rest in catalog.list_namespaces():
        if namespace.rsplit("_", 1)[0] in wanted:
            out += [tuple(t) for t in catalog.list_tables(namespace)]
    return sorted(out)


def maintain(
    settings: Settings,
    idents: list[tuple[str, str]],
    app_of,
    spark=None,
    compact_files: bool = True,
    log=print,
) -> list:
    from datahub_assets.maintenance.tables import maintain_table
    from datahub_assets.spec.durations import parse_duration
    from datahub_assets.spec.models import Maintenance
    from datahub_resources.iceberg import load_catalog

    catalog = load_catalog(settings)
    reports = []
    for ident in idents:
        cfg = app_of(ident) or Maintenance()
        report = maintain_table(
            spark,
            catalog,
            ident,
            parse_duration(cfg.snapshot_retention),
            parse_duration(cfg.orphan_after),
            cfg.target_file_size_mb * 1024 * 1024,
            compact_files,
        )
        log(report.line())
        reports.append(report)
    return reports


def run(args: argparse.Namespace, settings: Settings) -> int:
    from datahub_assets.cli.ops import parse_table
    from datahub_assets.spec.loader import load_project
    from datahub_resources.iceberg import load_catalog

    project = load_project(settings.pipelines_dir)
    if args.all:
        apps = [args.app] if args.app else sorted(project.apps)
        idents = tables_of(load_catalog(settings), apps)
    elif args.tables:
        idents = [(r.namespace, r.table) for r in map(parse_table, args.tables)]
    else:
        raise ValueError("name a table (<app>.<layer>.<table>) or use --all")

    def app_of(ident):
        config = project.apps.get(ident[0].rsplit("_", 1)[0])
        return config.maintenance if config else None

    spark = None
    if not args.no_compact:
        from datahub_resources.spark import connect

        spark = connect()
    maintain(settings, idents, app_of, spark, not args.no_compact)
    return 0
