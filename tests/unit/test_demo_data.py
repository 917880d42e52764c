"""The demo data generator: deterministic, sized as documented, with the planted defects.

Expectations are computed from the written files with csv/json, independently of the
generator's internals.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from datahub_assets.demo.data import generate

REPO = Path(__file__).resolve().parents[2]
ROWS = 400


def _csv(paths: list[Path]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in paths:
        with path.open(newline="", encoding="utf-8") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def _jsonl(paths: list[Path]) -> list[dict]:
    return [json.loads(line) for p in paths for line in p.read_text().splitlines() if line]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, list[Path]]:
    return generate(tmp_path_factory.mktemp("demo"), rows=ROWS, seed=42)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_same_arguments_give_byte_identical_files(tmp_path):
    generate(tmp_path / "a", rows=120, seed=7)
    generate(tmp_path / "b", rows=120, seed=7)
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert len(a) == 11
    assert a == b


def test_another_seed_gives_other_data(tmp_path):
    generate(tmp_path / "a", rows=120, seed=1)
    generate(tmp_path / "b", rows=120, seed=2)
    assert _tree(tmp_path / "a") != _tree(tmp_path / "b")


def test_files_land_where_the_apps_read(files):
    expected = {
        "ecommerce.orders": ("ecommerce/landing/orders", ".csv", 2),
        "ecommerce.customers": ("ecommerce/landing/customers", ".csv", 2),
        "ecommerce.clickstream": ("ecommerce/landing/clickstream", ".json", 3),
        "github.events": ("github/landing/events", ".json", 2),
        "customer.customers": ("customer/landing/customers", ".csv", 2),
    }
    assert set(files) == set(expected)
    for key, (folder, suffix, count) in expected.items():
        assert len(files[key]) == count, key
        for path in files[key]:
            assert path.is_file()
            assert path.suffix == suffix
            assert path.parent.as_posix().endswith(folder), path


def test_row_counts_scale_with_rows(files):
    assert len(_csv(files["ecommerce.orders"])) == ROWS
    assert len(_csv(files["ecommerce.customers"])) == ROWS // 5
    assert len(_jsonl(files["ecommerce.clickstream"])) == ROWS * 3
    assert len(_jsonl(files["github.events"])) == ROWS
    assert len(_csv(files["customer.customers"])) == ROWS // 2


def test_too_few_rows_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 50"):
        generate(tmp_path, rows=10)


def test_orders_carry_updates_and_bad_rows(files):
    orders = _csv(files["ecommerce.orders"])
    bad = [
        o for o in orders if not o["order_id"] or not o["customer_id"] or Decimal(o["amount"]) < 0
    ]
    assert len(bad) == ROWS // 100
    assert any(Decimal(o["amount"]) < 0 for o in bad)
    assert any(not o["customer_id"] for o in bad)
    good = [o for o in orders if o not in bad]
    counts = Counter(o["order_id"] for o in good)
    repeated = {k for k, n in counts.items() if n > 1}
    assert len(repeated) == ROWS // 50
    h1 = {o["order_id"]: o for o in _csv(files["ecommerce.orders"][:1])}
    h2 = _csv(files["ecommerce.orders"][1:])
    for o in h2:
        if o["order_id"] in repeated:  # the re-sent version is later and moves the status on
            first = h1[o["order_id"]]
            assert o["updated_at"] > first["updated_at"]
            assert o["status"] != first["status"]
    for o in good:  # amounts are exact: quantity x unit price
        assert Decimal(o["amount"]) == int(o["quantity"]) * Decimal(o["unit_price"])


def test_customers_carry_updates_and_bad_emails(files):
    customers = _csv(files["ecommerce.customers"])
    n = ROWS // 5
    assert sum("@" not in c["email"] for c in customers) == max(1, n // 50)
    counts = Counter(c["customer_id"] for c in customers)
    assert sum(v > 1 for v in counts.values()) == max(1, n // 20)
    known = {c["customer_id"] for c in customers if "@" in c["email"]}
    orders = _csv(files["ecommerce.orders"])
    assert {o["customer_id"] for o in orders if o["customer_id"]} <= known


def test_clickstream_carries_redeliveries_and_bad_events(files):
    events = _jsonl(files["ecommerce.clickstream"])
    n = ROWS * 3
    kinds = {"page_view", "product_view", "add_to_cart", "checkout", "purchase"}
    bad = [e for e in events if e["event_ts"] is None or e["event_type"] not in kinds]
    assert len(bad) == n // 200
    counts = Counter(json.dumps(e, sort_keys=True) for e in events)
    assert sum(v - 1 for v in counts.values()) == n // 100  # exact re-deliveries
    assert any(e["customer_id"] is None for e in events)  # anonymous visitors
    assert any(e["event_type"] == "purchase" for e in events)


def test_github_events_shape_and_renamed_logins(files):
    events = _jsonl(files["github.events"])
    for e in events:
        assert set(e) >= {"id", "type", "created_at", "actor", "repo", "payload"}
        assert set(e["actor"]) == {"id", "login", "gravatar_id", "url", "avatar_url"}
        assert set(e["repo"]) == {"id", "name", "url"}
    assert len({e["created_at"] for e in events}) == len(events)
    assert len({e["id"] for e in events}) == len(events)
    logins: dict[int, set[str]] = {}
    for e in events:
        logins.setdefault(e["actor"]["id"], set()).add(e["actor"]["login"])
    assert len(logins) < len(events) / 2  # users act repeatedly: dedupe has work to do
    assert sum(len(v) > 1 for v in logins.values()) == ROWS // 100
    for path in files["github.events"]:  # every file sees every event type (stable schema)
        assert {e["type"] for e in _jsonl([path])} >= {"PushEvent", "WatchEvent", "IssuesEvent"}
    pushes = [e for e in events if e["type"] == "PushEvent"]
    assert pushes
    assert all(len(e["payload"]["commits"]) == e["payload"]["size"] for e in pushes)


def test_customer_master_planted_rows(files):
    rows = _csv(files["customer.customers"])
    n = ROWS // 2
    bad = [r for r in rows if not r["customer_id"] or Decimal(r["revenue"]) < 0]
    assert len(bad) == max(1, n // 50)
    counts = Counter(r["customer_id"] for r in rows if r not in bad)
    assert sum(v > 1 for v in counts.values()) == max(1, n // 20)
    assert all(len(r["ssn"]) == 11 and r["ssn"][3] == "-" for r in rows)
    assert any(r["country_code"] == "XX" for r in rows)


def test_customer_country_codes_are_in_the_lookup_except_xx(files):
    with (REPO / "pipelines_xml/customer/lookups/country_dim.csv").open() as handle:
        known = {r["code"] for r in csv.DictReader(handle)}
    codes = {r["country_code"] for r in _csv(files["customer.customers"])}
    assert codes - known == {"XX"}


@pytest.mark.parametrize("rows", [50, 77, 1000])
def test_counts_hold_for_other_sizes(tmp_path, rows):
    out = generate(tmp_path, rows=rows, seed=3)
    assert len(_csv(out["ecommerce.orders"])) == rows
    assert len(_csv(out["ecommerce.customers"])) == rows // 5
    assert len(_jsonl(out["ecommerce.clickstream"])) == rows * 3
    assert len(_jsonl(out["github.events"])) == rows
    assert len(_csv(out["customer.customers"])) == rows // 2
