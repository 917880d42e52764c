"""`database` sources through Spark JDBC against real PostgreSQL and MariaDB servers:
parameters that stay literals, partitioned reads, incremental slices whose watermark commits
with the rows, and credentials that never leak."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from datahub_assets.demo import local_servers
from datahub_assets.execute.runner import PipelineRunError, run_pipeline
from datahub_assets.spec.loader import load_project
from datahub_resources.iceberg import load_catalog
from tests.conftest import APP_USER_PASSWORD
from tests.support.context import exec_context

pytestmark = pytest.mark.spark

INJECTIONS = [
    "'; DROP TABLE crm_people; --",
    "O'Brien",
    "back\\slash\\",
    "\\'; DROP TABLE x; --",
    "ünïcødé ✓ 'quoted' \"dq\"",
    "$$; DROP TABLE x; $$",
    "a`b",
    "--",
    "/* c */",
]


@pytest.fixture(params=["postgres", "mariadb"])
def db(request, monkeypatch):
    """(server, jdbc url, DB-API connect()) of a fresh `crm_<n>` database per test."""
    server = request.getfixturevalue(f"{request.param}_server")
    name = f"crm_{abs(hash(request.node.name)) % 10**8}"
    local_servers.create_database(server, name)
    url = server.jdbc_url(name)
    if server.kind == "postgres":
        import psycopg

        monkeypatch.setenv("CRM_DB", f"app_user:{APP_USER_PASSWORD}")

        def connect():
            return psycopg.connect(
                host="127.0.0.1", port=server.port, user="datahub", dbname=name, autocommit=True
            )
    else:
        import pymysql

        monkeypatch.setenv("CRM_DB", "root")

        def connect():
            return pymysql.connect(
                host="127.0.0.1", port=server.port, user="root", database=name, autocommit=True
            )

    return server, url, connect


def _exec(connect, *statements, params=None):
    conn = connect()
    try:
        cur = conn.cursor()
        for stmt in statements:
            cur.execute(stmt, params) if params is not None else cur.execute(stmt)
        try:
            return cur.fetchall()
        except Exception:
            return None
    finally:
        conn.close()


def _people(server, connect, rows):
    ts = "timestamp(6)" if server.kind == "mariadb" else "timestamp"
    _exec(
        connect,
        "drop table if exists crm_people",
        f"create table crm_people (id integer primary key, name varchar(200), "
        f"amount decimal(12,2), updated_at {ts} null)",
    )
    _insert(connect, rows)


def _insert(connect, rows):
    mark = "%s"
    conn = connect()
    try:
        cur = conn.cursor()
        for r in rows:
            cur.execute(f"insert into crm_people values ({mark}, {mark}, {mark}, {mark})", r)
    finally:
        conn.close()


def _pipeline(settings, url, body, targets, layer="raw", app_yaml=None, job=None):
    folder = settings.pipelines_dir / "crm" / layer
    folder.mkdir(parents=True, exist_ok=True)
    if app_yaml:
        (settings.pipelines_dir / "crm" / "app.yaml").write_text(app_yaml)
    if job:  # a job pipeline running this one, declaring `job` (its <parameters>)
        (settings.pipelines_dir / "crm" / "jobs").mkdir(exist_ok=True)
        (settings.pipelines_dir / "crm" / "jobs" / "j.xml").write_text(
            f'<jobPipeline id="j">{job}<pipelines><pipelineRef id="people"/></pipelines>'
            "</jobPipeline>"
        )
    (folder / "people.xml").write_text(f"""<pipeline id="people" layer="{layer}">
  <sources>
    {body.format(url=url)}
  </sources>
  <targets>
    {targets}
  </targets>
</pipeline>
""")
    (spec,) = load_project(settings.pipelines_dir).pipelines
    return spec


def _ctx(spark, settings, run_id="r1", **kw):
    return exec_context(spark, settings, app="crm", run_id=run_id, **kw)


def _table(catalog, name="people", ns="crm_raw"):
    return catalog.load_table(f"{ns}.{name}").scan().to_arrow().to_pylist()


T0 = dt.datetime(2024, 1, 1, 10, 0, 0)


def test_table_source_partitioned_read_equals_the_source(spark, settings, db):
    server, url, connect = db
    rows = [(i, f"n{i}", Decimal(i) / 4, T0 + dt.timedelta(minutes=i)) for i in range(1, 501)]
    _people(server, connect, rows)
    spec = _pipeline(
        settings,
        url,
        """<database id="people" jdbcUrl="{url}" userSecretRef="CRM_DB"
        partitionColumn="id" numPartitions="4" fetchSize="50">
        <table name="crm_people"/></database>""",
        '<table table="people" mode="append"/>',
    )
    (out,) = run_pipeline(spec, _ctx(spark, settings), load_catalog(settings))
    assert out.rows == 500
    got = sorted((r["id"], r["name"], r["amount"]) for r in _table(load_catalog(settings)))
    assert got == [(i, f"n{i}", Decimal(i) / 4) for i in range(1, 501)]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_parameters_are_literals_not_sql(spark, settings, db, payload):
    server, url, connect = db
    _people(server, connect, [(1, payload, Decimal("1.00"), T0), (2, "other", Decimal(2), T0)])
    spec = _pipeline(
        settings,
        url,
        """<database id="people" jdbcUrl="{url}" userSecretRef="CRM_DB">
      <sql><![CDATA[select id, name, :runDate as run_day, ':notaparam' as lit
                    from crm_people where name = :who -- :commented
      ]]></sql></database>""",
        '<table table="people" mode="append"/>',
        job='<parameters><parameter name="who" default="nobody"/></parameters>',
    )
    ctx = _ctx(spark, settings, run_date=dt.date(2024, 5, 6), params={"who": payload})
    # the job pipeline declares :who; the run's value reaches the step as ctx.params
    (out,) = run_pipeline(spec, ctx, load_catalog(settings))
    (row,) = _table(load_catalog(settings))
    assert (row["id"], row["name"], row["lit"]) == (1, payload, ":notaparam")
    assert str(row["run_day"]).startswith("2024-05-06")
    # the payload did nothing: the table is still there with both rows
    assert _exec(connect, "select count(*) from crm_people")[0][0] == 2


def test_wrong_password_error_names_no_secret(spark, settings, postgres_server, monkeypatch):
    local_servers.create_database(postgres_server, "crm_pw")
    secret = "Sup3r-Secret-Value'x"
    monkeypatch.setenv("CRM_DB", f"app_user:{secret}")
    spec = _pipeline(
        settings,
        postgres_server.jdbc_url("crm_pw"),
        """<database id="people" jdbcUrl="{url}" userSecretRef="CRM_DB">
                     <table name="crm_people"/></database>""",
        '<table table="people"/>',
    )
    with pytest.raises(PipelineRunError) as err:
        run_pipeline(spec, _ctx(spark, settings), load_catalog(settings))
    text = f"{err.value!r} {err.value} {err.value.__cause__}"
    assert "password authentication failed" in text
    assert secret not in text
    assert "Sup3r" not in text


def test_credentials_never_in_outcome_or_plan(spark, settings, postgres_server, monkeypatch):
    local_servers.create_database(postgres_server, "crm_plan")
    import psycopg

    with psycopg.connect(
        host="127.0.0.1",
        port=postgres_server.port,
        user="datahub",
        dbname="crm_plan",
        autocommit=True,
    ) as conn:
        conn.execute("create table if not exists t (id int)")
        conn.execute("insert into t values (1)")
    monkeypatch.setenv("CRM_DB", f"app_user:{APP_USER_PASSWORD}")
    spec = _pipeline(
        settings,
        postgres_server.jdbc_url("crm_plan"),
        """<database id="people" jdbcUrl="{url}" userSecretRef="CRM_DB">
                     <table name="t"/></database>""",
        '<table table="people"/>',
    )
    from datahub_assets.execute.readers.database import read_database

    df = read_database(spec.pipeline.sources[0], _ctx(spark, settings, spec=spec))
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        df.explain(True)
    assert "JDBCRelation" in buf.getvalue() or "Scan" in buf.getvalue()
    assert APP_USER_PASSWORD not in buf.getvalue()
    assert "s3cr3t" not in buf.getvalue()
    (out,) = run_pipeline(spec, _ctx(spark, settings), load_catalog(settings))
    assert APP_USER_PASSWORD not in repr(out)
    assert "s3cr3t" not in repr(out)


def test_incremental_three_runs_with_boundary_ties(spark, settings, db):
    """Rows at the watermark's exact timestamp that arrive later are read, re-read boundary
    rows are merged (no duplicates), and Iceberg equals the source after every run."""
    server, url, connect = db
    _people(server, connect, [(1, "a", Decimal(1), T0), (2, "b", Decimal(2), T0)])
    spec = _pipeline(
        settings,
        url,
        """<database id="people" jdbcUrl="{url}" userSecretRef="CRM_DB"
        partitionColumn="id" numPartitions="2"><table name="crm_people"/>
        <incremental column="updated_at"/></database>""",
        '<table table="people" mode="merge" keys="id"/>',
    )
    catalog = load_catalog(settings)

    def check(run):
        run_pipeline(spec, _ctx(spark, settings, run_id=run), load_catalog(settings))
        source = sorted(
            (r[0], r[1], r[2]) for r in _exec(connect, "select id, name, amount from crm_people")
        )
        got = sorted((r["id"], r["name"], r["amount"]) for r in _table(load_catalog(settings)))
        assert got == source
        return got

    check("r1")
    # a late row with the watermark's exact value, an update, and a new row
    _insert(
        connect,
        [(3, "c", Decimal(3), T0), (4, "d", Decimal(4), T0 + dt.timedelta(seconds=1))],
    )
    _exec(
        connect,
        "update crm_people set name = 'b2', updated_at = %s where id = 2",
        params=(T0 + dt.timedelta(seconds=2),),
    )
    got = check("r2")
    assert len(got) == 4
    _exec(
        connect,
        "update crm_people set name = 'a2', updated_at = %s where id = 1",
        params=(T0 + dt.timedelta(seconds=2),),
    )
    check("r3")
    snap = catalog.load_table("crm_raw.people").current_snapshot()
    assert "2024-01-01T10:00:02" in snap.summary.additional_properties["datahub.watermark.people"]


def test_failed_run_keeps_the_watermark(spark, settings, db, monkeypatch):
    server, url, connect = db
    _people(server, connect, [(1, "a", Decimal(1), T0)])
    spec = _pipeline(
        settings,
        url,
        """<database id="people" jdbcUrl="{url}" userSecretRef="CRM_DB">
        <table name="crm_people"/><incremental column="updated_at"/></database>""",
        '<table table="people" mode="merge" keys="id"/>',
    )
    run_pipeline(spec, _ctx(spark, settings, run_id="r1"), load_catalog(settings))
    before = load_catalog(settings).load_table("crm_raw.people").current_snapshot()
    _insert(connect, [(2, "b", Decimal(2), T0 + dt.timedelta(hours=1))])

    from datahub_assets.execute import runner

    def boom(*_args, **_kwargs):
        raise RuntimeError("injected failure after the read")

    with monkeypatch.context() as patched:
        patched.setattr(runner, "write_tables", boom)
        with pytest.raises(Exception, match="injected"):
            run_pipeline(spec, _ctx(spark, settings, run_id="r2"), load_catalog(settings))
    after = load_catalog(settings).load_table("crm_raw.people").current_snapshot()
    assert after.snapshot_id == before.snapshot_id
    # the next run still reads row 2
    run_pipeline(spec, _ctx(spark, settings, run_id="r3"), load_catalog(settings))
    assert sorted(r["id"] for r in _table(load_catalog(settings))) == [1, 2]


def test_full_refresh_reads_everything_again(spark, settings, db):
    server, url, connect = db
    _people(
        server,
        connect,
        [
            (1, "a", Decimal(1), T0),
            (2, "b", Decimal(2), T0),
            (3, "c", Decimal(3), T0 + dt.timedelta(hours=1)),
        ],
    )
    spec = _pipeline(
        settings,
        url,
        """<database id="people" jdbcUrl="{url}" userSecretRef="CRM_DB">
        <table name="crm_people"/><incremental column="updated_at"/></database>""",
        '<table table="people" mode="merge" keys="id"/>',
    )
    run_pipeline(spec, _ctx(spark, settings, run_id="r1"), load_catalog(settings))
    # an update below the watermark keeping its old timestamp is invisible to a normal run...
    _exec(connect, "update crm_people set name = 'silent' where id = 2")
    run_pipeline(spec, _ctx(spark, settings, run_id="r2"), load_catalog(settings))
    assert {r["id"]: r["name"] for r in _table(load_catalog(settings))}[2] == "b"
    # ...and picked up by a full refresh
    (out,) = run_pipeline(
        spec, _ctx(spark, settings, run_id="r3", full_refresh=True), load_catalog(settings)
    )
    assert out.rows == 3
    assert {r["id"]: r["name"] for r in _table(load_catalog(settings))}[2] == "silent"


def test_connection_from_app_yaml_and_isolation_level(spark, settings, db):
    server, url, connect = db
    _people(server, connect, [(1, "a", Decimal(1), T0)])
    iso = (
        "current_setting('transaction_isolation')"
        if server.kind == "postgres"
        else "@@session.tx_isolation"
    )
    spec = _pipeline(
        settings,
        url,
        f"""<database id="people" connection="crm"
        isolationLevel="REPEATABLE_READ"><sql>select id, name, {iso} as iso
        from crm_people</sql></database>""",
        '<table table="people"/>',
        app_yaml=f'connections:\n  crm: {{jdbcUrl: "{url}", userSecretRef: CRM_DB}}\n',
    )
    run_pipeline(spec, _ctx(spark, settings), load_catalog(settings))
    ((ident, name, level),) = [
        (r["id"], r["name"], r["iso"]) for r in _table(load_catalog(settings))
    ]
    assert (ident, name) == (1, "a")
    assert level.lower().replace("-", " ") == "repeatable read"


def test_watermark_show_and_reset_cli(spark, settings, postgres_server, monkeypatch, capsys):
    from datahub_assets.cli import main

    local_servers.create_database(postgres_server, "crm_cli")
    import psycopg

    def sql(statement):
        with psycopg.connect(
            host="127.0.0.1",
            port=postgres_server.port,
            user="datahub",
            dbname="crm_cli",
            autocommit=True,
        ) as conn:
            conn.execute(statement)

    sql("create table p (id int primary key, name text, u timestamp)")
    sql("insert into p values (1, 'a', '2024-01-01 00:00:00'), (2, 'b', '2024-01-02 00:00:00')")
    monkeypatch.setenv("CRM_DB", "datahub")
    spec = _pipeline(
        settings,
        postgres_server.jdbc_url("crm_cli"),
        """<database id="people" jdbcUrl="{url}" userSecretRef="CRM_DB">
                     <table name="p"/><incremental column="u"/></database>""",
        '<table table="people" mode="merge" keys="id"/>',
    )

    def names():
        return {r["id"]: r["name"] for r in _table(load_catalog(settings))}

    assert main(["watermark", "show", "crm.people"]) == 0
    assert "none: the next run reads every row" in capsys.readouterr().out
    run_pipeline(spec, _ctx(spark, settings, run_id="r1"), load_catalog(settings))
    assert main(["watermark", "show", "crm.people"]) == 0
    assert "2024-01-02T00:00:00" in capsys.readouterr().out
    sql("update p set name = 'a2' where id = 1")  # below the watermark: not read again
    run_pipeline(spec, _ctx(spark, settings, run_id="r2"), load_catalog(settings))
    assert names() == {1: "a", 2: "b"}
    assert main(["watermark", "reset", "crm.people"]) == 0
    assert "watermark reset" in capsys.readouterr().out
    assert main(["watermark", "show", "crm.people"]) == 0
    assert "none: the next run reads every row" in capsys.readouterr().out
    run_pipeline(spec, _ctx(spark, settings, run_id="r3"), load_catalog(settings))
    assert names() == {1: "a2", 2: "b"}
    assert main(["watermark", "show", "crm.nope"]) == 1


def test_partition_column_of_a_text_type_is_a_clear_error(spark, settings, db):
    server, url, connect = db
    _people(server, connect, [(1, "a", Decimal(1), T0)])
    spec = _pipeline(
        settings,
        url,
        """<database id="people" jdbcUrl="{url}" userSecretRef="CRM_DB"
        partitionColumn="name" numPartitions="2"><table name="crm_people"/></database>""",
        '<table table="people"/>',
    )
    with pytest.raises(
        PipelineRunError,
        match="partitionColumn 'name' has type string; allowed: a numeric, date or timestamp",
    ):
        run_pipeline(spec, _ctx(spark, settings), load_catalog(settings))
