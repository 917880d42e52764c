"""Data-quality attributes of the spec: onInvalid (sources and table targets), onSchemaChange
(table targets), and the rules around them (schemaRef required, check names unique)."""

from __future__ import annotations

import jsonschema
import pytest
from pydantic import ValidationError
from test_spec_rules import expect, line_of, pipeline

from datahub_assets.spec.errors import SpecErrors
from datahub_assets.spec.jsonschema import yaml_json_schema
from datahub_assets.spec.models import CsvSource, ParquetSource, TableTarget
from datahub_assets.spec.xml_reader import read_pipeline_xml
from datahub_assets.spec.yaml_reader import read_pipeline_yaml

SOURCES = """<csv id="a" path="in/a.csv" schemaRef="schemas/a.avsc" onInvalid="quarantine"/>
<json id="b" path="in/b.json" schemaRef="schemas/b.json" onInvalid="fail"/>
<parquet id="c" path="in/c" onInvalid="drop"><schemaRef>schemas/c.avsc</schemaRef></parquet>
<parquet id="d" path="in/d"/>"""


def test_xml_attributes_reach_the_model():
    text = pipeline(
        layer="raw",
        sources=SOURCES,
        targets=(
            '<table table="t" source="a" onInvalid="drop" onSchemaChange="freeze"/>\n'
            '<iceberg table="u" source="b"/>'
        ),
    )
    p = read_pipeline_xml(text, "app/raw/p.xml")
    assert [s.on_invalid for s in p.sources] == ["quarantine", "fail", "drop", None]
    assert p.sources[2].schema_ref == "schemas/c.avsc"
    t, u = p.targets
    assert (t.on_invalid, t.on_schema_change) == ("drop", "freeze")
    assert (u.on_invalid, u.on_schema_change) == (None, "evolve")


def test_yaml_keys_and_json_schema():
    text = """pipeline: {id: p, layer: raw}
sources:
  - parquet: {id: a, path: in/a, schemaRef: schemas/a.avsc, onInvalid: quarantine}
targets:
  - table: {table: t, onInvalid: fail, onSchemaChange: fail}
"""
    p = read_pipeline_yaml(text, "app/raw/p.yaml")
    assert isinstance(p.sources[0], ParquetSource)
    assert p.sources[0].on_invalid == "quarantine"
    assert isinstance(p.targets[0], TableTarget)
    assert (p.targets[0].on_invalid, p.targets[0].on_schema_change) == ("fail", "fail")
    import yaml

    schema = yaml_json_schema()
    jsonschema.validate(yaml.safe_load(text), schema)
    bad = yaml.safe_load(text.replace("onSchemaChange: fail", "onSchemaChange: widen"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_model_aliases_and_defaults():
    src = CsvSource.model_validate({"id": "a", "path": "x", "onInvalid": "drop"})
    assert src.on_invalid == "drop"
    assert CsvSource(id="a", path="x").on_invalid is None
    assert TableTarget(table="t").on_schema_change == "evolve"
    with pytest.raises(ValidationError):
        TableTarget.model_validate({"table": "t", "onSchemaChange": "widen"})


@pytest.mark.parametrize(("attr", "value"), [("onInvalid", "skip"), ("onSchemaChange", "merge")])
def test_xsd_rejects_unknown_policy(attr, value):
    text = pipeline(targets=f'<table table="t" {attr}="{value}"/>')
    with pytest.raises(SpecErrors) as info:
        read_pipeline_xml(text, "app/silver/p.xml")
    err = info.value.errors[0]
    assert err.line == 7
    assert attr in err.message
    assert value in err.message


def test_xsd_rejects_on_schema_change_on_a_source():
    text = pipeline(sources='<csv id="a" path="x" onSchemaChange="freeze"/>')
    with pytest.raises(SpecErrors) as info:
        read_pipeline_xml(text, "app/silver/p.xml")
    assert "onSchemaChange" in info.value.errors[0].message


def test_on_invalid_on_a_parquet_source_requires_schema_ref(tmp_path):
    text = pipeline(layer="raw", sources='<parquet id="a" path="in/a" onInvalid="quarantine"/>')
    err = expect(
        tmp_path,
        text,
        'onInvalid="quarantine"',
        '<parquet> source "a"',
        "requires schemaRef=",
        file="app/raw/p.xml",
    )
    assert err.file == "app/raw/p.xml"


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_on_invalid_on_a_text_source_needs_no_schema_ref(tmp_path, kind):
    """csv/json records are checked against the header-derived shape (malformed records)."""
    from test_spec_rules import write

    from datahub_assets.spec.loader import load_project

    text = pipeline(layer="raw", sources=f'<{kind} id="a" path="in/a" onInvalid="drop"/>')
    project = load_project(write(tmp_path / "pipelines", {"app/raw/p.xml": text}))
    assert project.pipelines[0].pipeline.sources[0].on_invalid == "drop"


def test_on_invalid_on_a_table_target_needs_no_schema_ref(tmp_path):
    from test_spec_rules import write

    from datahub_assets.spec.loader import load_project

    text = pipeline(layer="raw", targets='<table table="t" onInvalid="fail"/>')
    project = load_project(write(tmp_path / "pipelines", {"app/raw/p.xml": text}))
    assert project.pipelines[0].targets[0].target.on_invalid == "fail"


def test_duplicate_check_names_on_one_target(tmp_path):
    checks = (
        '<notNull columns="id"/>\n<unique columns="id"/>\n'
        '<notNull target="t" columns="id" severity="warn"/>'
    )
    text = pipeline(checks=checks)
    first, second = line_of(text, "<notNull columns"), line_of(text, 'severity="warn"')
    expect(
        tmp_path,
        text,
        'severity="warn"',
        'check name "notNull_id"',
        'target "t"',
        f"line {first}",
        f"line {second}",
        "name=",
    )


def test_same_check_name_on_two_targets_is_fine(tmp_path):
    from test_spec_rules import write

    from datahub_assets.spec.loader import load_project

    checks = (
        '<notNull target="t" columns="id"/>\n<notNull target="u" columns="id"/>\n'
        '<notNull target="u" name="ids" columns="id"/>'
        '<range target="u" name="ids2" column="id" min="0"/>'
    )
    text = pipeline(
        targets='<table table="t" source="a"/>\n<table table="u" source="b"/>', checks=checks
    )
    project = load_project(write(tmp_path / "pipelines", {"app/silver/p.xml": text}))
    assert len(project.pipelines[0].pipeline.checks) == 4


def test_explicit_names_collide_too(tmp_path):
    checks = (
        '<range column="a" name="amount_ok" min="0"/>\n<regex column="a" name="amount_ok" '
        'pattern="x"/>'
    )
    text = pipeline(checks=checks)
    expect(tmp_path, text, "<regex", 'check name "amount_ok"', "<range> check at line")
