"""Run records without an instance: triggers, error signatures, the dashboard's numbers, the
page and the `datahub runs` window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from datahub_assets.cli.runs import parse_since
from datahub_assets.runs.page import render
from datahub_assets.runs.records import signature, trigger_of
from datahub_assets.runs.summary import markdown, summarise

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"dagster/schedule_name": "nightly"}, ("schedule", "nightly")),
        (
            {"dagster/sensor_name": "watch__shop__orders_raw__o"},
            ("file drop", "watch__shop__orders_raw__o"),
        ),
        (
            {
                "dagster/sensor_name": "datahub_automation",
                "dagster/from_automation_condition": "true",
            },
            ("schedule", "datahub_automation"),
        ),
        (
            {
                "dagster/sensor_name": "datahub_follow_3",
                "dagster/from_automation_condition": "true",
            },
            ("automation", "datahub_follow_3"),
        ),
        ({"dagster/sensor_name": "my_sensor"}, ("sensor", "my_sensor")),
        ({"dagster/backfill": "abc"}, ("backfill", "abc")),
        ({"dagster/parent_run_id": "r1"}, ("manual", "r1")),
        ({}, ("manual", None)),
    ],
)
def test_trigger_from_run_tags(tags, expected):
    assert trigger_of(tags) == expected


def test_signatures_drop_numbers_ids_and_paths_but_keep_words():
    a = signature(
        "PipelineRunError",
        "shop/gold/bad.xml: transformation failed: step 1 "
        "<filter> at shop/gold/bad.xml:4:5: column `no_such_column_42` (2 of 3 rows)",
    )
    b = signature(
        "PipelineRunError",
        "crm/gold/x.xml: transformation failed: step 7 "
        "<filter> at crm/gold/x.xml:9:1: column `no_such_column_42` (20 of 31 rows)",
    )
    assert a == b
    assert "<path>" in a
    assert "<n> of <n> rows" in a
    assert "no_such_column_42" in a
    c = signature(
        "CommitFailedException",
        "table 9f1c2e3d4a5b moved: snapshot "
        "5312803013097906339, run 0388a9ab-7ee3-49f0-8838-717fe1c0442d, "
        "file s3://bucket/a/b.parquet and /var/tmp/x/y.csv",
    )
    assert c == (
        "CommitFailedException: table <id> moved: snapshot <n>, run <id>, file <uri> and <path>"
    )
    assert signature(None, None) is None
    assert signature("E", "first line 12\nsecond 34") == "E: first line <n>"


def _row(
    day: int, hour: int, pipeline: str, status: str, duration: float = 1.0, error: str | None = None
) -> dict:
    start = datetime(2026, 11, day, hour, tzinfo=UTC)
    return {
        "run_id": f"r{day}{hour}{pipeline}",
        "pipeline": pipeline,
        "status": status,
        "started_at": start,
        "ended_at": start + timedelta(seconds=duration),
        "duration_s": duration,
        "trigger": "manual",
        "error_class": "E" if error else None,
        "error_message": error,
        "error_signature": signature("E", error) if error else None,
    }


ROWS = [
    _row(18, 1, "a.raw", "success", 10),
    _row(18, 2, "a.raw", "success", 30),
    _row(18, 3, "a.silver", "failed", error="table 123 missing"),
    _row(19, 1, "a.silver", "failed", error="table 456 missing"),
    _row(19, 1, "a.gold", "skipped"),
    _row(19, 2, "b.raw", "failed", error="boom"),
    _row(20, 1, "a.raw", "success", 20),
    _row(20, 2, "a.gold", "canceled"),
    _row(10, 1, "b.raw", "success", 5),  # before the window: only for the SLA
]


def test_summary_counts_per_day_and_in_total():
    s = summarise(ROWS, since=datetime(2026, 11, 17, tzinfo=UTC), now=NOW)
    assert [(str(d.day), d.runs, d.succeeded, d.failed, d.other) for d in s.days] == [
        ("2026-11-17", 0, 0, 0, 0),
        ("2026-11-18", 3, 2, 1, 0),
        ("2026-11-19", 3, 0, 2, 1),
        ("2026-11-20", 2, 1, 0, 1),
    ]
    assert (s.runs, s.succeeded, s.failed, s.other) == (8, 3, 3, 2)
    assert s.success_rate == 0.5
    assert s.days[0].success_rate is None
    assert s.days[2].success_rate == 0.0


def test_failures_group_by_signature_and_the_slowest_come_first():
    s = summarise(ROWS, since=datetime(2026, 11, 17, tzinfo=UTC), now=NOW)
    top = s.failures[0]
    assert (top.signature, top.count, top.pipelines) == ("E: table <n> missing", 2, ("a.silver",))
    assert top.example == "table 456 missing"
    assert [(f.signature, f.count) for f in s.failures[1:]] == [("E: boom", 1)]
    assert [(x.pipeline, x.runs, x.median_s, x.max_s, x.last_s) for x in s.slowest] == [
        ("a.raw", 3, 20.0, 30.0, 20.0)
    ]
    assert [r["pipeline"] for r in s.recent_failures] == ["b.raw", "a.silver", "a.silver"]


def test_sla_breaches_use_the_last_success_even_before_the_window():
    slas = {
        "a.raw": ("PT1H", timedelta(hours=1)),
        "b.raw": ("P30D", timedelta(days=30)),
        "c.raw": ("P1D", timedelta(days=1)),
        "a.silver": ("P1D", timedelta(days=1)),
    }
    s = summarise(ROWS, since=datetime(2026, 11, 17, tzinfo=UTC), now=NOW, slas=slas)
    found = {b.pipeline: b for b in s.breaches}
    assert set(found) == {"a.raw", "c.raw", "a.silver"}  # b.raw: success on the 10th, P30D
    assert found["c.raw"].last_success is None
    assert found["a.silver"].last_success is None
    # last success 01:00:20, now 12:00, SLA 1 h: overdue by 10 h minus 20 s
    assert found["a.raw"].overdue_s == pytest.approx(10 * 3600 - 20, abs=1)


def test_markdown_and_page_carry_the_numbers_and_escape_text():
    rows = [*ROWS, _row(20, 3, "x.raw", "failed", error="<script>alert(1)</script> | pipe")]
    s = summarise(rows, since=datetime(2026, 11, 17, tzinfo=UTC), now=NOW)
    md = markdown(s)
    assert "| 2026-11-19 | 3 | 0 | 2 | 1 | 0.0 % |" in md
    assert "\\|" in md
    page = render(s)
    assert "<script" not in page
    assert "&lt;script&gt;" in page
    assert 'id="kpi-runs"><span class="value " data-value="9"' in page
    assert 'data-day="2026-11-18" data-runs="3" data-succeeded="2" data-failed="1"' in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page


def test_an_empty_history_renders():
    s = summarise([], since=datetime(2026, 11, 17, tzinfo=UTC), now=NOW)
    assert s.runs == 0
    assert s.success_rate is None
    assert "no failure in the window" in render(s)
    assert "none" in markdown(s)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("P14D", timedelta(days=14)),
        ("pt2h", timedelta(hours=2)),
    ],
)
def test_since_windows(text, expected):
    assert parse_since(text) == expected


def test_a_bad_window_names_the_forms():
    with pytest.raises(ValueError, match="7d, 12h, 30m or P7D"):
        parse_since("seven days")
