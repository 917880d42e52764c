"""Preview (`service/registry/preview.py`, `execute/preview.py`): a change's pipelines run on
DuckDB on a sample of their sources, with their checks, writing nothing anywhere the platform
reads: no Iceberg table or snapshot, no file moved from landing, no file in the data dir, no
file-drop ledger, no run record. Real parts: an app tree, CSV landing files, the platform's
SQLite Iceberg catalog, a real PostgreSQL (database source) and nx-27017 (mongo source)."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pytest

from datahub_assets.service.registry import preview as pv
from datahub_assets.service.registry.preview import preview

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RAW = """<pipeline id="orders_raw" version="1.0.0" layer="raw">
  <sources>
    <csv id="orders" path="landing/orders/*.csv" inferSchema="true">
      <watch minAgeSeconds="0"/>
    </csv>
  </sources>
  <targets>
    <table table="orders" mode="append"/>
  </targets>
  <checks>
    <notNull columns="order_id"/>
    <range column="amount" min="0"/>
  </checks>
</pipeline>
"""

SILVER = """<pipeline id="orders_clean" version="1.0.0" layer="silver">
  <sources>
    <table id="orders" ref="raw.orders"/>
  </sources>
  <transformations>
    <derive source="orders" column="amount_x2" expr="amount * 2"/>
  </transformations>
  <targets>
    <table table="orders" mode="overwrite"/>
  </targets>
  <checks>
    <unique columns="order_id"/>
  </checks>
</pipeline>
"""

MISSING = """<pipeline id="nothing_there" version="1.0.0" layer="raw">
  <sources>
    <csv id="ghost" path="landing/ghost/*.csv"/>
  </sources>
  <targets>
    <table table="ghost" mode="append"/>
  </targets>
</pipeline>
"""


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file below `root`: (size, mtime_ns)."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _catalog_state(settings) -> dict[str, object]:
    """Every table of the catalog and its current snapshot."""
    from datahub_resources.iceberg import load_catalog

    catalog = load_catalog(settings)
    out: dict[str, object] = {}
    for ns in catalog.list_namespaces():
        for ident in catalog.list_tables(ns):
            snap = catalog.load_table(ident).current_snapshot()
            out[".".join(ident)] = snap.snapshot_id if snap else None
    return out


@pytest.fixture
def shop(settings):
    """App `shop`: a raw CSV pipeline with checks, 250 rows landed in three files (one row
    with a negative amount, failing the range check)."""
    app = settings.pipelines_dir / "shop"
    (app / "raw").mkdir(parents=True)
    (app / "raw" / "orders.xml").write_text(RAW)
    landing = settings.data_dir / "shop" / "landing" / "orders"
    landing.mkdir(parents=True)
    for part in range(3):
        lines = ["order_id,customer,amount,ordered_on"]
        for i in range(part * 100, part * 100 + (100 if part < 2 else 50)):
            amount = -5 if i == 7 else i
            lines.append(f"{i},c{i % 9},{amount}.50,2024-03-{1 + i % 28:02d}")
        (landing / f"part-{part}.csv").write_text("\n".join(lines) + "\n")
    return settings


def _files(settings, app: str, *paths: str) -> list[dict]:
    root = settings.pipelines_dir / app
    return [{"path": p, "content": (root / p).read_text()} for p in paths]


def test_preview_returns_first_rows_and_checks_and_writes_nothing(shop):
    settings = shop
    data_before = _tree(settings.data_dir)
    catalog_before = _catalog_state(settings)
    result = preview(
        settings.pipelines_dir,
        "shop",
        _files(settings, "shop", "raw/orders.xml"),
        settings,
        sample_rows=120,
    )
    assert result["errors"] == []
    (table,) = result["tables"]
    assert table["table"] == "shop.raw.orders"
    assert [c["name"] for c in table["columns"]] == ["order_id", "customer", "amount", "ordered_on"]
    assert dict((c["name"], c["type"]) for c in table["columns"])["ordered_on"] == "date"
    assert len(table["rows"]) == 120
    assert table["rows"][0] == [0, "c0", 0.5, "2024-03-01"]
    json.dumps(result)  # JSON-safe: dates as ISO strings
    checks = {c["name"]: c for c in result["checks"]}
    assert checks["notNull_order_id"]["passed"] is True
    assert checks["notNull_order_id"]["failing_rows"] == 0
    assert checks["range_amount"]["passed"] is False
    assert checks["range_amount"]["failing_rows"] == 1
    # nothing written: no table, no ledger, data dir (landing files included) untouched
    assert _catalog_state(settings) == catalog_before == {}
    assert _tree(settings.data_dir) == data_before
    assert not (settings.home / "ingest").exists()


def test_preview_samples_the_first_files_only(shop):
    settings = shop
    result = preview(
        settings.pipelines_dir,
        "shop",
        _files(settings, "shop", "raw/orders.xml"),
        settings,
        sample_rows=1000,
    )
    (table,) = result["tables"]
    assert len(table["rows"]) == 250  # three files, all within MAX_FILES
    landing = settings.data_dir / "shop" / "landing" / "orders"
    for part in range(3, 6):
        (landing / f"part-{part}.csv").write_text("order_id,customer,amount,ordered_on\n")
    result = preview(
        settings.pipelines_dir,
        "shop",
        _files(settings, "shop", "raw/orders.xml"),
        settings,
        sample_rows=1000,
    )
    assert len(result["tables"][0]["rows"]) == 250
    assert sorted(p.name for p in landing.iterdir())[:3] == [
        "part-0.csv",
        "part-1.csv",
        "part-2.csv",
    ]


def test_a_table_source_reads_the_current_iceberg_table_read_only(shop):
    """silver reads raw.orders, written by a real DuckDB run first; the preview moves no
    snapshot and creates no silver table."""
    from datahub_assets.engines.duckdb.session import duckdb_engine
    from datahub_assets.execute.context import ExecContext
    from datahub_assets.execute.runner import run_pipeline
    from datahub_assets.spec.loader import load_project
    from datahub_resources.iceberg import load_catalog

    settings = shop
    (settings.data_dir / "shop" / "landing" / "orders" / "part-0.csv").write_text(
        "order_id,customer,amount,ordered_on\n1,a,2.5,2024-01-01\n2,b,3.5,2024-01-02\n"
    )
    for part in (1, 2):
        (settings.data_dir / "shop" / "landing" / "orders" / f"part-{part}.csv").unlink()
    (spec,) = load_project(settings.pipelines_dir).pipelines
    engine = duckdb_engine(settings)
    try:
        ctx = ExecContext(
            spark=engine.session,
            settings=settings,
            app="shop",
            run_id="r1",
            engine=engine,
            run_date=date(2024, 3, 1),
        )
        run_pipeline(spec, ctx, load_catalog(settings))
    finally:
        engine.connection.close()
    before = _catalog_state(settings)
    assert "shop_raw.orders" in before
    warehouse_before = _tree(settings.home / "warehouse")
    (settings.pipelines_dir / "shop" / "silver").mkdir()
    (settings.pipelines_dir / "shop" / "silver" / "orders.xml").write_text(SILVER)

    result = preview(
        settings.pipelines_dir, "shop", _files(settings, "shop", "silver/orders.xml"), settings
    )
    assert result["errors"] == []
    (table,) = result["tables"]
    assert table["table"] == "shop.silver.orders"
    names = [c["name"] for c in table["columns"]]
    rows = [dict(zip(names, r, strict=True)) for r in table["rows"]]
    assert sorted((r["order_id"], r["amount_x2"]) for r in rows) == [(1, 5.0), (2, 7.0)]
    assert [c["passed"] for c in result["checks"] if c["kind"] == "unique"] == [True]
    assert _catalog_state(settings) == before
    assert _tree(settings.home / "warehouse") == warehouse_before


def test_a_missing_source_is_a_located_error_not_an_exception(shop):
    settings = shop
    files = [{"path": "raw/ghost.xml", "content": MISSING}]
    (settings.pipelines_dir / "shop" / "raw" / "ghost.xml").write_text(MISSING)
    result = preview(settings.pipelines_dir, "shop", files, settings)
    assert result["tables"] == []
    (error,) = result["errors"]
    assert error["file"] == "shop/raw/ghost.xml"
    assert error["line"] == 3
    assert "no file matches" in error["message"]


def test_a_definition_that_does_not_load_is_reported_in_its_file(shop):
    settings = shop
    broken = RAW.replace('<range column="amount" min="0"/>', '<range column="amount" mn="0"/>')
    (settings.pipelines_dir / "shop" / "raw" / "orders.xml").write_text(broken)
    result = preview(
        settings.pipelines_dir, "shop", [{"path": "raw/orders.xml", "content": broken}], settings
    )
    assert result["tables"] == []
    assert result["errors"]
    assert all(e["file"] == "shop/raw/orders.xml" for e in result["errors"])
    assert any(e["line"] == 12 for e in result["errors"])


def test_a_change_without_pipelines_says_so(shop):
    settings = shop
    result = preview(
        settings.pipelines_dir, "shop", [{"path": "lookups/x.csv", "content": "a\n1\n"}], settings
    )
    assert result["tables"] == []
    assert "defines no pipeline" in result["errors"][0]["message"]


def test_pii_columns_are_null_unless_the_caller_has_pii(shop, monkeypatch):
    settings = shop
    monkeypatch.setattr(pv, "pii_columns", lambda _project, _spec: {"customer"})
    files = _files(settings, "shop", "raw/orders.xml")
    hidden = preview(settings.pipelines_dir, "shop", files, settings, sample_rows=5)
    (table,) = hidden["tables"]
    assert table["masked"] == ["customer"]
    assert {r[1] for r in table["rows"]} == {None}
    shown = preview(settings.pipelines_dir, "shop", files, settings, sample_rows=5, pii=True)
    assert shown["tables"][0]["masked"] == []
    assert shown["tables"][0]["rows"][1][1] == "c1"


def test_the_time_bound_stops_a_preview(shop, monkeypatch):
    """A timer interrupts the DuckDB query that runs too long; the answer is a located error."""
    import datahub_assets.execute.preview as ep

    def endless(_spec, ctx, _catalog, _n):
        ctx.engine.connection.execute("select sum(i * i) from range(100000000000) t(i)")
        raise AssertionError("not interrupted")

    monkeypatch.setattr(ep, "preview_pipeline", endless)
    settings = shop
    files = _files(settings, "shop", "raw/orders.xml")
    result = preview(settings.pipelines_dir, "shop", files, settings, timeout_s=0.5)
    (error,) = result["errors"]
    assert error["file"] == "shop/raw/orders.xml"
    assert "stopped after 0.5 s" in error["message"]


def test_the_catalog_refuses_changes():
    class Fake:
        def load_table(self, ident):
            return ident

    ro = pv.ReadOnlyCatalog(Fake())
    assert ro.load_table("x") == "x"
    for name in ("create_table", "drop_table", "commit_table", "purge_table", "register_table"):
        with pytest.raises(PermissionError):
            getattr(ro, name)


# ---------------------------------------------------------------- database and mongo sources

DB_PIPELINE = """<pipeline id="customers_extract" version="1.0.0" layer="raw">
  <sources>
    <database id="customers" connection="crm" partitionColumn="id" numPartitions="4">
      <table name="customers"/>
    </database>
  </sources>
  <targets>
    <table table="customers" mode="overwrite"/>
  </targets>
  <checks>
    <notNull columns="name"/>
  </checks>
</pipeline>
"""

MONGO_PIPELINE = """<pipeline id="products_extract" version="1.0.0" layer="raw">
  <sources>
    <mongo id="products" connection="catalog" database="{db}" collection="products"/>
  </sources>
  <targets>
    <table table="products" mode="overwrite"/>
  </targets>
</pipeline>
"""

PASSWORD = "pr3view-S3cret-value"


@pytest.fixture
def crm_db(postgres_server, monkeypatch):
    """Database `preview_crm` with 500 customers (one without a name), reached by the
    password role `preview_user` whose `user:password` is the secret SHOP_CRM_DB."""
    import psycopg

    from datahub_assets.demo import local_servers

    local_servers.create_database(postgres_server, "preview_crm")
    local_servers.add_password_user(postgres_server, "preview_user", PASSWORD)
    with psycopg.connect(
        host="127.0.0.1",
        port=postgres_server.port,
        user="datahub",
        dbname="preview_crm",
        autocommit=True,
    ) as conn:
        conn.execute("drop table if exists customers")
        conn.execute("create table customers (id int primary key, name text, joined date)")
        conn.execute(
            "insert into customers select i, case when i = 3 then null else 'n' || i end, "
            "date '2024-01-01' + i from generate_series(1, 500) i"
        )
    monkeypatch.setenv("SHOP_CRM_DB", f"preview_user:{PASSWORD}")
    return postgres_server


def _app_yaml(settings, **conns: str) -> None:
    lines = ["connections:"] + [f"  {k}: {v}" for k, v in conns.items()]
    (settings.pipelines_dir / "shop" / "app.yaml").write_text("\n".join(lines) + "\n")


def test_a_database_source_is_sampled_with_a_limit(shop, crm_db):
    settings = shop
    url = crm_db.jdbc_url("preview_crm")
    _app_yaml(settings, crm=f'{{jdbcUrl: "{url}", userSecretRef: SHOP_CRM_DB}}')
    (settings.pipelines_dir / "shop" / "raw" / "customers.xml").write_text(DB_PIPELINE)
    result = preview(
        settings.pipelines_dir,
        "shop",
        _files(settings, "shop", "raw/customers.xml"),
        settings,
        sample_rows=50,
    )
    assert result["errors"] == []
    (table,) = result["tables"]
    assert len(table["rows"]) == 50
    assert [c["name"] for c in table["columns"]] == ["id", "name", "joined"]
    check = {c["name"]: c for c in result["checks"]}["notNull_name"]
    assert (check["passed"], check["failing_rows"]) == (False, 1)
    assert PASSWORD not in json.dumps(result)


def test_a_database_error_is_located_and_free_of_the_password(shop, crm_db, monkeypatch):
    settings = shop
    url = crm_db.jdbc_url("preview_crm")
    _app_yaml(settings, crm=f'{{jdbcUrl: "{url}", userSecretRef: SHOP_CRM_DB}}')
    text = DB_PIPELINE.replace('<table name="customers"/>', '<table name="no_such_table"/>')
    (settings.pipelines_dir / "shop" / "raw" / "customers.xml").write_text(text)
    result = preview(
        settings.pipelines_dir, "shop", [{"path": "raw/customers.xml", "content": text}], settings
    )
    (error,) = result["errors"]
    assert error["file"] == "shop/raw/customers.xml"
    assert error["line"] == 3
    assert "no_such_table" in error["message"]
    assert PASSWORD not in json.dumps(result)
    # a wrong password: the secret's value never appears either
    monkeypatch.setenv("SHOP_CRM_DB", f"preview_user:{PASSWORD}-wrong")
    result = preview(
        settings.pipelines_dir, "shop", [{"path": "raw/customers.xml", "content": text}], settings
    )
    assert result["errors"]
    assert PASSWORD not in json.dumps(result)


def test_a_mongo_source_is_sampled(shop, mongo_server, monkeypatch):
    from pymongo import MongoClient

    settings = shop
    client = MongoClient(mongo_server.mongo_uri)
    db = "preview_mongo"
    client.drop_database(db)
    client[db]["products"].insert_many(
        [{"sku": f"s{i}", "price": i * 1.5, "tags": ["a"]} for i in range(300)]
    )
    client.close()
    monkeypatch.setenv("SHOP_MONGO_URI", mongo_server.mongo_uri + db)
    _app_yaml(settings, catalog="{uriSecretRef: SHOP_MONGO_URI}")
    (settings.pipelines_dir / "shop" / "raw" / "products.xml").write_text(
        MONGO_PIPELINE.format(db=db)
    )
    result = preview(
        settings.pipelines_dir,
        "shop",
        _files(settings, "shop", "raw/products.xml"),
        settings,
        sample_rows=40,
    )
    assert result["errors"] == []
    (table,) = result["tables"]
    assert len(table["rows"]) == 40
    assert {"sku", "price"} <= {c["name"] for c in table["columns"]}
    assert mongo_server.mongo_uri not in json.dumps(result)


# ---------------------------------------------------------------------- through the API


def _service(settings, tmp_path):
    """The service over the test's platform settings, and an access token per user:
    `ed` editor of shop, `pia` editor of shop with pii, `vic` viewer of shop."""
    from fastapi.testclient import TestClient

    from datahub_assets.service.app import create_app
    from datahub_assets.service.auth.tokens import issue_access_token
    from datahub_assets.service.settings import ServiceSettings
    from datahub_assets.service.state.db import State, migrate, utcnow
    from datahub_assets.service.state.models import Grant, User

    env = {
        **os.environ,
        "DATAHUB_HOME": str(settings.home),
        "DATAHUB_DATA_DIR": str(settings.data_dir),
        "DATAHUB_PIPELINES_DIR": str(settings.pipelines_dir),
        "DATAHUB_STATE_URI": f"sqlite:///{tmp_path / 'hub.db'}",
        "DATAHUB_SERVICE_SECRET": "x" * 40,
    }
    service_settings = ServiceSettings.from_env(env)
    migrate(service_settings.state_uri)
    tokens = {}
    with State(service_settings.state_uri).session() as db:
        for name, role, pii in (
            ("ed", "editor", False),
            ("pia", "editor", True),
            ("vic", "viewer", False),
        ):
            user = User(username=name, password_hash=None, created_at=utcnow())
            db.add(user)
            db.flush()
            db.add(Grant(user_id=user.id, app="shop", role=role, pii=pii))
            db.flush()
            token, _ = issue_access_token(user, service_settings.secret_key, 900)
            tokens[name] = {"Authorization": f"Bearer {token}"}
    return TestClient(create_app(service_settings)), tokens, service_settings


def _audit(service_settings, action: str) -> list:
    from sqlalchemy import select

    from datahub_assets.service.state.db import State
    from datahub_assets.service.state.models import AuditEvent

    with State(service_settings.state_uri).session() as db:
        rows = db.scalars(select(AuditEvent).where(AuditEvent.action == action))
        return [(r.actor, r.target, r.outcome, r.app) for r in rows]


def _unwatched(text: str) -> str:
    """A second pipeline of the same landing files: read, not watched (one owner per drop)."""
    return text.replace('      <watch minAgeSeconds="0"/>\n', "")


def test_preview_of_a_draft_through_the_api(shop, tmp_path):
    settings = shop
    client, tokens, service_settings = _service(settings, tmp_path)
    draft = _unwatched(RAW.replace("orders_raw", "orders_draft").replace('"orders"', '"draft"'))
    body = {"files": [{"path": "raw/draft.xml", "content": draft}], "sample_rows": 10}
    data_before = _tree(settings.data_dir)
    with client:
        answer = client.post("/api/v1/apps/shop/preview", json=body, headers=tokens["ed"])
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["errors"] == []
        (table,) = result["tables"]
        assert table["table"] == "shop.raw.draft"
        assert len(table["rows"]) == 10
        assert {c["name"]: c["passed"] for c in result["checks"]}["range_amount"] is False
        # the draft was not written into the pipelines tree, nothing into the data dir
        assert not (settings.pipelines_dir / "shop" / "raw" / "draft.xml").exists()
        assert _tree(settings.data_dir) == data_before
        assert _catalog_state(settings) == {}
        assert ("ed", "app:shop", "ok", "shop") in _audit(service_settings, "change.preview")
        # a viewer may not preview; a path out of the app folder is refused
        viewer = client.post("/api/v1/apps/shop/preview", json=body, headers=tokens["vic"])
        assert viewer.status_code == 403
        evil = {"files": [{"path": "../other/raw/x.xml", "content": draft}]}
        refused = client.post("/api/v1/apps/shop/preview", json=evil, headers=tokens["ed"])
        assert refused.status_code == 422
        assert not (settings.pipelines_dir / "other").exists()


def test_preview_of_a_change_through_the_api(shop, tmp_path):
    settings = shop
    client, tokens, service_settings = _service(settings, tmp_path)
    draft = _unwatched(RAW.replace("orders_raw", "orders_two").replace('"orders"', '"two"'))
    with client:
        created = client.post(
            "/api/v1/changes",
            json={
                "app": "shop",
                "title": "two",
                "files": [{"path": "raw/two.xml", "content": draft}],
            },
            headers=tokens["ed"],
        )
        assert created.status_code == 201, created.text
        change_id = created.json()["id"]
        answer = client.post(f"/api/v1/changes/{change_id}/preview", headers=tokens["ed"])
        assert answer.status_code == 200, answer.text
        (table,) = answer.json()["tables"]
        assert table["table"] == "shop.raw.two"
        assert ("ed", f"change:{change_id}", "ok", "shop") in _audit(
            service_settings, "change.preview"
        )
        missing = client.post("/api/v1/changes/nope/preview", headers=tokens["ed"])
        assert missing.status_code == 404
