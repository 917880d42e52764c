"""`datahub runs [--since 7d] [--failed] [--sync]`: the dashboard's numbers in a terminal."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta

from datahub_assets.runs.summary import (
    DAY_HEADER,
    SLOWEST_HEADER,
    Summary,
    day_rows,
    duration_text,
    rate_text,
    slowest_rows,
)
from datahub_resources.settings import Settings

_SINCE = re.compile(r"^(\d+)\s*([dhm])$")


def parse_since(text: str) -> timedelta:
    """`7d`, `12h`, `30m`, or an ISO-8601 duration (`P7D`, `PT12H`)."""
    match = _SINCE.match(text.strip().lower())
    if match:
        value, unit = int(match.group(1)), match.group(2)
        return timedelta(**{{"d": "days", "h": "hours", "m": "minutes"}[unit]: value})
    from datahub_assets.spec.durations import parse_duration

    try:
        return parse_duration(text.upper())
    except ValueError:
        raise ValueError(f"--since {text!r}: expected e.g. 7d, 12h, 30m or P7D") from None


def add_parser(sub) -> None:
    runs = sub.add_parser(
        "runs",
        help="pipeline runs per day, failures, slowest pipelines and "
        "SLA breaches, from ops_gold.pipeline_runs",
    )
    runs.add_argument("--since", default="7d", help="window: 7d (default), 12h, 30m, P14D")
    runs.add_argument(
        "--failed",
        action="store_true",
        help="list the failed pipeline runs of the window, newest first",
    )
    runs.add_argument(
        "--sync",
        action="store_true",
        help="first record the runs finished since the sensor's last tick "
        "(reads the Dagster instance in DAGSTER_HOME)",
    )
    runs.add_argument("--limit", type=int, default=20, help="rows per list (default 20)")


def _say(text: str, out) -> None:
    """One line to `out` (a CLI: T20's no-print rule is about library logging)."""
    out.write(text + "\n")


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]], out) -> None:
    if not rows:
        _say("  none", out)
        return
    width = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        _say("  " + "  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)).rstrip(), out)


def _first_line(row: dict) -> str:
    message = (row.get("error_message") or "").strip()
    return message.splitlines()[0][:100] if message else ""


def print_summary(s: Summary, failed: bool, limit: int, out=None) -> None:
    out = out or sys.stdout
    _say(
        f"pipeline runs {s.since:%Y-%m-%d %H:%M} -> {s.now:%Y-%m-%d %H:%M} UTC: {s.runs} runs, "
        f"{s.succeeded} succeeded, {s.failed} failed, {s.other} skipped/canceled, "
        f"success rate {rate_text(s.success_rate)}",
        out,
    )
    if failed:
        _say("\nfailed runs (newest first)", out)
        _print_table(
            ("started (UTC)", "pipeline", "run", "trigger", "error"),
            [
                (
                    f"{r['started_at']:%Y-%m-%d %H:%M}",
                    r["pipeline"],
                    r["run_id"][:8],
                    r.get("trigger") or "",
                    f"{r.get('error_class') or ''}: {_first_line(r)}",
                )
                for r in s.recent_failures[:limit]
            ],
            out,
        )
    else:
        _say("\nper day", out)
        _print_table(DAY_HEADER, day_rows(s), out)
    _say("\ntop failure reasons", out)
    _print_table(
        ("count", "signature", "pipelines", "last seen (UTC)"),
        [
            (
                str(f.count),
                f.signature[:110],
                ", ".join(f.pipelines[:3])
                + (f" +{len(f.pipelines) - 3}" if len(f.pipelines) > 3 else ""),
                f"{f.last_seen:%Y-%m-%d %H:%M}",
            )
            for f in s.failures[:limit]
        ],
        out,
    )
    if not failed:
        _say("\nslowest pipelines (successful runs)", out)
        _print_table(SLOWEST_HEADER, slowest_rows(s, limit), out)
    _say("\nfreshness / SLA breaches", out)
    _print_table(
        ("pipeline", "sla", "last success (UTC)", "overdue by"),
        [
            (
                b.pipeline,
                b.sla,
                f"{b.last_success:%Y-%m-%d %H:%M}" if b.last_success else "never",
                duration_text(b.overdue_s),
            )
            for b in s.breaches[:limit]
        ],
        out,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from datahub_assets.runs.defs import slas_of
    from datahub_assets.runs.summary import summarise
    from datahub_assets.spec.errors import SpecErrors
    from datahub_assets.spec.loader import load_project
    from datahub_resources.iceberg import load_catalog

    window = parse_since(args.since)
    catalog = load_catalog(settings)
    if args.sync:
        import dagster as dg

        from datahub_assets.runs.sync import sync_all

        instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
        try:
            results = sync_all(instance, catalog)
        finally:
            instance.dispose()
        _say(
            f"synced: {sum(r.runs for r in results)} runs recorded, "
            f"{sum(r.rows for r in results)} rows added",
            sys.stderr,
        )
    try:
        slas = slas_of(load_project(settings.pipelines_dir))
    except SpecErrors as exc:
        _say(f"warning: definitions do not load, SLA breaches not shown:\n{exc}", sys.stderr)
        slas = {}
    from datahub_assets.runs.store import read_rows

    now = datetime.now(UTC)
    since = now - window
    rows = read_rows(catalog, since)
    older = (
        read_rows(catalog, None, ("pipeline", "status", "started_at", "ended_at")) if slas else []
    )
    summary = summarise(
        [*rows, *(r for r in older if r["started_at"] < since)],
        since=since,
        now=now,
        slas=slas,
        top=args.limit,
        recent=args.limit,
    )
    print_summary(summary, args.failed, args.limit)
    return 0
