"""`datahub validate` is the truth (issue #11): every rule below used to fail only in a run
(execute/runner.py, quality.py, bad_records.py, mongo/source.py, the transformations, Dagster
at load); each definition here is now refused by the loader at its file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from spec_helpers import find_error
from test_spec_rules import line_of, load_errors, pipeline, write

from datahub_assets.spec.check_targets import referenced
from datahub_assets.spec.columns import column_descriptions
from datahub_assets.spec.loader import load_project
from datahub_assets.spec.mini import spark_type_problem

FILE = "app/silver/p.xml"
AVRO = {
    "type": "record",
    "name": "Orders",
    "fields": [
        {"name": "id", "type": "long", "doc": "Order number."},
        {
            "name": "amount",
            "type": [
                "null",
                {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
            ],
        },  # fmt: skip
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    ],
}


def expect(tmp_path: Path, text: str, needle: str, *fragments: str, file: str = FILE, **extra):
    errors = load_errors(tmp_path, {file: text, **extra.get("files", {})})
    return find_error(errors, file, line_of(text, needle), *fragments)


# --------------------------------------------------------------------- incremental


def test_incremental_source_with_overwrite_target_without_partitions(tmp_path):
    text = pipeline(
        sources='<parquet id="a" path="in/a">\n<incremental column="ts"/>\n</parquet>',
        targets='<table table="t" mode="overwrite"/>',
    )
    expect(tmp_path, text, '<table table="t"', 'mode="overwrite"', 'incremental source "a"')
    ok = pipeline(
        sources='<parquet id="a" path="in/a">\n<incremental column="ts"/>\n</parquet>',
        targets='<table table="t" mode="overwrite" partitionBy="day"/>',
    )
    load_project(write(tmp_path / "ok", {FILE: ok}))


def test_incremental_source_needs_a_table_target(tmp_path):
    text = pipeline(
        layer="service",
        sources='<parquet id="a" path="in/a">\n<incremental column="ts"/>\n</parquet>',
        targets='<csv path="out/a.csv"/>',
    )
    expect(
        tmp_path,
        text,
        "<incremental",
        'source "a" is incremental but the pipeline has no <table> target',
        file="app/service/p.xml",
    )


# ---------------------------------------------------------------------- quarantine


def test_quarantine_needs_a_table_target(tmp_path):
    text = pipeline(
        layer="service",
        sources='<parquet id="a" path="in/a" onInvalid="quarantine" schemaRef="schemas/o.avsc"/>',
        targets='<csv path="out/a.csv"/>',
    )
    expect(
        tmp_path,
        text,
        '<parquet id="a"',
        'onInvalid="quarantine" on <parquet> source "a"',
        "<table>__quarantine",
        file="app/service/p.xml",
        files={"app/schemas/o.avsc": json.dumps(AVRO)},
    )


def test_raw_csv_default_is_fail_without_a_table_target(tmp_path):
    """Malformed csv records in the raw layer are quarantined by default (bad_records.py),
    but a raw pipeline with no table target has nowhere to put them: its default is fail, so
    the definition validates; an explicit quarantine there is refused."""
    from datahub_assets.execute.bad_records import policy_of

    text = pipeline(
        layer="raw", sources='<csv id="a" path="in/*.csv"/>', targets='<csv path="out/a.csv"/>'
    )
    project = load_project(write(tmp_path / "ok", {"app/raw/p.xml": text}))
    (spec,) = project.pipelines
    (source,) = spec.pipeline.sources
    assert policy_of(source, "raw", has_table=False) == "fail"
    assert policy_of(source, "raw", has_table=True) == "quarantine"
    explicit = text.replace(
        '<csv id="a" path="in/*.csv"/>', '<csv id="a" path="in/*.csv" onInvalid="quarantine"/>'
    )
    expect(
        tmp_path,
        explicit,
        '<csv id="a"',
        'onInvalid="quarantine" on <csv> source "a"',
        'set onInvalid="fail" or "drop"',
        file="app/raw/p.xml",
    )


def test_mongo_quarantine_needs_a_table_target(tmp_path):
    text = pipeline(
        layer="service",
        sources='<mongo id="m" database="d" collection="c" uriSecretRef="U" '
        'onInvalid="quarantine" schemaRef="schemas/m.json"/>',
        targets='<csv path="out/m.csv"/>',
    )
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    expect(
        tmp_path,
        text,
        "<mongo",
        'onInvalid="quarantine" on <mongo> source "m"',
        file="app/service/p.xml",
        files={"app/schemas/m.json": json.dumps(schema)},
    )


# ---------------------------------------------------------------------------- cron


def test_pipeline_cron_out_of_range(tmp_path):
    text = pipeline(metadata="<schedule>99 99 99 99 99</schedule>")
    expect(
        tmp_path,
        text,
        "<metadata",
        'schedule="99 99 99 99 99" is not a cron expression',
        "minute field '99' is out of range",
    )


def test_job_pipeline_cron_out_of_range(tmp_path):
    job = (
        '<jobPipeline id="daily" version="1.0.0">\n'
        "  <schedule>0 25 * * *</schedule>\n"
        '  <pipelines><pipelineRef id="p"/></pipelines>\n'
        "</jobPipeline>\n"
    )
    errors = load_errors(tmp_path, {FILE: pipeline(), "app/jobs/daily.xml": job})
    find_error(errors, "app/jobs/daily.xml", 1, '"0 25 * * *"', "hour field '25' is out of range")


def test_app_maintenance_cron(tmp_path):
    app = "owner: me\nmaintenance:\n  schedule: '0 3 31 2 *'\n"
    errors = load_errors(tmp_path, {FILE: pipeline(), "app/app.yaml": app})
    find_error(errors, "app/app.yaml", 2, "maintenance.schedule", "never fires")


# ----------------------------------------------------------------------- schemaRef


def test_schema_ref_file_must_exist(tmp_path):
    text = pipeline(sources='<csv id="a" path="in/*.csv" schemaRef="schemas/nope.avsc"/>')
    expect(tmp_path, text, '<csv id="a"', 'schemaRef="schemas/nope.avsc"', "schema file not found")


def test_schema_ref_file_must_parse(tmp_path):
    bad = {"type": "record", "name": "x", "fields": [{"name": "a", "type": "uuid-ish"}]}
    text = pipeline(targets='<table table="t" schemaRef="schemas/bad.avsc"/>')
    expect(
        tmp_path,
        text,
        '<table table="t"',
        'schemaRef="schemas/bad.avsc" on <table>',
        'unsupported Avro type "uuid-ish"',
        files={"app/schemas/bad.avsc": json.dumps(bad)},
    )
    text = pipeline(checks='<schema schemaRef="schemas/bad.json"/>')
    expect(
        tmp_path / "2",
        text,
        "<schema ",
        'schemaRef="schemas/bad.json" on <schema>',
        "not valid JSON",
        files={"app/schemas/bad.json": "{"},
    )


def test_parsed_schema_is_kept_in_the_spec(tmp_path):
    text = pipeline(sources='<csv id="a" path="in/*.csv" schemaRef="schemas/o.avsc"/>')
    project = load_project(write(tmp_path, {FILE: text, "app/schemas/o.avsc": json.dumps(AVRO)}))
    parsed = project.pipelines[0].schemas["schemas/o.avsc"]
    assert [(c.name, c.type.name, c.nullable) for c in parsed.columns] == [
        ("id", "long", False),
        ("amount", "decimal", True),
        ("tags", "array", False),
    ]
    assert (parsed.columns[1].type.precision, parsed.columns[1].type.scale) == (12, 2)
    assert parsed.columns[2].type.element is not None
    assert parsed.columns[2].type.element.name == "string"


# ------------------------------------------------------------------ mini-languages


@pytest.mark.parametrize(
    ("step", "fragments"),
    [
        (
            '<cast source="a" types="x:decimal(12,2),y:strng"/>',
            ("types=", "<cast>", "type 'strng' of column 'y'", "allowed: boolean"),
        ),
        ('<cast source="a" types="x:decimal(40,2)"/>', ("precision <= 38",)),
        ('<cast source="a" types="x"/>', ("types item 'x' is not of the form 'x:y'",)),
        ('<cast source="a" types="x:int,x:long"/>', ("types names 'x' twice",)),
        ('<rename source="a" mapping="x:z,y:z"/>', ("mapping (new names) names 'z' twice",)),
        ('<rename source="a" mapping=" , "/>', ("mapping names no `old:new` item",)),
        (
            '<lookup source="a" reference="b" on="code" outputFields="name"/>',
            ("on item 'code' is not of the form 'x=y'",),
        ),
        (
            '<lookup source="a" reference="b" on="c=code" outputFields="name" defaults="n:x"/>',
            ("defaults= on <lookup> names n", "allowed: name"),
        ),
        ('<join left="a" right="a" condition="true"/>', ("two different datasets",)),
        ('<select source="a" columns=" "/>', ("columns= on <select> is empty",)),
        ('<merge sources=" " output="m"/>', ("sources= on <merge> is empty",)),
    ],
)
def test_mini_languages_are_checked_at_load(tmp_path, step, fragments):
    text = pipeline(steps=step)
    expect(tmp_path, text, step.split()[0], *fragments)


def test_mini_languages_become_typed_fields(tmp_path):
    steps = (
        '<cast source="a" types="amount:decimal(12,2), m:map&lt;string,array&lt;int&gt;&gt;"/>\n'
        '<rename source="a" mapping="id:order_id, x:y"/>\n'
        '<lookup source="a" reference="b" on="cc=code, k=key" outputFields="name"'
        ' defaults="name:Unknown, a"/>'
    )
    errors = load_errors(tmp_path, {FILE: pipeline(steps=steps)})
    # `a` has no value: the only problem, reported on the lookup's line
    assert [e.line for e in errors] == [line_of(pipeline(steps=steps), "<lookup")]
    steps = steps.replace(', a"', '"')
    spec = load_project(write(tmp_path / "ok", {FILE: pipeline(steps=steps)})).pipelines[0]
    cast, rename, lookup = spec.pipeline.transformations
    assert cast.types == (("amount", "decimal(12,2)"), ("m", "map<string,array<int>>"))
    assert rename.mapping == (("id", "order_id"), ("x", "y"))
    assert lookup.on == (("cc", "code"), ("k", "key"))
    assert lookup.defaults == (("name", "Unknown"),)


def test_yaml_mini_languages_as_mappings(tmp_path):
    text = (
        "pipeline: {id: p, layer: silver}\n"
        "sources:\n  - parquet: {id: a, path: in/a}\n"
        "transformations:\n"
        "  - cast: {source: a, types: {amount: 'decimal(12,2)', ts: timestamp}}\n"
        "  - rename: {source: a, mapping: [id:order_id]}\n"
        "targets:\n  - table: {table: t}\n"
    )
    spec = load_project(write(tmp_path, {"app/silver/p.yaml": text})).pipelines[0]
    cast, rename = spec.pipeline.transformations
    assert cast.types == (("amount", "decimal(12,2)"), ("ts", "timestamp"))
    assert rename.mapping == (("id", "order_id"),)
    bad = text.replace("ts: timestamp", "ts: timestmp")
    errors = load_errors(tmp_path / "bad", {"app/silver/p.yaml": bad})
    find_error(errors, "app/silver/p.yaml", 5, "type 'timestmp' of column 'ts'")


@pytest.mark.parametrize(
    "text",
    [
        "int",
        "BIGINT",
        "decimal",
        "decimal(10)",
        "Decimal(12, 2)",
        "varchar(20)",
        "timestamp_ntz",
        "array<struct<a:int,b string not null comment 'x'>>",
        "map<string, decimal(3,1)>",
        "interval day to second",
    ],
)
def test_spark_type_names_accepted(text):
    assert spark_type_problem(text) is None


@pytest.mark.parametrize(
    "text", ["", "integr", "array<int", "map<string>", "decimal(2,3)", "int int", "varchar"]
)
def test_spark_type_names_refused(text):
    assert spark_type_problem(text) is not None


# -------------------------------------------------------------------------- format


def test_table_format_other_than_iceberg_is_refused(tmp_path):
    text = pipeline(targets='<table table="t" format="parquet"/>')
    expect(tmp_path, text, '<table table="t"', 'format="parquet"', "iceberg")
    ok = pipeline(targets='<table table="t" format="iceberg"/>')
    load_project(write(tmp_path / "ok", {FILE: ok}))


def test_yaml_table_format_other_than_iceberg_is_refused(tmp_path):
    text = (
        "pipeline: {id: p, layer: silver}\n"
        "sources:\n  - parquet: {id: a, path: in/a}\n"
        "targets:\n  - table: {table: t, format: delta}\n"
    )
    errors = load_errors(tmp_path, {"app/silver/p.yaml": text})
    find_error(errors, "app/silver/p.yaml", 5, 'format="delta"', "allowed: iceberg")


# ------------------------------------------------------------------------- columns


def test_column_descriptions_from_schema_ref_and_columns_block(tmp_path):
    text = pipeline(
        sources='<csv id="a" path="in/*.csv" schemaRef="schemas/o.avsc"/>',
        targets=(
            '<table table="t">\n<columns>\n'
            '  <column name="amount" description="Gross amount in EUR."/>\n'
            '  <column name="id" description="Order id (overrides the schema doc)."/>\n'
            "</columns>\n</table>"
        ),
    )
    project = load_project(write(tmp_path, {FILE: text, "app/schemas/o.avsc": json.dumps(AVRO)}))
    spec = project.pipelines[0]
    assert column_descriptions(spec, spec.targets[0]) == {
        "id": "Order id (overrides the schema doc).",
        "amount": "Gross amount in EUR.",
    }


def test_column_descriptions_yaml_and_duplicates(tmp_path):
    text = (
        "pipeline: {id: p, layer: silver}\n"
        "sources:\n  - parquet: {id: a, path: in/a}\n"
        "targets:\n"
        "  - table:\n"
        "      table: t\n"
        "      columns: {id: The key., name: Display name.}\n"
    )
    spec = load_project(write(tmp_path, {"app/silver/p.yaml": text})).pipelines[0]
    assert column_descriptions(spec, spec.targets[0]) == {"id": "The key.", "name": "Display name."}
    dup = pipeline(
        targets=(
            '<table table="t">\n<columns>\n'
            '  <column name="id" description="a"/>\n'
            '  <column name="id" description="b"/>\n'
            "</columns>\n</table>"
        )
    )
    expect(tmp_path / "dup", dup, 'description="b"', '<column name="id"> is described twice')


# --------------------------------------------------------------------- referential


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("raw.t", 'ref="raw.t" on <referential> is malformed'),
        ("lake.t.id", 'layer "lake" is not one of raw, bronze'),
        ("silver.nope.id", "names no table target in the project (app.silver.nope)"),
    ],
)
def test_referential_ref_is_checked(tmp_path, ref, fragment):
    """`orchestration/checks.py` unpacked the ref while building the Dagster definitions."""
    text = pipeline(checks=f'<referential column="id" ref="{ref}"/>')
    expect(tmp_path, text, "<referential", fragment)


def test_referential_ref_with_a_layer_alias(tmp_path):
    text = pipeline(checks='<referential column="id" ref="standardization.t.id"/>')
    spec = load_project(write(tmp_path, {FILE: text})).pipelines[0]
    ref, column = referenced(spec, spec.pipeline.checks[0])
    assert (str(ref), column) == ("app.silver.t", "id")


def test_lookup_file_must_exist(tmp_path):
    """readers/lookup.py failed with "no file matches" in the run."""
    text = pipeline(sources='<lookup id="c" path="countries.csv"/>')
    expect(tmp_path, text, '<lookup id="c"', 'path="countries.csv" on <lookup> source "c"')
    files = {FILE: text, "app/lookups/countries.csv": "code,name\nDE,Germany\n"}
    load_project(write(tmp_path / "ok", files))  # a bare name is found in lookups/


def test_yaml_column_list_duplicate_points_at_the_item(tmp_path):
    text = (
        "pipeline: {id: p, layer: silver}\n"
        "sources:\n  - parquet: {id: a, path: in/a}\n"
        "targets:\n"
        "  - table:\n"
        "      table: t\n"
        "      columns:\n"
        "        - {name: id, description: The key.}\n"
        "        - {name: id, description: Again.}\n"
    )
    errors = load_errors(tmp_path, {"app/silver/p.yaml": text})
    find_error(errors, "app/silver/p.yaml", 9, '<column name="id"> is described twice')
    typo = text + "        - {name: x, descr: typo}\n"
    errors = load_errors(tmp_path / "typo", {"app/silver/p.yaml": typo})
    find_error(errors, "app/silver/p.yaml", 10, 'unknown field "descr"')


@pytest.mark.parametrize("name", ["a.b.c", "a..b", ".t"])
def test_database_table_names(tmp_path, name):
    """execute/writers/database.py refused these when the run located the table."""
    target = f'<database jdbcUrl="jdbc:postgresql://h/db">\n<table name="{name}"/>\n</database>'
    text = pipeline(layer="service", targets=target)
    expect(
        tmp_path,
        text,
        "<database jdbcUrl",
        f'<table name="{name}"> is not a table name',
        file="app/service/p.xml",
    )


def test_run_time_uses_the_schema_parsed_at_load(tmp_path):
    """`execute.schemas.schema_for` converts the spec's parsed copy: the same StructType a
    read of the file gives, without the file (deleted here after the load)."""
    from pyspark.sql import types as T

    from datahub_assets.execute.schemas import load_schema, schema_for

    text = pipeline(sources='<csv id="a" path="in/*.csv" schemaRef="schemas/o.avsc"/>')
    root = write(tmp_path, {FILE: text, "app/schemas/o.avsc": json.dumps(AVRO)})
    spec = load_project(root).pipelines[0]
    path = root / "app" / "schemas" / "o.avsc"
    from_file = load_schema(path)
    path.unlink()
    assert schema_for(spec, "schemas/o.avsc", path) == from_file
    assert from_file == T.StructType(
        [
            T.StructField("id", T.LongType(), False),
            T.StructField("amount", T.DecimalType(12, 2), True),
            T.StructField("tags", T.ArrayType(T.StringType(), False), False),
        ]
    )
