"""The shipped schemas stay in step with the model: the XSD declares exactly the model's
fields, and the committed JSON Schema is the generated one and accepts the YAML examples."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from datahub_assets.spec.jsonschema import SCHEMA_PATH, render, write_json_schema, yaml_json_schema
from datahub_assets.spec.models import Incremental, Metadata, Watch
from datahub_assets.spec.xml_reader import xsd_declarations
from datahub_assets.spec.yaml_reader import KINDS, yaml_keys

FIXTURES = Path(__file__).parent / "fixtures_spec"
YAML_EXAMPLES = sorted([*FIXTURES.rglob("*.yaml"), *FIXTURES.rglob("*.yml")])
PIPELINE_EXAMPLES = [p for p in YAML_EXAMPLES if p.name not in ("app.yaml", "app.yml")]
# fields of the model that are not XML attributes: inherited `source` of multi-input steps,
# the CDATA body of <sql>; `name` is the XML alias of a table target's `table`.
NOT_IN_XSD = {
    ("transformations", "join"): {"source"},
    ("transformations", "merge"): {"source"},
    ("transformations", "sql"): {"source", "query"},
}
ONLY_IN_XSD = {("targets", "table"): {"name"}}


@pytest.mark.parametrize(("section", "kind"), [(s, k) for s, kinds in KINDS.items() for k in kinds])
def test_xsd_declares_exactly_the_model_fields(section, kind):
    attrs, children = xsd_declarations()[(section, kind)]
    declared = set(attrs) | {"tableName" if c == "table" else c for c in children}
    model = KINDS[section][kind]
    fields = {f.alias or n for n, f in model.model_fields.items()} - {"loc", "kind"}
    assert declared - ONLY_IN_XSD.get((section, kind), set()) == fields - NOT_IN_XSD.get(
        (section, kind), set()
    )


def test_xsd_nested_elements_match_models():
    decls = xsd_declarations()
    assert set(decls[("csv", "watch")][0]) == set(yaml_keys(Watch))
    assert set(decls[("csv", "incremental")][0]) == set(yaml_keys(Incremental))
    assert set(decls[("pipeline", "metadata")][1]) == set(yaml_keys(Metadata))
    assert set(decls[("targets", "hive")][0]) == set(decls[("targets", "iceberg")][0])


def test_committed_json_schema_is_generated(tmp_path):
    assert SCHEMA_PATH.read_text() == render(), (
        "regenerate with: python -m datahub_assets.spec.jsonschema"
    )
    out = write_json_schema(tmp_path / "schema.json")
    assert json.loads(out.read_text()) == yaml_json_schema()
    jsonschema.Draft202012Validator.check_schema(yaml_json_schema())


@pytest.mark.parametrize("path", PIPELINE_EXAMPLES, ids=lambda p: p.name)
def test_json_schema_accepts_yaml_examples(path):
    jsonschema.validate(yaml.safe_load(path.read_text()), yaml_json_schema())


def test_json_schema_accepts_contract_example_and_rejects_mistakes():
    doc = yaml.safe_load("""\
pipeline: {id: extract_users, version: 1.0.0, layer: staging}
metadata: {owner: platform, schedule: "0 */6 * * *"}
sources:
  - database: {id: users, jdbcUrl: "jdbc:postgresql://db:5432/app", userSecretRef: APP_DB,
               table: {name: public.users}, incremental: {column: updated_at}}
  - csv: {id: files, path: "landing/*.csv", watch: true}
targets:
  - hive: {name: staging.users, mode: merge, keys: [id]}
""")
    schema = yaml_json_schema()
    jsonschema.validate(doc, schema)
    doc["targets"][0]["hive"]["mode"] = "upsert"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)
    doc["targets"][0]["hive"]["mode"] = "merge"
    doc["sources"][1]["csv"]["colour"] = "red"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)
