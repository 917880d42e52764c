"""`datahub sql`: analysts query Iceberg tables by their catalog names, never file paths.

Name resolution is checked without Spark; the queries run on the shared Spark Connect server
against tables written by the pipelines' own writer."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from datahub_assets import cli
from datahub_assets.cli.sql import dotted_names, resolve
from datahub_assets.iceberg.table import write_table
from datahub_assets.spec.models import TableRef, TableTarget
from datahub_resources.iceberg import load_catalog

TABLES = {"shop_raw": {"orders", "orders__files"}, "shop_gold": {"totals"}}


# ------------------------------------------------------------------- names (no Spark)


def test_catalog_names_point_at_views_and_everything_else_is_left_alone():
    sql = (
        "select o.id, shop_raw.orders.amount, 'shop_raw.orders' as s, \"shop_gold.totals\" "
        "from shop_raw.orders o -- shop_gold.totals\n"
        "join `shop_gold`.`TOTALS` t on t.customer = o.customer /* shop_raw.x */ "
        "join datahub.shop_raw.orders__files f on true where o.amount > 1.5"
    )
    rewritten, used = resolve(sql, TABLES)
    assert used == [("shop_raw", "orders"), ("shop_gold", "totals"), ("shop_raw", "orders__files")]
    assert rewritten == (
        "select o.id, `shop_raw.orders`.`amount`, 'shop_raw.orders' as s, \"shop_gold.totals\" "
        "from `shop_raw.orders` o -- shop_gold.totals\n"
        "join `shop_gold.totals` t on t.customer = o.customer /* shop_raw.x */ "
        "join `shop_raw.orders__files` f on true where o.amount > 1.5"
    )


def test_aliases_numbers_and_escaped_quotes_are_not_table_names():
    sql = r"select a.b, 'it''s shop_raw.orders', 'x\'shop_raw.orders', 1.5e3 from t a"
    assert [n.parts for n in dotted_names(sql)] == [("a", "b")]
    assert resolve(sql, TABLES) == (sql, [])


def test_an_unknown_table_of_a_known_namespace_names_the_tables_there():
    with pytest.raises(
        LookupError,
        match=r"table shop_raw\.order does not exist; tables in "
        r"shop_raw: orders, orders__files",
    ):
        resolve("select * from shop_raw.order", TABLES)


# ---------------------------------------------------------------------- queries (Spark)

ORDERS = TableRef(app="shop", layer="raw", table="orders")
CUSTOMERS = TableRef(app="shop", layer="silver", table="customers")


@pytest.fixture
def tables(spark, settings):
    catalog = load_catalog(settings)
    write_table(
        spark,
        catalog,
        ORDERS,
        spark.createDataFrame(
            [(1, "ann", Decimal("10.50")), (2, "bob", Decimal("5.25")), (3, "ann", None)],
            "id int, customer string, amount decimal(12,2)",
        ),
        TableTarget(table="orders"),
        "r1",
    )
    write_table(
        spark,
        catalog,
        ORDERS,
        spark.createDataFrame(
            [(4, "cy", Decimal("1.00"))], "id int, customer string, amount decimal(12,2)"
        ),
        TableTarget(table="orders"),
        "r2",
    )
    write_table(
        spark,
        catalog,
        CUSTOMERS,
        spark.createDataFrame(
            [("ann", 'Ann, "the" first'), ("bob", "Bob"), ("cy", None)],
            "customer string, name string",
        ),
        TableTarget(table="customers"),
        "r3",
    )
    return catalog


def _sql(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["sql", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.spark
@pytest.mark.usefixtures("tables")
def test_a_join_by_catalog_names_prints_a_readable_table(capsys):
    code, out, err = _sql(
        capsys,
        "select c.name, sum(o.amount) as total, count(*) as n "
        "from shop_raw.orders o join shop_silver.customers c "
        "using (customer) group by c.name order by n desc, total desc",
    )
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "name             | total | n",
        "-----------------+-------+--",
        'Ann, "the" first | 10.50 | 2',
        "Bob              | 5.25  | 1",
        "NULL             | 1.00  | 1",
        "(3 rows)",
    ]


@pytest.mark.spark
@pytest.mark.usefixtures("tables")
def test_csv_and_json_formats_and_the_limit(capsys):
    code, out, err = _sql(
        capsys, "select * from datahub.shop_silver.customers order by 1", "--format", "csv"
    )
    assert code == 0
    assert list(csv.reader(io.StringIO(out))) == [
        ["customer", "name"],
        ["ann", 'Ann, "the" first'],
        ["bob", "Bob"],
        ["cy", ""],
    ]

    code, out, err = _sql(
        capsys,
        "select id, amount from shop_raw.orders order by id",
        "--format",
        "json",
        "--limit",
        "2",
    )
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == [
        {"id": 1, "amount": "10.50"},
        {"id": 2, "amount": "5.25"},
    ]
    assert "first 2 rows" in err

    code, out, _ = _sql(
        capsys,
        "select named_struct('a', 1, 'b', array(named_struct('c', 'x'))) as s, array(1, 2) as xs",
        "--format",
        "json",
    )
    assert code == 0
    assert json.loads(out) == {"s": {"a": 1, "b": [{"c": "x"}]}, "xs": [1, 2]}

    code, out, _ = _sql(capsys, "select id from shop_raw.orders order by id", "--limit", "3")
    assert out.splitlines()[-1] == "(more than 3 rows, first 3 shown (--limit))"
    assert len(out.splitlines()) == 2 + 3 + 1


@pytest.mark.spark
def test_the_current_snapshot_is_read_and_every_table_is_listed(tables, spark, capsys):
    write_table(
        spark,
        tables,
        ORDERS,
        spark.createDataFrame(
            [(9, "zed", Decimal("2.00"))], "id int, customer string, amount decimal(12,2)"
        ),
        TableTarget(table="orders", mode="overwrite"),
        "r4",
    )
    code, out, _ = _sql(capsys, "select id, customer from shop_raw.orders", "--format", "csv")
    assert out.splitlines() == ["id,customer", "9,zed"]

    code, out, _ = _sql(capsys, "--tables")
    assert code == 0
    assert "shop_raw.orders" in out.splitlines()
    assert "shop_silver.customers" in out.splitlines()


@pytest.mark.spark
@pytest.mark.usefixtures("tables")
def test_errors_name_the_problem(capsys):
    code, out, err = _sql(capsys, "select * from shop_raw.order")
    assert code == 1
    assert err == ("error: table shop_raw.order does not exist; tables in shop_raw: orders\n")
    code, out, err = _sql(capsys, "select nope from shop_raw.orders")
    assert code == 1
    assert err.startswith("error: ")
    assert "nope" in err
    assert out == ""
    code, out, err = _sql(capsys, "select * from elsewhere.thing")
    assert code == 1
    assert "datahub sql --tables lists the tables" in err


@pytest.mark.spark
@pytest.mark.usefixtures("tables", "settings")
def test_the_installed_command_reads_the_query_from_stdin():
    datahub = Path(sys.executable).parent / "datahub"
    proc = subprocess.run(
        [str(datahub), "sql", "-", "--format", "csv"],
        input="select count(*) as n from shop_raw.orders",
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["n", "4"]
