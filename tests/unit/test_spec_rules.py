"""Project loading: every semantic rule reports file, line, offending value and what is allowed;
all problems of all files come back in one SpecErrors."""

from __future__ import annotations

from pathlib import Path

import pytest
from spec_helpers import find_error, write

from datahub_assets.spec.errors import SpecError, SpecErrors
from datahub_assets.spec.loader import load_project
from datahub_assets.spec.models import TableRef
from datahub_assets.spec.validate import csv_asset_name

FIXTURES = Path(__file__).parent / "fixtures_spec" / "project"


def pipeline(
    pid: str = "p",
    layer: str = "silver",
    sources: str = "",
    steps: str = "",
    targets: str = '<table table="t"/>',
    checks: str = "",
    metadata: str = "",
) -> str:
    sources = sources or '<parquet id="a" path="in/a"/>\n<parquet id="b" path="in/b"/>'
    parts = [f'<pipeline id="{pid}" layer="{layer}">']
    if metadata:
        parts.append(f"<metadata>\n{metadata}\n</metadata>")
    parts.append(f"<sources>\n{sources}\n</sources>")
    if steps:
        parts.append(f"<transformations>\n{steps}\n</transformations>")
    parts.append(f"<targets>\n{targets}\n</targets>")
    if checks:
        parts.append(f"<checks>\n{checks}\n</checks>")
    return "\n".join([*parts, "</pipeline>", ""])


def load_errors(tmp_path: Path, files: dict[str, str]) -> list[SpecError]:
    with pytest.raises(SpecErrors) as info:
        load_project(write(tmp_path / "pipelines", files))
    return info.value.errors


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def expect(
    tmp_path: Path,
    text: str,
    needle: str,
    *fragments: str,
    file: str = "app/silver/p.xml",
    extra: dict | None = None,
) -> SpecError:
    errors = load_errors(tmp_path, {file: text, **(extra or {})})
    line = line_of(text, needle)
    return find_error(errors, file, line, *fragments)


# ------------------------------------------------------------------------ valid project


def test_fixture_project_resolves():
    project = load_project(FIXTURES)
    specs = {s.key: s for s in project.pipelines}
    assert sorted(specs) == [
        "marketing.campaigns",
        "sales.customer_service_export",
        "sales.customer_staging_load",
        "sales.customer_standardization",
    ]
    staging = specs["sales.customer_staging_load"]
    assert staging.file == "sales/staging/customer_staging_load.xml"
    assert staging.line == 3
    assert staging.layer == "raw"
    assert [t.ref for t in staging.targets] == [
        TableRef(app="sales", layer="raw", table="customer_snapshot")
    ]
    assert staging.targets[0].dataset == "customers"  # last produced: the dedup result
    assert staging.owner == "customer-team"
    assert staging.tags == {"domain": "customer", "tier": "1"}
    silver = specs["sales.customer_standardization"]
    assert [str(t.ref) for t in silver.targets] == [
        "sales.silver.customers",
        "sales.silver.customer_360",
    ]
    assert [t.dataset for t in silver.targets] == ["joined", "customer_360"]
    assert silver.upstream == (TableRef(app="sales", layer="raw", table="customer_snapshot"),)
    assert silver.source_refs == {"customers": silver.upstream[0]}
    export = specs["sales.customer_service_export"]
    assert [str(t.ref) for t in export.targets] == [
        "sales.service.customer_360",
        "sales.service.customers_flat",
        "sales.service.customer_service_export_export",
    ]
    assert export.owner == "sales-team"
    assert export.tags == {"domain": "sales", "tier": "2"}
    gold = specs["marketing.campaigns"]
    assert [str(u) for u in gold.upstream] == ["sales.silver.customers"]
    assert gold.owner is None
    assert project.apps["marketing"].connections == {}
    assert project.apps["sales"].connections["crm"].jdbc_url.startswith("jdbc:postgresql")


def test_csv_asset_names():
    assert csv_asset_name("service/customer_360/%Y/%m/%d") == "customer_360"
    assert csv_asset_name("s3://bucket/exports/daily-orders/*.csv") == "daily_orders"
    assert csv_asset_name("out/customers.csv") == "customers"
    assert csv_asset_name("%Y/%m") is None


def test_csv_and_database_target_names_default(tmp_path):
    text = pipeline(pid="exp", layer="service", targets='<csv path="%Y/%m/part-*.csv"/>')
    project = load_project(write(tmp_path / "p", {"app/service/exp.xml": text}))
    assert str(project.pipelines[0].targets[0].ref) == "app.service.exp_export"


# --------------------------------------------------------------------- folder rules


def test_bad_app_folder_and_unknown_folders(tmp_path):
    errors = load_errors(
        tmp_path,
        {
            "Sales-App/silver/p.xml": pipeline(),
            "app/platinum/p.xml": pipeline(),
            "app/p.xml": pipeline(),
        },
    )
    msgs = {e.file: e.message for e in errors}
    assert 'app folder name "Sales-App" is not valid' in msgs["Sales-App"]
    assert "lowercase letters" in msgs["Sales-App"]
    assert 'unknown folder "platinum"' in msgs["app/platinum"]
    assert "raw, bronze, silver, gold, service, staging, standardization" in msgs["app/platinum"]
    assert "layer folder" in msgs["app/p.xml"]
    assert "app/raw/" in msgs["app/p.xml"]


def test_layer_must_match_folder(tmp_path):
    text = pipeline(layer="gold")
    expect(
        tmp_path,
        text,
        "<pipeline",
        'layer="gold" does not match its folder "silver/"',
        "allowed: silver",
    )


def test_alias_folders_are_accepted(tmp_path):
    files = {
        "app/standardization/p.xml": pipeline(layer="silver"),
        "app/staging/q.xml": pipeline(pid="q", layer="raw", targets='<table table="u"/>'),
        "app/lookups/countries.xml": "not a pipeline",
    }  # jobs/: test_spec_jobs.py
    project = load_project(write(tmp_path / "p", files))
    assert {s.layer for s in project.pipelines} == {"silver", "raw"}


def test_duplicate_pipeline_id_reports_both_files(tmp_path):
    errors = load_errors(
        tmp_path,
        {
            "app/silver/a.xml": pipeline(pid="same"),
            "app/gold/b.xml": pipeline(pid="same", layer="gold"),
        },
    )
    (err,) = [e for e in errors if "already used" in e.message]
    assert (err.file, err.line) == ("app/silver/a.xml", 1)
    assert 'id="same"' in err.message
    assert "app/gold/b.xml:1" in err.message


# ------------------------------------------------------------------- pipeline rules


def test_duplicate_source_id(tmp_path):
    text = pipeline(sources='<parquet id="a" path="x"/>\n<csv id="a" path="y"/>')
    expect(
        tmp_path,
        text,
        '<csv id="a"',
        'source id="a" is already used at line',
        "unique within a pipeline",
    )


def test_step_reference_must_be_defined_earlier(tmp_path):
    text = pipeline(
        steps='<join left="a" right="later" condition="a.x = later.x"/>\n'
        '<filter source="b" condition="x > 1" output="later"/>'
    )
    expect(
        tmp_path,
        text,
        "<join",
        'right="later" on <join> names no dataset defined before',
        "allowed: a, b",
    )


def test_merge_and_lookup_references(tmp_path):
    text = pipeline(
        steps='<merge sources="a, nope" output="m"/>\n'
        '<lookup source="m" reference="cc" on="x=y" outputFields="z"/>'
    )
    expect(tmp_path, text, "<merge", 'sources="nope"', "allowed: a, b")
    expect(tmp_path, text, "<lookup", 'reference="cc"', "allowed: a, b, m")


def test_sql_step_needs_a_query(tmp_path):
    text = pipeline(steps='<sql output="s"><![CDATA[   ]]></sql>')
    expect(tmp_path, text, "<sql", '<sql output="s"> has an empty query', "allowed: a Spark SQL")


def test_target_source_must_exist(tmp_path):
    text = pipeline(
        steps='<filter source="a" condition="x > 0" output="f"/>',
        targets='<table table="t" source="missing"/>',
    )
    expect(
        tmp_path, text, '<table table="t"', 'source="missing" on <table> target', "allowed: a, b, f"
    )


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ("gold.t", 'the layer prefix must be this pipeline\'s layer "silver"'),
        ("app.silver.t", 'table="app.silver.t" is not a table name'),
    ],
)
def test_table_target_name_forms(tmp_path, table, fragment):
    text = pipeline(targets=f'<table table="{table}"/>')
    expect(tmp_path, text, f'table="{table}"', fragment, 'allowed: "name" or "silver.name"')


def test_merge_mode_requires_keys(tmp_path):
    text = pipeline(targets='<table table="t" mode="merge"/>')
    expect(tmp_path, text, 'mode="merge"', 'mode="merge" on <table> target requires keys=')


def test_deduplicate_latest_requires_order_by(tmp_path):
    text = pipeline(steps='<deduplicate source="a" keys="id" keep="latest"/>')
    expect(tmp_path, text, "<deduplicate", 'keep="latest" on <deduplicate> requires orderBy=')


def test_aggregate_window_requires_time_column(tmp_path):
    text = pipeline(steps='<aggregate source="a" groupBy="k" metrics="count:n" window="daily"/>')
    expect(tmp_path, text, "<aggregate", 'window="daily" on <aggregate> requires timeColumn=')


@pytest.mark.parametrize("metric", ["median:x", "sum", "sum:a:b:c", "count:"])
def test_metric_syntax(tmp_path, metric):
    text = pipeline(steps=f'<aggregate source="a" groupBy="k" metrics="count:n,{metric}"/>')
    expect(
        tmp_path,
        text,
        "<aggregate",
        f'metrics item "{metric}" on <aggregate> is not valid',
        "count:alias, fn:column or fn:column:alias",
        "count_distinct, sum, avg",
    )


def test_connection_must_exist_in_app_yaml(tmp_path):
    text = pipeline(sources='<database id="a" connection="crmm"><table name="s.t"/></database>')
    app = {"app/app.yaml": "connections:\n  crm: {jdbcUrl: j}\n"}
    expect(
        tmp_path,
        text,
        "<database",
        'connection="crmm" on <database> is not defined',
        "allowed: crm",
        extra=app,
    )


def test_database_source_needs_url_and_query(tmp_path):
    text = pipeline(sources='<database id="a"/>')
    expect(tmp_path, text, "<database", "needs jdbcUrl= or connection=")
    expect(tmp_path, text, "<database", "exactly one of <sql> or <table name=...>")


def test_check_target_rules(tmp_path):
    text = pipeline(
        targets='<table table="t"/>\n<table table="u"/>',
        checks='<unique columns="id"/>\n<notNull target="v" columns="id"/>',
    )
    expect(tmp_path, text, "<unique", "<unique> needs target=", "2 table targets", "allowed: t, u")
    expect(
        tmp_path, text, "<notNull", 'target="v" on <notNull> names no table target', "allowed: t, u"
    )


@pytest.mark.parametrize(
    ("cron", "fragment"),
    [
        ("0 2 * *", "found 4 fields"),
        ("0 2 * * * *", "found 6 fields"),
        ("0 2 * * mon!", "day-of-week field 'mon!' is not valid"),
        ("99 99 99 99 99", "minute field '99' is out of range"),
        ("0 0 30 2 *", "never fires"),
        ("@fortnightly", "unknown macro '@fortnightly'"),
    ],
)
def test_cron_is_checked(tmp_path, cron, fragment):
    text = pipeline(metadata=f"<schedule>{cron}</schedule>")
    expect(
        tmp_path,
        text,
        "<metadata",
        f'schedule="{cron}" is not a cron expression',
        fragment,
        "5 fields",
        '"0 2 * * *"',
    )


def test_cron_macro_and_durations_accepted(tmp_path):
    text = pipeline(metadata="<sla>P1DT2H</sla>\n<schedule>@daily</schedule>")
    assert load_project(write(tmp_path / "p", {"app/silver/p.xml": text})).pipelines


def test_durations_are_checked(tmp_path):
    text = pipeline(metadata="<sla>2 hours</sla>", checks='<freshness column="ts" maxAge="6h"/>')
    expect(tmp_path, text, "<metadata", 'sla="2 hours" in <metadata> is not an ISO-8601', "PT2H")
    expect(tmp_path, text, "<freshness", 'maxAge="6h" on <freshness> is not an ISO-8601', "PT6H")


def test_watch_only_in_raw(tmp_path):
    text = pipeline(sources='<csv id="a" path="x/*.csv">\n<watch/>\n</csv>')
    expect(
        tmp_path,
        text,
        "<watch",
        '<watch> on source "a" is only allowed in raw-layer',
        "layer is silver",
    )


def test_watched_source_cannot_also_be_incremental(tmp_path):
    text = pipeline(
        layer="raw",
        sources='<csv id="a" path="x/*.csv">\n<watch/>\n<incremental column="ts"/>\n</csv>',
    )
    expect(
        tmp_path,
        text,
        "<incremental",
        'source "a" has both <watch> and <incremental>',
        "remove <incremental>",
        file="app/raw/p.xml",
    )


def test_watched_source_needs_a_table_target(tmp_path):
    text = pipeline(
        layer="raw",
        sources='<csv id="a" path="x/*.csv">\n<watch/>\n</csv>',
        targets='<csv path="out/a"/>',
    )
    expect(tmp_path, text, "<watch", 'source "a" needs a <table> target', file="app/raw/p.xml")


def test_target_asset_names_must_be_distinct(tmp_path):
    text = pipeline(layer="service", targets='<csv path="out/x/%Y"/>\n<csv path="more/x/%m"/>')
    expect(
        tmp_path,
        text,
        "more/x",
        'target asset "x" is already defined at line',
        "distinct name",
        file="app/service/p.xml",
    )


# -------------------------------------------------------------------- project rules


def test_table_written_twice_across_project(tmp_path):
    errors = load_errors(
        tmp_path, {"app/silver/a.xml": pipeline(pid="a"), "app/silver/b.xml": pipeline(pid="b")}
    )
    (err,) = [e for e in errors if "already written" in e.message]
    assert err.file == "app/silver/b.xml"
    assert err.line == line_of(pipeline(), "<table")
    assert "app.silver.t" in err.message
    assert "app/silver/a.xml:1" in err.message


def test_table_ref_must_resolve_with_near_matches(tmp_path):
    producer = pipeline(pid="prod", targets='<table table="customers"/>')
    text = pipeline(
        pid="cons",
        layer="gold",
        sources='<table id="c" ref="app.silver.custmers"/>\n<table id="d" ref="customers"/>',
    )
    files = {"app/silver/prod.xml": producer, "app/gold/cons.xml": text}
    errors = load_errors(tmp_path, files)
    line = line_of(text, 'ref="app.silver.custmers"')
    (err,) = [e for e in errors if e.line == line and e.file == "app/gold/cons.xml"]
    assert 'ref="app.silver.custmers" on <table> source names no table target' in err.message
    assert "near matches: app.silver.customers" in err.message
    (bad,) = [e for e in errors if e.line == line_of(text, 'ref="customers"')]
    assert "<app>.<layer>.<table> or <layer>.<table>" in bad.message


def test_cycle_is_named(tmp_path):
    a = pipeline(pid="a", sources='<table id="x" ref="gold.tb"/>', targets='<table table="ta"/>')
    b = pipeline(
        pid="b",
        layer="gold",
        sources='<table id="y" ref="app.silver.ta"/>',
        targets='<table table="tb"/>',
    )
    errors = load_errors(tmp_path, {"app/silver/a.xml": a, "app/gold/b.xml": b})
    (err,) = [e for e in errors if "cycle" in e.message]
    assert "app.a -> app.b -> app.a" in err.message or "app.b -> app.a -> app.b" in err.message
    assert "app.gold.tb" in err.message
    assert "app.silver.ta" in err.message
    assert err.line == 1


def test_all_bad_files_reported_together(tmp_path):
    files = {
        "app/silver/one.xml": pipeline(pid="one", targets='<table table="t" mode="upsert"/>'),
        "app/silver/two.yaml": "pipeline: {id: two, layer: silver}\nsources: []\ntargets:\n"
        "  - table: {table: u, keys: [a], mode: merge, colour: red}\n",
        "app/gold/three.xml": pipeline(
            pid="three", layer="gold", steps='<deduplicate source="a" keys="k" keep="latest"/>'
        ),
        "other/raw/four.xml": "<pipeline",
    }
    errors = load_errors(tmp_path, files)
    assert {e.file for e in errors} == {
        "app/silver/one.xml",
        "app/silver/two.yaml",
        "app/gold/three.xml",
        "other/raw/four.xml",
    }
    assert errors == sorted(errors)
