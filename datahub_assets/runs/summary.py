"""The dashboard's numbers, computed from run records (pure: rows and a clock in, numbers out).

Counted per pipeline run (one record). `success rate` = succeeded / (succeeded + failed):
skipped pipelines (an upstream step failed) and canceled ones are shown but not counted
against it. Failures are grouped by `error_signature` (see `records.signature`). A pipeline
breaches its `<sla>` when its last successful run ended longer ago than the SLA, or when no
successful run is in the records at all.
"""

from __future__ import annotations

import html
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from datahub_assets.runs.records import CANCELED, FAILED, SKIPPED, SUCCESS


@dataclass(frozen=True)
class Day:
    day: date
    runs: int
    succeeded: int
    failed: int
    other: int

    @property
    def success_rate(self) -> float | None:
        finished = self.succeeded + self.failed
        return self.succeeded / finished if finished else None


@dataclass(frozen=True)
class FailureReason:
    signature: str
    count: int
    pipelines: tuple[str, ...]
    last_seen: datetime
    example: str


@dataclass(frozen=True)
class Slow:
    pipeline: str
    runs: int
    median_s: float
    max_s: float
    last_s: float


@dataclass(frozen=True)
class Breach:
    pipeline: str
    sla: str
    last_success: datetime | None
    overdue_s: float | None


@dataclass(frozen=True)
class Summary:
    since: datetime
    now: datetime
    days: tuple[Day, ...]
    failures: tuple[FailureReason, ...]
    slowest: tuple[Slow, ...]
    breaches: tuple[Breach, ...]
    recent_failures: tuple[dict[str, Any], ...] = field(default=())

    @property
    def runs(self) -> int:
        return sum(d.runs for d in self.days)

    @property
    def succeeded(self) -> int:
        return sum(d.succeeded for d in self.days)

    @property
    def failed(self) -> int:
        return sum(d.failed for d in self.days)

    @property
    def other(self) -> int:
        return sum(d.other for d in self.days)

    @property
    def success_rate(self) -> float | None:
        finished = self.succeeded + self.failed
        return self.succeeded / finished if finished else None


def _days(rows: list[dict[str, Any]], since: datetime, now: datetime) -> tuple[Day, ...]:
    counts: dict[date, Counter] = defaultdict(Counter)
    for r in rows:
        counts[r["started_at"].date()][r["status"]] += 1
    out, day = [], since.date()
    while day <= now.date():
        c = counts.get(day, Counter())
        out.append(Day(day, sum(c.values()), c[SUCCESS], c[FAILED], c[SKIPPED] + c[CANCELED]))
        day += timedelta(days=1)
    return tuple(out)


def _failures(rows: list[dict[str, Any]], top: int) -> tuple[FailureReason, ...]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["status"] == FAILED:
            groups[r.get("error_signature") or "(no error recorded)"].append(r)
    reasons = [
        FailureReason(
            signature=sig,
            count=len(group),
            pipelines=tuple(sorted({r["pipeline"] for r in group})),
            last_seen=max(r["ended_at"] or r["started_at"] for r in group),
            example=(max(group, key=lambda r: r["started_at"]).get("error_message") or "")[:300],
        )
        for sig, group in groups.items()
    ]
    reasons.sort(key=lambda f: (-f.count, f.signature))
    return tuple(reasons[:top])


def _slowest(rows: list[dict[str, Any]], top: int) -> tuple[Slow, ...]:
    durations: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for r in rows:
        if r["status"] == SUCCESS and r.get("duration_s") is not None:
            durations[r["pipeline"]].append((r["started_at"], r["duration_s"]))
    slow = []
    for pipeline, values in durations.items():
        values.sort()
        seconds = [v for _, v in values]
        slow.append(
            Slow(
                pipeline,
                len(seconds),
                round(statistics.median(seconds), 3),
                max(seconds),
                seconds[-1],
            )
        )
    slow.sort(key=lambda s: (-s.median_s, s.pipeline))
    return tuple(slow[:top])


def _breaches(
    all_rows: Iterable[dict[str, Any]], slas: Mapping[str, tuple[str, timedelta]], now: datetime
) -> tuple[Breach, ...]:
    last: dict[str, datetime] = {}
    for r in all_rows:
        if r["status"] == SUCCESS and r["pipeline"] in slas:
            end = r["ended_at"] or r["started_at"]
            if r["pipeline"] not in last or end > last[r["pipeline"]]:
                last[r["pipeline"]] = end
    out = []
    for pipeline, (text, window) in sorted(slas.items()):
        ended = last.get(pipeline)
        if ended is None:
            out.append(Breach(pipeline, text, None, None))
        elif now - ended > window:
            out.append(Breach(pipeline, text, ended, (now - ended - window).total_seconds()))
    out.sort(key=lambda b: (b.last_success is not None, -(b.overdue_s or 0), b.pipeline))
    return tuple(out)


def summarise(
    rows: Iterable[dict[str, Any]],
    *,
    since: datetime,
    now: datetime,
    slas: Mapping[str, tuple[str, timedelta]] | None = None,
    top: int = 10,
    recent: int = 20,
) -> Summary:
    """The numbers of the records that started in [since, now]. `rows` may reach further
    back: older rows only count for the SLA (a last success before `since`). `slas` maps a
    pipeline (`<app>.<id>`) to (its `<sla>` as written, as a timedelta)."""
    every = [r for r in rows if r.get("started_at") is not None]
    window = [r for r in every if since <= r["started_at"] <= now]
    failed = sorted(
        (r for r in window if r["status"] == FAILED), key=lambda r: r["started_at"], reverse=True
    )
    return Summary(
        since=since,
        now=now,
        days=_days(window, since, now),
        failures=_failures(window, top),
        slowest=_slowest(window, top),
        breaches=_breaches(every, slas or {}, now),
        recent_failures=tuple(failed[:recent]),
    )


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def rate_text(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


DAY_HEADER = ("day", "runs", "succeeded", "failed", "skipped/canceled", "success rate")
SLOWEST_HEADER = ("pipeline", "runs", "median", "max", "last")


def day_rows(s: Summary) -> list[tuple[str, ...]]:
    """Runs per day, newest first, as text cells (`datahub runs` and the dashboard)."""
    return [
        (
            f"{d.day}",
            str(d.runs),
            str(d.succeeded),
            str(d.failed),
            str(d.other),
            rate_text(d.success_rate),
        )
        for d in reversed(s.days)
    ]


def slowest_rows(s: Summary, limit: int | None = None) -> list[tuple[str, ...]]:
    """The slowest pipelines (successful runs) as text cells, at most `limit`."""
    return [
        (
            x.pipeline,
            str(x.runs),
            duration_text(x.median_s),
            duration_text(x.max_s),
            duration_text(x.last_s),
        )
        for x in s.slowest[:limit]
    ]


_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_MARKUP = re.compile(r"([\\`*_\[\]|~!])")


def md_cell(text: str) -> str:
    """`text` as literal text in a Markdown table cell: line breaks and other control
    characters as one space, `&`, `<` and `>` as HTML entities (no tag, entity or autolink),
    and the characters of Markdown's inline syntax backslash-escaped (no link, image, code,
    emphasis or strikethrough; `|` no new cell). Error signatures carry text from error
    messages (data values, names a definition or a source chose)."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    return _MARKUP.sub(r"\\\1", html.escape(text, quote=False))


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(s: Summary) -> str:
    """The summary as Markdown tables (the asset's metadata in the Dagster UI)."""
    parts = [
        f"**{s.since:%Y-%m-%d} → {s.now:%Y-%m-%d %H:%M} UTC**: {s.runs} pipeline runs, "
        f"{s.succeeded} succeeded, {s.failed} failed, {s.other} skipped/canceled, "
        f"success rate {rate_text(s.success_rate)}",
        "### Runs per day",
        _table(DAY_HEADER, day_rows(s)),
        "### Top failure reasons",
        _table(
            ("failures", "signature", "pipelines", "last seen (UTC)"),
            [
                (
                    str(f.count),
                    f.signature,
                    ", ".join(f.pipelines[:5]),
                    f"{f.last_seen:%Y-%m-%d %H:%M}",
                )
                for f in s.failures
            ],
        )
        if s.failures
        else "none",
        "### Slowest pipelines (successful runs)",
        _table(SLOWEST_HEADER, slowest_rows(s)) if s.slowest else "none",
        "### Freshness / SLA breaches",
        _table(
            ("pipeline", "sla", "last success (UTC)", "overdue by"),
            [
                (
                    b.pipeline,
                    b.sla,
                    f"{b.last_success:%Y-%m-%d %H:%M}" if b.last_success else "never",
                    duration_text(b.overdue_s) if b.overdue_s is not None else "-",
                )
                for b in s.breaches
            ],
        )
        if s.breaches
        else "none",
    ]
    return "\n\n".join(parts)
