"""ISO-8601 durations (`PT2H`, `P1D`, `P1DT2H30M`) as used by `sla` and `maxAge`."""

from __future__ import annotations

import re
from datetime import timedelta

DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> timedelta:
    """The duration as a timedelta; a year counts 365 days and a month 30 days."""
    match = DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not an ISO-8601 duration (e.g. PT2H, PT30M, P1D)")
    part = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return timedelta(
        days=part["years"] * 365 + part["months"] * 30 + part["weeks"] * 7 + part["days"],
        hours=part["hours"],
        minutes=part["minutes"],
        seconds=part["seconds"],
    )
