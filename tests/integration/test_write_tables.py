"""The write path's facade without a PipelineSpec (as Python assets call it): several tables,
their quarantine rows, a referential check and an extra change in one commit; blocking
checks and a later rollback leave every table, quarantine included, as it was."""

from __future__ import annotations

import logging

import pytest
from pydantic import TypeAdapter

from datahub_assets.execute.drops import ledger_change
from datahub_assets.iceberg.table import write_table
from datahub_assets.iceberg.tables import ChecksFailed, TableWrite, roll_back, write_tables
from datahub_assets.ingest.ledger import LedgerEntry, ensure_ledger, ledger_ref, read_ledger
from datahub_assets.spec.models import Check, TableRef, TableTarget
from datahub_resources.iceberg import load_catalog
from tests.support.iceberg import table_rows

pytestmark = pytest.mark.spark

CHECK = TypeAdapter(Check)
LOG = logging.getLogger("test")
ORDERS = TableRef(app="shop", layer="silver", table="orders")
ITEMS = TableRef(app="shop", layer="silver", table="items")
CUSTOMERS = TableRef(app="shop", layer="silver", table="customers")
QUARANTINE = TableRef(app="shop", layer="silver", table="orders__quarantine")
LEDGER = ledger_ref("shop", "orders_drop")


def _main(catalog, ref):
    if not catalog.table_exists((ref.namespace, ref.table)):
        return "missing"
    snapshot = catalog.load_table((ref.namespace, ref.table)).current_snapshot()
    return snapshot.snapshot_id if snapshot else None


def _ledger(catalog):
    return read_ledger(catalog.load_table((LEDGER.namespace, LEDGER.table)))


def _writes(spark, item_check):
    orders = spark.createDataFrame([(3, 10), (4, 99)], "id long, cust long")
    items = spark.createDataFrame([(3, "c"), (1, "A")], "id long, sku string")
    bad = spark.createDataFrame([("x", "not a number")], "raw string, _reason string")
    referential = CHECK.validate_python(
        {"kind": "referential", "column": "cust", "ref": "silver.customers.id", "name": "cust"}
    )
    return [
        TableWrite(
            ref=ORDERS,
            df=orders,
            target=TableTarget(table="orders", mode="append"),
            where="orders.py:1",
            checks=(referential,),
            referenced={"cust": CUSTOMERS},
            quarantine=((QUARANTINE, bad),),
            metadata={"source": "test"},
        ),
        TableWrite(
            ref=ITEMS,
            df=items,
            target=TableTarget(table="items", mode="merge", keys=["id"]),
            where="items.py:1",
            checks=(CHECK.validate_python(item_check),),
        ),
    ]


def test_write_tables_is_all_or_nothing_with_quarantine_and_rollback(spark, settings):
    catalog = load_catalog(settings)
    for ref, df in (
        (CUSTOMERS, spark.sql("select id from range(100)")),
        (ORDERS, spark.createDataFrame([(1, 5)], "id long, cust long")),
        (ITEMS, spark.createDataFrame([(1, "a"), (2, "b")], "id long, sku string")),
    ):
        write_table(spark, catalog, ref, df, TableTarget(table=ref.table), "r0")
    before = {ref: _main(catalog, ref) for ref in (ORDERS, ITEMS, QUARANTINE)}
    assert before[QUARANTINE] == "missing"

    # a blocking check on the second table: nothing anywhere, no quarantine table left
    failing = {"kind": "acceptedValues", "column": "sku", "values": "a,b,c", "name": "sku"}
    with pytest.raises(ChecksFailed, match=r"^orders\.py:1: blocking checks failed") as failed:
        write_tables(spark, catalog, _writes(spark, failing), run_id="r1", log=LOG)
    by_table = {o.ref: {c.name: c.passed for c in o.checks} for o in failed.value.outcomes}
    # the referential check read `customers` (ids 0..99): every cust is there
    assert by_table == {ORDERS: {"cust": True}, ITEMS: {"sku": False}}
    assert {ref: _main(catalog, ref) for ref in before} == before

    # passing: one commit publishes both tables, the quarantine row and the ledger entry
    passing = {"kind": "acceptedValues", "column": "sku", "values": "a,b,c,A", "name": "sku"}
    writes = _writes(spark, passing)
    ensure_ledger(catalog, LEDGER)
    entry = LedgerEntry(fingerprint="f1", path="/in/a.csv", status="ingested")
    outcomes = write_tables(
        spark,
        catalog,
        writes,
        run_id="r2",
        log=LOG,
        also_commit=lambda _outcomes: [ledger_change(ensure_ledger(catalog, LEDGER), [entry])],
        label="orders.py",
    )
    orders, items = outcomes
    assert (orders.rows, orders.table_rows) == (2, 3)
    assert (items.rows, items.table_rows) == (2, 3)  # merge: rewrote the file of id 1
    assert orders.extra["source"] == "test"
    assert table_rows(catalog, ORDERS) == [(1, 5), (3, 10), (4, 99)]
    assert table_rows(catalog, ITEMS) == [(1, "A"), (2, "b"), (3, "c")]
    assert table_rows(catalog, QUARANTINE) == [("x", "not a number")]
    assert [e.fingerprint for e in _ledger(catalog)] == ["f1"]

    # an export failed: everything of that commit goes back, the ledger included
    roll_back(catalog, outcomes)
    assert _main(catalog, ORDERS) == before[ORDERS]
    assert _main(catalog, ITEMS) == before[ITEMS]
    assert table_rows(catalog, QUARANTINE) == []
    assert _ledger(catalog) == []
