"""XML and YAML readers: valid files parse to the expected model; bad files report every
problem with file, line, the offending value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from spec_helpers import find_error

from datahub_assets.spec.errors import SpecError, SpecErrors
from datahub_assets.spec.models import (
    Aggregate,
    DatabaseSource,
    Join,
    MongoSource,
    Sql,
    TableSource,
    TableTarget,
)
from datahub_assets.spec.xml_reader import read_pipeline_xml
from datahub_assets.spec.yaml_reader import read_app_yaml, read_pipeline_yaml

FIXTURES = Path(__file__).parent / "fixtures_spec"
SALES = FIXTURES / "project" / "sales"
SILVER_XML = SALES / "silver" / "customer_standardization.xml"
SILVER_YAML = FIXTURES / "customer_standardization.yaml"


def line_of(text: str, needle: str, nth: int = 1) -> int:
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[nth - 1]


def errors_of(read, text: str, file: str) -> list[SpecError]:
    with pytest.raises(SpecErrors) as info:
        read(text, file)
    return info.value.errors


find = find_error


# ------------------------------------------------------------------------ valid files


def test_seed_style_xml_alias_layer_and_hive_target():
    text = (SALES / "staging" / "customer_staging_load.xml").read_text()
    p = read_pipeline_xml(text, "sales/staging/customer_staging_load.xml")
    assert (p.id, p.version, p.layer) == ("customer_staging_load", "1.0", "raw")
    assert p.loc.line == 3
    assert p.loc.file == "sales/staging/customer_staging_load.xml"
    assert p.metadata.owner == "customer-team"
    assert p.metadata.tags == {"domain": "customer"}
    csv = p.sources[0]
    assert (csv.kind, csv.header, csv.delimiter, csv.schema_ref) == (
        "csv",
        True,
        ";",
        "schemas/customers.avsc",
    )
    assert csv.watch.poll_seconds == 15
    assert csv.watch.enabled is True
    target = p.targets[0]
    assert isinstance(target, TableTarget)
    assert (target.table, target.mode) == ("staging.customer_snapshot", "overwrite")
    assert target.loc.line == line_of(text, "<hive")
    assert p.checks[0].target is None
    assert p.checks[0].columns == ("customer_id",)


def test_full_xml_parses_every_element():
    p = read_pipeline_xml(SILVER_XML.read_text(), "silver.xml")
    kinds = [s.kind for s in p.sources]
    assert kinds == ["table", "database", "database", "mongo", "json", "parquet", "lookup"]
    table, crm, regions, mongo = p.sources[:4]
    assert isinstance(table, TableSource)
    assert table.incremental.column == "updated_at"
    assert isinstance(crm, DatabaseSource)
    assert crm.sql.startswith("SELECT id, status")
    assert ":runDate" in crm.sql
    assert crm.load_policy == "eager"
    assert crm.fetch_size == 1000
    assert regions.table_name == "public.regions"
    assert regions.sql is None
    assert isinstance(mongo, MongoSource)
    assert mongo.filter == '{"type": "click"}'
    assert mongo.flatten is True
    assert mongo.sample_size == 500
    assert len(p.transformations) == 14
    join = p.transformations[1]
    assert isinstance(join, Join)
    assert join.inputs == ("customers", "crm")
    assert join.result == "joined"
    agg = p.transformations[4]
    assert isinstance(agg, Aggregate)
    assert agg.metrics == ("count:orders", "sum:amount:total", "max:amount")
    sql = p.transformations[-1]
    assert isinstance(sql, Sql)
    assert sql.query.startswith("SELECT j.*")
    assert [t.table for t in p.targets] == ["customers", "silver.customer_360"]
    assert p.targets[0].keys == ("customer_id",)
    assert len(p.checks) == 10
    assert p.checks[4].severity == "warn"


def test_xml_and_yaml_forms_give_equal_models():
    x = read_pipeline_xml(SILVER_XML.read_text(), "a.xml")
    y = read_pipeline_yaml(SILVER_YAML.read_text(), "a.yaml")
    assert x.model_dump() == y.model_dump()
    assert y.transformations[0].loc.line == line_of(SILVER_YAML.read_text(), "- deduplicate")


def test_contract_yaml_example():
    text = """\
pipeline: {id: extract_users, version: 1.0.0, layer: raw}
metadata: {owner: platform, schedule: "0 */6 * * *"}
sources:
  - database: {id: users, jdbcUrl: "jdbc:postgresql://db:5432/app", userSecretRef: APP_DB,
               table: {name: public.users}, incremental: {column: updated_at}}
targets:
  - table: {table: users, mode: merge, keys: id}
"""
    p = read_pipeline_yaml(text, "x.yaml")
    src = p.sources[0]
    assert (src.table_name, src.user_secret_ref, src.incremental.column) == (
        "public.users",
        "APP_DB",
        "updated_at",
    )
    assert p.targets[0].keys == ("id",)
    assert p.metadata.schedule == "0 */6 * * *"


def test_app_yaml():
    app = read_app_yaml((SALES / "app.yaml").read_text(), "sales/app.yaml")
    assert app.owner == "sales-team"
    assert app.tags == {"domain": "sales", "tier": "1"}
    assert app.connections["crm"].user_secret_ref == "SALES_CRM_DB"
    assert read_app_yaml("", "app.yaml").connections == {}


# --------------------------------------------------------------------- XML errors

BAD_XML = """\
<pipeline id="p" layer="silverish">
  <sources>
    <csv id="a" path="x.csv" colour="red"/>
    <kafka id="k"/>
  </sources>
  <transformations>
    <deduplicate source="a" keys="id" keep="newest"/>
    <mask source="a" strategy="hash"/>
    <mask source="a" columns="x" strategy="hash" keepLast="-1"/>
    <join left="a" right="b" condition="a.x = b.x" type="outer"/>
  </transformations>
  <targets><table table="t" mode="upsert"/></targets>
</pipeline>
"""


@pytest.mark.parametrize(
    ("needle", "fragments"),
    [
        (
            'layer="silverish"',
            ('layer="silverish"', "raw, bronze, silver, gold, service, staging, standardization"),
        ),
        ("colour=", ('unknown attribute "colour" on <csv>', "allowed: id, loadPolicy, path")),
        ("<kafka", ("unknown element <kafka> in <sources>", "allowed: csv, json, parquet")),
        (
            'keep="newest"',
            ('keep="newest" is not allowed on <deduplicate>; allowed: first, last, latest',),
        ),
        ('<mask source="a" strategy', ('<mask> is missing required attribute "columns"',)),
        ('keepLast="-1"', ('keepLast="-1" on <mask> is not valid', "at least 0")),
        ('type="outer"', ('type="outer"', "allowed: inner, left, right, full, semi, anti")),
        ('mode="upsert"', ('mode="upsert" is not allowed on <table>', "append, overwrite, merge")),
    ],
)
def test_xsd_errors_are_all_reported_with_line_value_and_allowed(needle, fragments):
    errors = errors_of(read_pipeline_xml, BAD_XML, "app/silver/bad.xml")
    assert len(errors) == 8
    err = find(errors, "app/silver/bad.xml", line_of(BAD_XML, needle), *fragments)
    assert err.column >= 1


def test_xml_not_well_formed():
    errors = errors_of(read_pipeline_xml, "<pipeline id='p'>\n  <sources>\n</pipeline>", "b.xml")
    assert errors[0].file == "b.xml"
    assert errors[0].line == 3
    assert "not well-formed XML" in errors[0].message


def test_xml_wrong_root_and_repeated_section():
    errors = errors_of(read_pipeline_xml, '<jobPipeline id="j"/>', "j.xml")
    find(errors, "j.xml", 1, "root element must be <pipeline>, found <jobPipeline>")
    text = (
        '<pipeline id="p" layer="raw">\n<sources><parquet id="a" path="x"/></sources>\n'
        '<targets><table table="t"/></targets>\n<targets><table table="u"/></targets>\n'
        "</pipeline>"
    )
    find(
        errors_of(read_pipeline_xml, text, "r.xml"),
        "r.xml",
        4,
        "<targets> may appear only once in <pipeline>",
    )


def test_xml_table_target_needs_table_or_name():
    text = (
        '<pipeline id="p" layer="raw">\n<sources><parquet id="a" path="x"/></sources>\n'
        '<targets>\n  <table mode="append"/>\n</targets>\n</pipeline>'
    )
    find(
        errors_of(read_pipeline_xml, text, "t.xml"),
        "t.xml",
        4,
        '<table> is missing required field "table"',
    )


# --------------------------------------------------------------------- YAML errors

BAD_YAML = """\
pipeline: {id: p, layer: silver}
sources:
  - csv: {id: a, path: x.csv}
  - kafka: {id: k}
transformations:
  - deduplicate:
      source: a
      keys: id
      keep: newest
      colour: red
targets:
  - table: {table: t, mode: upsert}
extras: 1
"""


@pytest.mark.parametrize(
    ("needle", "fragments"),
    [
        ("- kafka", ('unknown element "kafka"', "allowed: csv, json, parquet, database, mongo")),
        (
            "keep: newest",
            ("keep=\"newest\" is not allowed on 'deduplicate'; allowed: first, last, latest",),
        ),
        (
            "colour: red",
            ("unknown field \"colour\" on 'deduplicate'", "allowed: source, output, keys"),
        ),
        ("mode: upsert", ('mode="upsert"', "allowed: append, overwrite, merge")),
    ],
)
def test_yaml_model_errors_point_at_the_offending_key(needle, fragments):
    text = BAD_YAML.replace("extras: 1\n", "")
    errors = errors_of(read_pipeline_yaml, text, "app/silver/bad.yaml")
    assert len(errors) == 4
    find(errors, "app/silver/bad.yaml", line_of(text, needle), *fragments)


def test_yaml_structure_errors():
    errors = errors_of(read_pipeline_yaml, BAD_YAML, "b.yaml")
    find(
        errors,
        "b.yaml",
        line_of(BAD_YAML, "extras"),
        'unknown key "extras"',
        "allowed: pipeline, metadata, sources",
    )
    text = "pipeline: {id: p, layer: raw}\nsources:\n  - {csv: {id: a, path: x}, json: {}}\n"
    find(
        errors_of(read_pipeline_yaml, text, "c.yaml"),
        "c.yaml",
        3,
        "exactly one key",
        "allowed: csv, json",
    )
    text = "pipeline: {id: p, layer: raw}\npipeline: {id: q, layer: raw}\n"
    find(errors_of(read_pipeline_yaml, text, "d.yaml"), "d.yaml", 2, 'duplicate key "pipeline"')


def test_yaml_syntax_error_and_empty_file():
    errors = errors_of(read_pipeline_yaml, "pipeline: {id: p\nsources: [", "e.yaml")
    assert errors[0].file == "e.yaml"
    assert "not valid YAML" in errors[0].message
    find(errors_of(read_pipeline_yaml, "", "f.yaml"), "f.yaml", 1, "empty")


def test_app_yaml_errors():
    text = "owner: x\nconnections:\n  crm: {jdbcUrl: j, password: secret}\n"
    find(
        errors_of(read_app_yaml, text, "a/app.yaml"),
        "a/app.yaml",
        3,
        "unknown field \"password\" on 'connections.crm'",
        "allowed: jdbcUrl, userSecretRef",
    )


def test_spec_errors_sorted_and_formatted():
    errs = SpecErrors(
        [
            SpecError("b.xml", 2, 1, "two"),
            SpecError("a.xml", 9, 3, "one"),
            SpecError("b.xml", 1, 1, "zero"),
        ]
    )
    assert [e.message for e in errs.errors] == ["one", "zero", "two"]
    assert str(errs.errors[0]) == "a.xml:9:3: one"
    assert "a.xml:9:3: one" in str(errs)
    assert str(errs).startswith("3 problems")


def test_yaml_scalars_keep_their_text():
    """YAML 1.1 would turn `on` into True and `1.0` into a float; the reader keeps the text."""
    text = """\
pipeline: {id: p, version: 1.0, layer: standardization}
sources:
  - csv: {id: a, path: x.csv, header: no, watch: false}
  - lookup: {id: b, path: lookups/b.csv}
transformations:
  - lookup: {source: a, reference: b, on: code=code, outputFields: name}
targets:
  - table: {table: t}
"""
    p = read_pipeline_yaml(text, "p.yaml")
    assert (p.version, p.layer) == ("1.0", "silver")
    assert p.sources[0].header is False
    assert p.sources[0].watch is None
    assert p.transformations[0].on == (("code", "code"),)


def test_spec_layer_imports_neither_dagster_nor_pyspark():
    import subprocess
    import sys

    code = (
        "import sys, datahub_assets.spec.loader, datahub_assets.spec.jsonschema; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('dagster', 'pyspark')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
