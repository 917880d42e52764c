"""`datahub audit [--since 7d] [--app APP]`: print the service's audit log (oldest first)."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from datahub_resources.settings import Settings


def add_parser(sub) -> None:
    audit = sub.add_parser("audit", help="the service's audit log: changes, refusals, sign-ins")
    audit.add_argument("--since", default="7d", help="7d, 24h, 30m or an ISO time (default 7d)")
    audit.add_argument("--app", default=None, help="only this app's events")
    audit.add_argument("--limit", type=int, default=10_000, help="at most this many (newest)")


def run(args: argparse.Namespace, _settings: Settings, out: TextIO | None = None) -> int:
    from datahub_assets.service import audit
    from datahub_assets.service.settings import ServiceSettings
    from datahub_assets.service.state.db import State, as_utc, migrate

    sink: TextIO = out or sys.stdout
    try:
        since = audit.parse_since(args.since)
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    service = ServiceSettings.from_env()
    migrate(service.state_uri)
    state = State(service.state_uri)
    try:
        with state.session() as db:
            events = audit.events(db, since=since, app=args.app, limit=args.limit)
            rows = [("time (UTC)", "actor", "action", "target", "app", "outcome", "client")]
            rows += [
                (
                    as_utc(e.time).strftime("%Y-%m-%d %H:%M:%S"),
                    e.actor,
                    e.action,
                    e.target,
                    e.app or "-",
                    e.outcome,
                    e.client or "-",
                )
                for e in events
            ]
    finally:
        state.dispose()
    width = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        sink.write("  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)).rstrip() + "\n")
    if len(rows) == 1:
        sink.write(f"(no events since {since.isoformat(timespec='seconds')})\n")
    return 0
