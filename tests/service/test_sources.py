"""The wizard's source helpers (`service/registry/sources.py`) against real servers: an app's
connections (names and kinds only), a PostgreSQL and a MariaDB connection's tables and
columns, a mongo connection's collections and inferred schema (nx-27017), landing files and a
CSV header. A secret set in the environment never appears in any answer or error."""

from __future__ import annotations

import json

import pytest

from datahub_assets.service.registry import sources as src

PASSWORD = "s0urces-S3cret-pw"

RAW = """<pipeline id="orders_raw" version="1.0.0" layer="raw">
  <sources>
    <csv id="orders" path="landing/orders/*.csv" delimiter=";"/>
    <json id="events" path="landing/events"/>
  </sources>
  <targets>
    <table table="orders" mode="append"/>
  </targets>
</pipeline>
"""


@pytest.fixture
def app(settings):
    folder = settings.pipelines_dir / "shop"
    (folder / "raw").mkdir(parents=True)
    (folder / "raw" / "orders.xml").write_text(RAW)
    return settings


def _yaml(settings, **conns: str) -> None:
    lines = ["connections:"] + [f"  {k}: {v}" for k, v in conns.items()]
    (settings.pipelines_dir / "shop" / "app.yaml").write_text("\n".join(lines) + "\n")


def _no_secret(answer) -> None:
    text = json.dumps(answer)
    assert PASSWORD not in text
    assert "jdbc:" not in text
    assert "mongodb://" not in text


# ------------------------------------------------------------------------------- JDBC


@pytest.fixture
def pg(postgres_server, monkeypatch):
    import psycopg

    from datahub_assets.demo import local_servers

    local_servers.create_database(postgres_server, "src_crm")
    local_servers.add_password_user(postgres_server, "src_user", PASSWORD)
    with psycopg.connect(
        host="127.0.0.1",
        port=postgres_server.port,
        user="datahub",
        dbname="src_crm",
        autocommit=True,
    ) as conn:
        conn.execute("create schema if not exists sales")
        conn.execute("drop table if exists public.customers, sales.orders")
        conn.execute("create table public.customers (id int not null, email text, born date)")
        conn.execute("create table sales.orders (order_id bigint, amount numeric(12,2))")
    monkeypatch.setenv("SHOP_CRM_DB", f"src_user:{PASSWORD}")
    return postgres_server


def test_connections_are_names_and_kinds_only(app, monkeypatch):
    monkeypatch.setenv("SHOP_CRM_DB", f"u:{PASSWORD}")
    _yaml(
        app,
        crm='{jdbcUrl: "jdbc:postgresql://127.0.0.1:1/crm", userSecretRef: SHOP_CRM_DB}',
        shopdb='{jdbcUrl: "jdbc:mariadb://127.0.0.1:1/shop", userSecretRef: SHOP_CRM_DB}',
        catalog="{uriSecretRef: SHOP_MONGO_URI}",
    )
    answer = src.connections(app.pipelines_dir, "shop")
    assert answer == [
        {"name": "catalog", "kind": "mongo"},
        {"name": "crm", "kind": "postgresql"},
        {"name": "shopdb", "kind": "mariadb"},
    ]
    _no_secret(answer)


def test_postgres_tables_and_schema(app, pg):
    url = pg.jdbc_url("src_crm")
    _yaml(app, crm=f'{{jdbcUrl: "{url}", userSecretRef: SHOP_CRM_DB}}')
    tables = src.tables(app.pipelines_dir, "shop", "crm")
    names = [t["name"] for t in tables]
    assert "customers" in names
    assert "sales.orders" in names
    assert not any(n.startswith(("pg_", "information_schema")) for n in names)
    schema = src.table_schema(app.pipelines_dir, "shop", "crm", "customers")
    assert schema["columns"] == [
        {"name": "id", "type": "integer", "nullable": False},
        {"name": "email", "type": "text", "nullable": True},
        {"name": "born", "type": "date", "nullable": True},
    ]
    qualified = src.table_schema(app.pipelines_dir, "shop", "crm", "sales.orders")
    assert [c["name"] for c in qualified["columns"]] == ["order_id", "amount"]
    _no_secret([tables, schema, qualified])


@pytest.mark.parametrize(
    "bad",
    ["customers; drop table customers", "a.b.c", "x' or '1'='1", '"quoted"', "", "a" * 70],
)
def test_a_table_name_that_is_no_identifier_is_refused(app, pg, bad):
    url = pg.jdbc_url("src_crm")
    _yaml(app, crm=f'{{jdbcUrl: "{url}", userSecretRef: SHOP_CRM_DB}}')
    with pytest.raises(src.BadName) as info:
        src.table_schema(app.pipelines_dir, "shop", "crm", bad)
    assert info.value.status == 422


def test_unknown_connection_and_table_are_404(app, pg):
    url = pg.jdbc_url("src_crm")
    _yaml(app, crm=f'{{jdbcUrl: "{url}", userSecretRef: SHOP_CRM_DB}}')
    with pytest.raises(src.UnknownName):
        src.tables(app.pipelines_dir, "shop", "nope")
    with pytest.raises(src.UnknownName):
        src.table_schema(app.pipelines_dir, "shop", "crm", "no_such_table")


def test_a_failed_connection_is_502_without_the_secret(app, pg, monkeypatch):
    url = pg.jdbc_url("src_crm")
    _yaml(app, crm=f'{{jdbcUrl: "{url}", userSecretRef: SHOP_CRM_DB}}')
    monkeypatch.setenv("SHOP_CRM_DB", f"src_user:{PASSWORD}-wrong")
    with pytest.raises(src.ConnectionFailed) as info:
        src.tables(app.pipelines_dir, "shop", "crm")
    assert info.value.status == 502
    assert PASSWORD not in str(info.value)
    # nothing listens on this port: refused, not hanging
    _yaml(app, crm='{jdbcUrl: "jdbc:postgresql://127.0.0.1:1/x", userSecretRef: SHOP_CRM_DB}')
    with pytest.raises(src.ConnectionFailed) as info:
        src.tables(app.pipelines_dir, "shop", "crm")
    assert PASSWORD not in str(info.value)


def test_a_secret_out_of_the_apps_scope_is_refused(app, pg, monkeypatch):
    url = pg.jdbc_url("src_crm")
    monkeypatch.setenv("OTHER_DB", f"src_user:{PASSWORD}")
    _yaml(app, crm=f'{{jdbcUrl: "{url}", userSecretRef: OTHER_DB}}')
    with pytest.raises(src.ConnectionFailed) as info:
        src.tables(app.pipelines_dir, "shop", "crm")
    assert "OTHER_DB" in str(info.value)
    assert PASSWORD not in str(info.value)


def test_mariadb_tables_and_schema(app, mariadb_server, monkeypatch):
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=mariadb_server.port, user="root", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("create database if not exists src_shop")
            cur.execute("drop table if exists src_shop.items")
            cur.execute("create table src_shop.items (sku varchar(20) not null, qty int)")
    finally:
        conn.close()
    monkeypatch.setenv("SHOP_MARIA", "root")
    url = mariadb_server.jdbc_url("src_shop")
    _yaml(app, shopdb=f'{{jdbcUrl: "{url}", userSecretRef: SHOP_MARIA}}')
    tables = src.tables(app.pipelines_dir, "shop", "shopdb")
    assert [t["name"] for t in tables] == ["items"]
    schema = src.table_schema(app.pipelines_dir, "shop", "shopdb", "items")
    cols = schema["columns"]
    assert [(c["name"], c["nullable"]) for c in cols] == [("sku", False), ("qty", True)]
    assert cols[0]["type"] == "varchar(20)"
    assert cols[1]["type"].startswith("int")


# ------------------------------------------------------------------------------- mongo


def test_mongo_collections_and_inferred_schema(app, mongo_server, monkeypatch):
    from pymongo import MongoClient

    client = MongoClient(mongo_server.mongo_uri)
    client.drop_database("src_catalog")
    client["src_catalog"]["products"].insert_many(
        [{"sku": f"s{i}", "price": i * 1.5, "dims": {"w": i}} for i in range(20)]
    )
    client["src_catalog"]["reviews"].insert_one({"stars": 5})
    client.close()
    monkeypatch.setenv("SHOP_MONGO_URI", mongo_server.mongo_uri + "src_catalog")
    _yaml(app, catalog="{uriSecretRef: SHOP_MONGO_URI}")
    tables = src.tables(app.pipelines_dir, "shop", "catalog")
    assert [t["name"] for t in tables] == ["products", "reviews"]
    schema = src.table_schema(app.pipelines_dir, "shop", "catalog", "products")
    types = {c["name"]: c["type"] for c in schema["columns"]}
    assert types["sku"] == "string"
    assert types["price"] == "double"
    assert types["dims"] == "struct<w:int>"
    assert schema["sampled"] == 20
    assert schema["json_schema"]["type"] == "object"
    with pytest.raises(src.UnknownName):
        src.table_schema(app.pipelines_dir, "shop", "catalog", "nothing")
    with pytest.raises(src.BadName):
        src.table_schema(app.pipelines_dir, "shop", "catalog", "$where")
    _no_secret([tables, schema])


# ----------------------------------------------------------------------------- landing


def test_landing_files_and_a_csv_header(app):
    landing = app.data_dir / "shop" / "landing"
    (landing / "orders").mkdir(parents=True)
    (landing / "orders" / "a.csv").write_text("id;amount\n1;2.5\n2;3.5\n")
    (landing / "orders" / ".hidden.csv").write_text("x\n")
    (landing / "events").mkdir()
    (landing / "events" / "e.json").write_text('{"id": 1, "kind": "x"}\n{"id": 2, "n": {"a": 1}}\n')
    (app.data_dir / "shop" / "secret.txt").write_text("not listed\n")
    files = src.landing_files(app.pipelines_dir, "shop", app.data_dir)
    assert [f["name"] for f in files] == ["landing/events/e.json", "landing/orders/a.csv"]
    header = src.landing_header(app.pipelines_dir, "shop", "landing/orders/a.csv", app.data_dir)
    assert header["header"] == ["id", "amount"]
    assert header["rows"] == [["1", "2.5"], ["2", "3.5"]]
    events = src.landing_header(app.pipelines_dir, "shop", "landing/events/e.json", app.data_dir)
    assert events["header"] == ["id", "kind", "n"]
    assert events["rows"][1] == [2, None, '{"a": 1}']


def test_files_no_pipeline_reads_yet_are_listed_from_the_apps_landing_folder(app):
    """A new pipeline's files wait in <app>/landing/ before any definition names them: the
    wizard shows their header too (data files only, by suffix; the readers' own folders
    keep their source and pipeline)."""
    landing = app.data_dir / "shop" / "landing"
    (landing / "payments").mkdir(parents=True)
    (landing / "payments" / "p1.csv").write_text("payment_id,amount\n7,1.5\n")
    (landing / "payments" / "notes.md").write_text("# not data\n")
    (landing / "orders").mkdir()
    (landing / "orders" / "a.csv").write_text("id;amount\n1;2.5\n")
    files = {f["name"]: f for f in src.landing_files(app.pipelines_dir, "shop", app.data_dir)}
    assert sorted(files) == ["landing/orders/a.csv", "landing/payments/p1.csv"]
    assert files["landing/payments/p1.csv"]["pipeline"] is None
    assert files["landing/orders/a.csv"]["pipeline"] is not None
    header = src.landing_header(app.pipelines_dir, "shop", "landing/payments/p1.csv", app.data_dir)
    assert header == {
        "name": "landing/payments/p1.csv",
        "kind": "csv",
        "header": ["payment_id", "amount"],
        "rows": [["7", "1.5"]],
    }


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "secret.txt",
        "landing/orders/../../secret.txt",
        "landing/orders/.hidden.csv",
        "landing/orders/link.csv",
    ],
)
def test_a_landing_name_must_be_one_of_the_listed(app, name, tmp_path):
    landing = app.data_dir / "shop" / "landing" / "orders"
    landing.mkdir(parents=True)
    (landing / "a.csv").write_text("id\n1\n")
    (landing / ".hidden.csv").write_text("x\n")
    outside = tmp_path / "outside.csv"
    outside.write_text("top,secret\n")
    (landing / "link.csv").symlink_to(outside)
    (app.data_dir / "shop" / "secret.txt").write_text("s\n")
    assert [f["name"] for f in src.landing_files(app.pipelines_dir, "shop", app.data_dir)] == [
        "landing/orders/a.csv"
    ]
    with pytest.raises(src.UnknownName):
        src.landing_header(app.pipelines_dir, "shop", name, app.data_dir)


def test_a_large_landing_file_is_read_capped(app):
    landing = app.data_dir / "shop" / "landing" / "orders"
    landing.mkdir(parents=True)
    with (landing / "big.csv").open("w") as fh:
        fh.write("id;text\n")
        for i in range(200_000):
            fh.write(f"{i};{'x' * 40}\n")
    header = src.landing_header(app.pipelines_dir, "shop", "landing/orders/big.csv", app.data_dir)
    assert header["header"] == ["id", "text"]
    assert len(header["rows"]) == src.HEADER_ROWS


# ---------------------------------------------------------------------- through the API


def test_source_helpers_through_the_api(app, pg, tmp_path, monkeypatch):
    from tests.service.test_preview import _service

    url = pg.jdbc_url("src_crm")
    _yaml(app, crm=f'{{jdbcUrl: "{url}", userSecretRef: SHOP_CRM_DB}}')
    landing = app.data_dir / "shop" / "landing" / "orders"
    landing.mkdir(parents=True)
    (landing / "a.csv").write_text("id;amount\n1;2.5\n")
    client, tokens, _ = _service(app, tmp_path)
    ed = tokens["ed"]
    answers = []
    with client:
        got = client.get("/api/v1/apps/shop/connections", headers=ed)
        assert got.json() == [{"name": "crm", "kind": "postgresql"}]
        answers.append(got.text)
        got = client.get("/api/v1/apps/shop/connections/crm/tables", headers=ed)
        assert got.status_code == 200, got.text
        assert "sales.orders" in [t["name"] for t in got.json()]
        answers.append(got.text)
        got = client.get(
            "/api/v1/apps/shop/connections/crm/schema", params={"table": "customers"}, headers=ed
        )
        assert [c["name"] for c in got.json()["columns"]] == ["id", "email", "born"]
        answers.append(got.text)
        bad = client.get(
            "/api/v1/apps/shop/connections/crm/schema",
            params={"table": "x'); DROP TABLE customers; --"},
            headers=ed,
        )
        assert bad.status_code == 422
        assert (
            client.get("/api/v1/apps/shop/connections/nope/tables", headers=ed).status_code == 404
        )
        got = client.get("/api/v1/apps/shop/landing", headers=ed)
        assert [f["name"] for f in got.json()] == ["landing/orders/a.csv"]
        got = client.get(
            "/api/v1/apps/shop/landing/header", params={"name": "landing/orders/a.csv"}, headers=ed
        )
        assert got.json()["header"] == ["id", "amount"]
        escape = client.get(
            "/api/v1/apps/shop/landing/header", params={"name": "../../etc/passwd"}, headers=ed
        )
        assert escape.status_code == 404
        viewer = client.get("/api/v1/apps/shop/connections", headers=tokens["vic"])
        assert viewer.status_code == 403
        # a failing connection: 502, the message free of the secret
        monkeypatch.setenv("SHOP_CRM_DB", f"src_user:{PASSWORD}-wrong")
        failed = client.get("/api/v1/apps/shop/connections/crm/tables", headers=ed)
        assert failed.status_code == 502
        answers.append(failed.text)
    for text in answers:
        assert PASSWORD not in text
