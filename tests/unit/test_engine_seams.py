"""Code outside `engines/` asks the engine for what differs (an operation of
`engines.base.Engine`); it never tests which engine runs (`on_duckdb`, `is_duckdb`)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("datahub_assets", "datahub_resources")
ENGINES = REPO / "datahub_assets" / "engines"
ENGINE_TEST = re.compile(r"\b(on_duckdb|is_duckdb)\b")


def test_no_engine_test_outside_engines():
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if path.is_relative_to(ENGINES):
                continue
            for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
                if ENGINE_TEST.search(line):
                    found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not found, (
        "engine tests outside engines/ (ask the engine: an operation of "
        "engines.write_ops.WriteOps / engines.read_ops.ReadOps):\n" + "\n".join(found)
    )
