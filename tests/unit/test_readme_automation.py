"""README's file-drop section states the automation rule for the examples: assets downstream
of a watched raw table follow a drop, unless their pipeline has its own <schedule> (then
they run at their cron ticks only); what reads a scheduled asset follows it. Checked against
the conditions the builder attaches."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import dagster as dg

from datahub_assets.orchestration.project import build_assets
from datahub_assets.spec.loader import load_project

REPO = Path(__file__).resolve().parents[2]
FOLLOWS = "after upstream changes"


@cache
def _labels() -> dict[str, str | None]:
    assets = build_assets(load_project(REPO / "pipelines_xml"))
    out: dict[str, str | None] = {}
    for a in assets:
        for spec in a.specs:
            cond = spec.automation_condition
            out[spec.key.to_user_string()] = cond.get_label() if cond else None
    return out


def test_the_readme_automation_rule_holds_for_ecommerce():
    labels = _labels()
    readme = (REPO / "README.md").read_text()
    assert labels["ecommerce/bronze/orders"] == FOLLOWS
    assert labels["ecommerce/silver/orders_enriched"] == FOLLOWS
    # scheduled: README names them with their crons
    assert labels["ecommerce/gold/customer_360"] == "on schedule 0 6 * * *"
    assert "`gold/customer_360` (`0 6 * * *`)" in readme
    assert labels["ecommerce/service/customer_features_csv"] == "on schedule 0 7 * * *"
    assert "`service/customer_features_csv` (`0 7 * * *`)" in readme
    # downstream of the scheduled gold table, without a schedule: follows it
    assert labels["ecommerce/service/customer_360_csv"] == FOLLOWS
    assert "`service/customer_360_csv` follows the gold table" in readme


def test_a_schedule_wins_over_following_a_drop():
    """Every asset downstream of a watch either follows or has its pipeline's own cron."""
    project = load_project(REPO / "pipelines_xml")
    labels = _labels()
    for spec in project.pipelines:
        cron = spec.pipeline.metadata.schedule
        for t in spec.targets:
            key = dg.AssetKey(t.ref.asset_path).to_user_string()
            if cron:
                assert labels[key] == f"on schedule {cron}", key
