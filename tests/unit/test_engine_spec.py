"""`engine=` in definitions (issue 12): XML attribute, YAML key, app.yaml default, bad values
at file:line, the requested engine with its origin, and what `datahub validate` refuses for a
pipeline on DuckDB (database/mongo sources, database targets, Spark SQL that does not
translate to DuckDB, regexes RE2 rejects), with the blocker's file:line."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml
from spec_helpers import find_error, write

from datahub_assets import cli
from datahub_assets.engines.choice import requested_engine
from datahub_assets.spec.engine_rules import blockers_of
from datahub_assets.spec.errors import SpecError, SpecErrors
from datahub_assets.spec.jsonschema import yaml_json_schema
from datahub_assets.spec.loader import load_project
from datahub_assets.spec.xml_reader import read_pipeline_xml
from datahub_assets.spec.yaml_reader import read_app_yaml, read_pipeline_yaml
from datahub_resources.settings import Settings

DB_SOURCE = (
    '<database id="users" jdbcUrl="jdbc:postgresql://db:5432/app" userSecretRef="SHOP_DB">\n'
    '  <table name="public.users"/>\n'
    "</database>"
)


def xml(
    pid: str = "p",
    engine: str | None = None,
    sources: str = '<parquet id="a" path="in/a"/>',
    steps: str = "",
    targets: str = '<table table="t"/>',
    checks: str = "",
) -> str:
    attr = f' engine="{engine}"' if engine else ""
    parts = [f'<pipeline id="{pid}" layer="silver"{attr}>', f"<sources>\n{sources}\n</sources>"]
    if steps:
        parts.append(f"<transformations>\n{steps}\n</transformations>")
    parts.append(f"<targets>\n{targets}\n</targets>")
    if checks:
        parts.append(f"<checks>\n{checks}\n</checks>")
    return "\n".join([*parts, "</pipeline>", ""])


def load_errors(root: Path, files: dict[str, str], default: str = "spark") -> list[SpecError]:
    with pytest.raises(SpecErrors) as info:
        load_project(write(root, files), default_engine=default)
    return info.value.errors


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def settings(engine: str = "spark") -> Settings:
    return Settings.from_env({"DATAHUB_ENGINE": engine})


# ---------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("engine", ["spark", "duckdb", "auto"])
def test_xml_and_yaml_read_engine(engine):
    from_xml = read_pipeline_xml(xml(engine=engine), "app/silver/p.xml")
    text = (
        f"pipeline: {{id: p, layer: silver, engine: {engine}}}\n"
        "sources:\n  - parquet: {id: a, path: in/a}\n"
        "targets:\n  - table: {table: t}\n"
    )
    from_yaml = read_pipeline_yaml(text, "app/silver/p.yaml")
    assert from_xml.engine == engine
    assert from_yaml.engine == engine
    assert from_xml.model_dump(exclude={"loc"}) == from_yaml.model_dump(exclude={"loc"})
    doc = yaml.safe_load(text)
    jsonschema.validate(doc, yaml_json_schema())


def test_unset_engine_is_none_and_left_out_of_the_digest_dump():
    pipeline = read_pipeline_xml(xml(), "app/silver/p.xml")
    assert pipeline.engine is None
    assert '"engine"' not in pipeline.model_dump_json()
    assert '"engine":"auto"' in read_pipeline_xml(xml(engine="auto"), "f.xml").model_dump_json()


def test_bad_engine_in_xml_is_reported_at_its_line():
    text = xml().replace('layer="silver">', 'layer="silver"\n   engine="polars">')
    with pytest.raises(SpecErrors) as info:
        read_pipeline_xml(text, "app/silver/p.xml")
    err = find_error(info.value.errors, "app/silver/p.xml", 2, 'engine="polars"', "spark")
    assert "duckdb" in err.message
    assert "auto" in err.message


def test_bad_engine_in_yaml_is_reported_at_its_line():
    text = (
        "pipeline:\n  id: p\n  layer: silver\n  engine: DuckDB\n"
        "sources:\n  - parquet: {id: a, path: in/a}\n"
        "targets:\n  - table: {table: t}\n"
    )
    with pytest.raises(SpecErrors) as info:
        read_pipeline_yaml(text, "app/silver/p.yaml")
    find_error(info.value.errors, "app/silver/p.yaml", 4, "DuckDB", "spark, duckdb, auto")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(text), yaml_json_schema())


def test_app_yaml_engine_and_bad_value():
    assert read_app_yaml("owner: x\nengine: auto\n", "shop/app.yaml").engine == "auto"
    assert read_app_yaml("owner: x\n", "shop/app.yaml").engine is None
    with pytest.raises(SpecErrors) as info:
        read_app_yaml("owner: x\ntags: {a: b}\nengine: fast\n", "shop/app.yaml")
    find_error(info.value.errors, "shop/app.yaml", 3, '"fast"', "spark, duckdb, auto")


def test_bad_app_yaml_engine_fails_the_project_load(tmp_path):
    errors = load_errors(
        tmp_path / "p", {"shop/app.yaml": "engine: turbo\n", "shop/silver/p.xml": xml()}
    )
    find_error(errors, "shop/app.yaml", 1, "turbo")


# ------------------------------------------------------------------------- precedence


def test_precedence_pipeline_then_app_yaml_then_datahub_engine(tmp_path):
    root = write(
        tmp_path / "p",
        {
            "shop/app.yaml": "engine: duckdb\n",
            "shop/silver/own.xml": xml("own", engine="spark"),
            "shop/silver/app_default.xml": xml("app_default", targets='<table table="t2"/>'),
            "plain/silver/env_default.xml": xml("env_default"),
        },
    )
    specs = {s.pipeline.id: s for s in load_project(root, default_engine="auto").pipelines}
    assert specs["app_default"].app_engine == "duckdb"
    assert requested_engine(specs["own"], settings("auto")) == (
        "spark",
        "pipeline shop/silver/own.xml:1",
    )
    assert requested_engine(specs["app_default"], settings("auto")) == ("duckdb", "app.yaml")
    assert requested_engine(specs["env_default"], settings("auto")) == ("auto", "DATAHUB_ENGINE")
    assert requested_engine(specs["env_default"], settings("spark")) == (
        "spark",
        "DATAHUB_ENGINE",
    )


# ---------------------------------------------------------------- refusals on DuckDB


def test_database_and_mongo_sources_and_database_target_are_refused_on_duckdb(tmp_path):
    db = xml("db", engine="duckdb", sources=DB_SOURCE)
    mongo_src = (
        '<mongo id="docs" database="d" collection="c" uriSecretRef="SHOP_MONGO_URI"/>\n'
        '<parquet id="a" path="in/a"/>'
    )
    mongo = xml("mongo", engine="duckdb", sources=mongo_src, targets='<table table="m"/>')
    target = (
        '<database id="out" jdbcUrl="jdbc:postgresql://db:5432/app" userSecretRef="SHOP_DB" '
        'mode="append">\n  <table name="public.out"/>\n</database>'
    )
    dbt = xml("dbt", engine="duckdb", targets=target)
    errors = load_errors(
        tmp_path / "p",
        {"shop/silver/db.xml": db, "shop/silver/mongo.xml": mongo, "shop/silver/dbt.xml": dbt},
    )
    find_error(
        errors,
        "shop/silver/db.xml",
        line_of(db, "<database"),
        '<database> source "users"',
        "JDBC reader",
        "engine= on <pipeline> at shop/silver/db.xml:1",
    )
    find_error(errors, "shop/silver/mongo.xml", line_of(mongo, "<mongo"), "MongoDB reader")
    find_error(errors, "shop/silver/dbt.xml", line_of(dbt, "<database"), "JDBC writer")
    assert len(errors) == 3


def test_same_pipelines_load_on_spark_and_auto(tmp_path):
    files = {"shop/silver/db.xml": xml("db", sources=DB_SOURCE)}
    root = write(tmp_path / "p", files)
    for engine in ("spark", "auto"):
        (spec,) = load_project(root, default_engine=engine).pipelines
        assert [b.what for b in blockers_of(spec)] == ['<database> source "users"']


def test_refusal_names_app_yaml_as_the_origin(tmp_path):
    text = xml(sources=DB_SOURCE)
    errors = load_errors(
        tmp_path / "p", {"shop/app.yaml": "engine: duckdb\n", "shop/silver/p.xml": text}
    )
    find_error(errors, "shop/silver/p.xml", line_of(text, "<database"), "from app.yaml")


def test_datahub_validate_refuses_with_datahub_engine_duckdb(tmp_path, monkeypatch, capsys):
    text = xml(sources=DB_SOURCE)
    root = write(tmp_path / "p", {"shop/silver/p.xml": text})
    monkeypatch.setenv("DATAHUB_PIPELINES_DIR", str(root))
    monkeypatch.setenv("DATAHUB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATAHUB_ENGINE", "duckdb")
    assert cli.main(["validate"]) == 1
    err = capsys.readouterr().err
    assert f"shop/silver/p.xml:{line_of(text, '<database')}:" in err
    assert "from DATAHUB_ENGINE" in err
    monkeypatch.setenv("DATAHUB_ENGINE", "auto")
    assert cli.main(["validate"]) == 0
    assert "ok: 1 pipelines" in capsys.readouterr().out


SQL_STEPS = """<derive source="a" column="h" expr="xxhash64(id)"/>
<filter source="a" condition="amount &gt;"/>
<select source="a" columns="id, my_udf(x) as y"/>
<sort source="a" orderBy="amount desc, id"/>
<derive source="a" column="k" expr="sha2(email, 512)"/>
<derive source="a" column="ok" expr="concat_ws(' ', first, last)"/>
<derive source="a" column="bucket" expr="hash(id) % 8"/>
<derive source="a" column="ms" expr="date_format(ts, 'HH:mm:ss.SSS')"/>
<derive source="a" column="iso" expr="date_format(ts, 'yyyy-MM-dd''T''HH:mm')"/>
<derive source="a" column="epoch" expr="unix_timestamp(ts) + 1"/>
<derive source="a" column="month" expr="trunc(d, 'MM')"/>
<sql output="q"><![CDATA[SELECT id, date_format(ts, 'yyyy-MM') AS m FROM a]]></sql>"""


def test_spark_sql_that_does_not_translate_is_refused_at_its_line(tmp_path):
    checks = (
        '<expression expr="bogus_fn(amount) &gt; 0"/>\n'
        '<regex column="email" pattern="^(?=.*@).+$"/>\n'
        '<regex column="code" pattern="^[A-Z]{3}$"/>'
    )
    text = xml(engine="duckdb", steps=SQL_STEPS, checks=checks)
    errors = load_errors(tmp_path / "p", {"shop/silver/p.xml": text})
    f = "shop/silver/p.xml"
    find_error(errors, f, line_of(text, "xxhash64"), "xxhash64()", "DuckDB does not have")
    find_error(errors, f, line_of(text, "<filter"), "condition= on <filter>", "translate")
    find_error(errors, f, line_of(text, "my_udf"), "my_udf()")
    find_error(errors, f, line_of(text, "sha2"), "sha2(email, 512)", "translate")
    find_error(errors, f, line_of(text, "bogus_fn"), "<expression> check", "bogus_fn()")
    find_error(errors, f, line_of(text, "hash(id)"), "different values", "Murmur3")
    find_error(errors, f, line_of(text, "(?=.*@)"), "<regex>", "RE2")
    find_error(errors, f, line_of(text, "HH:mm:ss.SSS"), "date_format pattern", "as written")
    find_error(errors, f, line_of(text, "''T''"), "date_format pattern", "as written")
    # the translatable ones (sort, concat_ws, unix_timestamp, trunc, the sql query, a
    # RE2-valid regex) are not errors
    assert len(errors) == 9
    auto = write(tmp_path / "q", {"shop/silver/p.xml": text.replace('"duckdb"', '"auto"')})
    (spec,) = load_project(auto).pipelines
    assert [b.line for b in blockers_of(spec)] == sorted(e.line for e in errors)


def test_translatable_pipeline_loads_on_duckdb(tmp_path):
    steps = (
        '<derive source="a" column="m" expr="date_format(order_ts, \'yyyy-MM\')"/>\n'
        '<derive source="a" column="d" expr="unix_timestamp(e) - unix_timestamp(s)"/>\n'
        '<cast source="a" types="amount:decimal(12,2),tags:array&lt;string&gt;"/>\n'
        '<join left="a" right="b" condition="a.id = b.id" select="a.id, b.x"/>'
    )
    sources = '<parquet id="a" path="in/a"/>\n<parquet id="b" path="in/b"/>'
    root = write(
        tmp_path / "p", {"shop/silver/p.xml": xml(engine="duckdb", sources=sources, steps=steps)}
    )
    (spec,) = load_project(root).pipelines
    assert spec.pipeline.engine == "duckdb"
    assert blockers_of(spec) == ()


def test_example_apps_load_on_auto_and_only_crm_database_pipelines_are_blocked():
    project = load_project(Path("pipelines_xml"), default_engine="auto")
    blocked = {s.key: [b.what for b in blockers_of(s)] for s in project.pipelines}
    assert {k: v for k, v in blocked.items() if v} == {
        "crm.customers_extract": ['<database> source "customers"'],
        "crm.orders_extract": ['<database> source "orders"'],
        "crm.products_extract": ['<mongo> source "products"'],
        "crm.customer_revenue_report": ['<database> target "reporting.customer_revenue"'],
    }
