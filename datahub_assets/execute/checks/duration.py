"""Durations of freshness checks: parsing is the spec's (`parse_duration`), plus a short
human form for messages."""

from __future__ import annotations

from datetime import timedelta

from datahub_assets.spec.durations import parse_duration

__all__ = ["human", "parse_duration"]


def human(delta: timedelta) -> str:
    """A short age: `2d 3h`, `7h 3m`, `42s`."""
    secs = int(delta.total_seconds())
    sign, secs = ("-", -secs) if secs < 0 else ("", secs)
    d, rem = divmod(secs, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    parts = [f"{v}{u}" for v, u in ((d, "d"), (h, "h"), (m, "m"), (s, "s")) if v]
    return sign + (" ".join(parts[:2]) or "0s")
