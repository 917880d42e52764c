"""Malformed records of csv and json file drops: never loaded silently (issue 13 item 1).

Each malformation sits at the start, in the middle and at the end of files larger than the
validator's 64 KiB window; the rows that parse are loaded, the others follow onInvalid with
their raw text, file, line and reason, in the same commit as the good rows."""

from __future__ import annotations

import json
import os
import time
from datetime import date
from pathlib import Path

import pytest

from datahub_assets.execute.runner import PipelineRunError, run_pipeline
from datahub_assets.iceberg.read import read_table
from datahub_assets.ingest.ledger import ledger_ref, read_ledger
from datahub_assets.ingest.validate import SCAN_BYTES
from datahub_assets.spec.loader import load_project
from datahub_assets.spec.models import TableRef
from datahub_resources.iceberg import load_catalog
from tests.support.context import exec_context

pytestmark = pytest.mark.spark

OLD = time.time() - 3600
ORDERS = TableRef(app="shop", layer="raw", table="orders")
QUARANTINE = TableRef(app="shop", layer="raw", table="orders__quarantine")
PIPELINE = """<pipeline id="orders_raw" version="1.0.0" layer="{layer}">
  <sources>
    <{kind} id="orders" path="landing/orders/*.{kind}"{attrs}>{watch}</{kind}>
  </sources>
  <targets><table table="orders" mode="append"/></targets>
  <checks><rowCount min="1" max="{max_rows}"/></checks>
</pipeline>
"""
SCHEMA = """{"type": "record", "name": "orders", "fields": [
  {"name": "order_id", "type": "long"}, {"name": "amount", "type": "double"},
  {"name": "status", "type": "string"}]}"""
GOOD = "{i},{i}.5,paid"


def _project(settings, kind="csv", on_invalid=None, schema=False, layer="raw", max_rows=10**9):
    app = settings.pipelines_dir / "shop"
    (app / layer).mkdir(parents=True, exist_ok=True)
    attrs = f' onInvalid="{on_invalid}"' if on_invalid else ""
    if schema:
        attrs += ' schemaRef="schemas/orders.avsc"'
        (app / "schemas").mkdir(exist_ok=True)
        (app / "schemas" / "orders.avsc").write_text(SCHEMA)
    watch = '<watch minAgeSeconds="0"/>' if layer == "raw" else ""
    (app / layer / "orders.xml").write_text(
        PIPELINE.format(kind=kind, attrs=attrs, watch=watch, layer=layer, max_rows=max_rows)
    )
    (spec,) = load_project(settings.pipelines_dir).pipelines
    return spec


def _drop(settings, name: str, text: str) -> Path:
    folder = settings.data_dir / "shop" / "landing" / "orders"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    os.utime(path, (OLD, OLD))
    return path


def _ctx(spark, settings, run_id="run-1"):
    return exec_context(spark, settings, run_id=run_id, run_date=date(2026, 11, 22))


def _csv(n: int, bad: dict[int, str]) -> tuple[str, int]:
    """A CSV of n data lines (header = line 1) with `bad` {line number: text}; > 64 KiB."""
    lines = ["order_id,amount,status"]
    for line in range(2, n + 2):
        lines.append(bad.get(line, GOOD.format(i=line)))
    text = "\n".join(lines) + "\n"
    assert len(text) > SCAN_BYTES
    return text, n - len(bad)


def _quarantine(spark, catalog):
    if not catalog.table_exists(QUARANTINE.namespace + "." + QUARANTINE.table):
        return []
    df = read_table(spark, catalog, QUARANTINE)
    return sorted(
        (r["_line"], r["_raw"], r["_reason"], r["_rule"], r["_source_file"]) for r in df.collect()
    )


N = 5000
# the three broken rows of the issue: two extra fields, an unbalanced quote, two fields only
EXTRA, QUOTE, SHORT = "9,9.5,paid,extra,more", '10,"10.5,paid', "11,11.5"


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_csv_malformed_rows_are_quarantined_with_line_and_reason(spark, settings, where):
    spec = _project(settings)
    first = {"start": 2, "middle": N // 2, "end": N - 1}[where]
    bad = {first: EXTRA, first + 1: QUOTE, first + 2: SHORT}
    text, good = _csv(N, bad)
    path = _drop(settings, "orders.csv", text)
    catalog = load_catalog(settings)

    (outcome,) = run_pipeline(spec, _ctx(spark, settings), catalog)

    df = read_table(spark, catalog, ORDERS)
    assert "_corrupt_record" not in df.columns
    assert df.count() == good == outcome.rows
    assert df.where("status is null").count() == 0
    assert outcome.extra["malformed_rows"] == 3
    assert outcome.extra["quarantine_table"] == "shop_raw.orders__quarantine"
    assert _quarantine(spark, catalog) == [
        (first, EXTRA, "5 fields, expected 3", "malformed", str(path)),
        (
            first + 1,
            QUOTE,
            "unbalanced quote (\"): the line's fields run together",
            "malformed",
            str(path),
        ),
        (first + 2, SHORT, "2 fields, expected 3", "malformed", str(path)),
    ]
    (entry,) = read_ledger(catalog.load_table(ledger_ref("shop", "orders_raw").identifier))
    assert (entry.status, entry.rows, entry.invalid_rows) == ("ingested", good, 3)
    assert not path.exists()  # moved to processed/
    assert [f["invalid_rows"] for f in outcome.extra["files"]] == [3]


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_json_lines_broken_lines_are_quarantined_and_no_helper_column(spark, settings, where):
    spec = _project(settings, kind="json")
    lines = [
        json.dumps({"event_id": i, "amount": i + 0.5, "status": "paid"}) for i in range(1, 2001)
    ]
    at = {"start": 0, "middle": 1000, "end": 1998}[where]
    lines[at] = '{"event_id": 1, "amount":'
    lines[at + 1] = "[1, 2]"
    text = "\n".join(lines) + "\n"
    assert len(text) > SCAN_BYTES
    path = _drop(settings, "events.json", text)
    catalog = load_catalog(settings)

    (outcome,) = run_pipeline(spec, _ctx(spark, settings), catalog)

    df = read_table(spark, catalog, ORDERS)
    assert "_corrupt_record" not in df.columns
    assert df.count() == 1998
    assert df.where("event_id is null").count() == 0
    assert outcome.extra["malformed_rows"] == 2
    rows = _quarantine(spark, catalog)
    assert [(r[0], r[2]) for r in rows] == [
        (at + 1, "invalid JSON (Expecting value at column 26)"),
        (at + 2, "an array, not a JSON object"),
    ]
    assert all(r[4] == str(path) for r in rows)


def test_declared_schema_type_mismatch_is_quarantined(spark, settings):
    spec = _project(settings, schema=True)
    text, good = _csv(N, {100: "100,abc,paid", 4000: "x4000,1.5,paid"})
    _drop(settings, "orders.csv", text)
    catalog = load_catalog(settings)

    (outcome,) = run_pipeline(spec, _ctx(spark, settings), catalog)

    assert read_table(spark, catalog, ORDERS).count() == good == outcome.rows
    assert [(r[0], r[2]) for r in _quarantine(spark, catalog)] == [
        (100, "column 'amount': value 'abc' is not double"),
        (4000, "column 'order_id': value 'x4000' is not bigint"),
    ]


def test_fail_rejects_the_file_listing_its_first_bad_lines(spark, settings):
    spec = _project(settings, on_invalid="fail")
    bad_text, _ = _csv(N, {2: EXTRA, N: SHORT})
    good_text, good = _csv(N, {})
    bad = _drop(settings, "bad.csv", bad_text)
    ok = _drop(settings, "ok.csv", good_text)
    catalog = load_catalog(settings)

    (outcome,) = run_pipeline(spec, _ctx(spark, settings), catalog)

    assert outcome.rows == good  # the other file of the batch is ingested
    rejected = settings.data_dir / "shop" / "rejected" / "2026-11-22" / "orders"
    reason = json.loads((rejected / "bad.csv.reason.json").read_text())
    assert reason["rule"] == "malformed"
    assert "2 malformed record(s)" in reason["message"]
    assert "line 2: 5 fields, expected 3" in reason["message"]
    assert f"line {N}: 2 fields, expected 3" in reason["message"]
    assert not bad.exists()
    assert not ok.exists()
    assert _quarantine(spark, catalog) == []
    ledger = read_ledger(catalog.load_table(ledger_ref("shop", "orders_raw").identifier))
    assert sorted((e.path, e.status, e.rule) for e in ledger) == [
        (str(bad), "rejected", "malformed"),
        (str(ok), "ingested", None),
    ]


def test_drop_counts_and_keeps_nothing(spark, settings):
    spec = _project(settings, on_invalid="drop")
    text, good = _csv(N, {N // 2: QUOTE})
    _drop(settings, "orders.csv", text)
    catalog = load_catalog(settings)

    (outcome,) = run_pipeline(spec, _ctx(spark, settings), catalog)

    assert outcome.rows == good
    assert outcome.extra["malformed_rows"] == 1
    assert "quarantine_table" not in outcome.extra
    assert _quarantine(spark, catalog) == []


def test_a_failed_run_leaves_no_quarantine_rows(spark, settings):
    """A blocking check fails: the good rows are not published, nor are the quarantined."""
    spec = _project(settings, max_rows=10)
    text, _ = _csv(N, {3: SHORT})
    _drop(settings, "orders.csv", text)
    catalog = load_catalog(settings)

    with pytest.raises(PipelineRunError):
        run_pipeline(spec, _ctx(spark, settings), catalog)

    assert _quarantine(spark, catalog) == []
    assert not catalog.table_exists(QUARANTINE.namespace + "." + QUARANTINE.table)


def test_a_plain_source_outside_raw_fails_on_malformed_records(spark, settings):
    spec = _project(settings, layer="bronze")
    text, _ = _csv(N, {N // 2: EXTRA})
    _drop(settings, "orders.csv", text)
    with pytest.raises(PipelineRunError, match=r"(?s)1 malformed record\(s\).*line 2500: 5 fields"):
        run_pipeline(spec, _ctx(spark, settings), load_catalog(settings))


def test_a_plain_source_quarantines_when_asked(spark, settings):
    spec = _project(settings, layer="bronze", on_invalid="quarantine")
    text, good = _csv(N, {N // 2: EXTRA})
    path = _drop(settings, "orders.csv", text)
    catalog = load_catalog(settings)
    (outcome,) = run_pipeline(spec, _ctx(spark, settings), catalog)
    q = TableRef(app="shop", layer="bronze", table="orders__quarantine")
    rows = read_table(spark, catalog, q).collect()
    assert outcome.rows == good
    assert [(r["_line"], r["_raw"]) for r in rows] == [(N // 2, EXTRA)]
    assert rows[0]["_source_file"].endswith(str(path))


def test_a_backtick_in_a_csv_header_is_a_column_name_not_syntax(spark, settings):
    """#19 (finding 1's neighbour): a header names a column with a backtick; the malformed
    rows' query quotes it (it failed with INVALID_ATTRIBUTE_NAME_SYNTAX)."""
    spec = _project(settings)
    text = "order_id,amount,st`atus\n1,1.5,paid\n2,2.5\n3,3.5,open\n"
    _drop(settings, "orders.csv", text)
    catalog = load_catalog(settings)

    (outcome,) = run_pipeline(spec, _ctx(spark, settings), catalog)

    df = read_table(spark, catalog, ORDERS)
    assert "st`atus" in df.columns
    assert sorted(r["st`atus"] for r in df.collect()) == ["open", "paid"]
    assert outcome.extra["malformed_rows"] == 1
    assert [q[2] for q in _quarantine(spark, catalog)] == ["2 fields, expected 3"]
