"""`engines.choice.choose` (issue 12): the engine of one run and why. Explicit engines and
their origins, the run tag override, `auto` by the real size of a pipeline's input files
(globs, braces, folders, a file-drop batch) and of its Iceberg table sources (the current
snapshot's total-files-size in a real SQLite pyiceberg catalog), and the blockers that keep
`auto` on Spark and refuse a forced DuckDB run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pyarrow as pa
import pytest
from spec_helpers import write

from datahub_assets.engines.choice import (
    RUN_TAG,
    EngineRefused,
    choose,
    expand_braces,
    human_size,
    input_bytes,
)
from datahub_assets.spec.loader import load_project
from datahub_assets.spec.models import PipelineSpec
from datahub_resources.iceberg import open_catalog
from datahub_resources.settings import Settings

MB = 1024 * 1024


def pipeline_xml(pid: str, layer: str, sources: str, engine: str | None = None, table="t") -> str:
    attr = f' engine="{engine}"' if engine else ""
    return (
        f'<pipeline id="{pid}" layer="{layer}"{attr}>\n'
        f"<sources>\n{sources}\n</sources>\n"
        f'<targets><table table="{table}"/></targets>\n</pipeline>\n'
    )


def data_file(path: Path, size: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return size


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "home"
    return {
        "DATAHUB_HOME": str(home),
        "DATAHUB_DATA_DIR": str(tmp_path / "data"),
        "DATAHUB_PIPELINES_DIR": str(tmp_path / "pipelines"),
        "DATAHUB_CATALOG_URI": f"sqlite:///{home}/catalog.db",
        "DATAHUB_WAREHOUSE": f"file://{home}/warehouse",
    }


def settings_of(env: dict, **extra: str) -> Settings:
    return Settings.from_env({**env, **extra})


def load(env: dict, files: dict[str, str]) -> dict[str, PipelineSpec]:
    root = write(Path(env["DATAHUB_PIPELINES_DIR"]), files)
    return {s.pipeline.id: s for s in load_project(root, default_engine="spark").pipelines}


# ----------------------------------------------------------------------- explicit


def test_explicit_engines_and_their_origins(env):
    specs = load(
        env,
        {
            "shop/app.yaml": "engine: duckdb\n",
            "shop/silver/a.xml": pipeline_xml("a", "silver", '<csv id="x" path="in/*.csv"/>'),
            "shop/silver/b.xml": pipeline_xml(
                "b", "silver", '<csv id="x" path="in/*.csv"/>', engine="spark", table="t2"
            ),
            "other/silver/c.xml": pipeline_xml("c", "silver", '<csv id="x" path="in/*.csv"/>'),
        },
    )
    s = settings_of(env, DATAHUB_ENGINE="spark")
    a = choose(specs["a"], s, None)
    assert (a.engine, a.requested, a.origin, a.input_bytes) == (
        "duckdb",
        "duckdb",
        "app.yaml",
        None,
    )
    assert a.reason == "engine=duckdb (app.yaml)"
    b = choose(specs["b"], s, None)
    assert (b.engine, b.origin) == ("spark", "pipeline shop/silver/b.xml:1")
    c = choose(specs["c"], settings_of(env, DATAHUB_ENGINE="duckdb"), None)
    assert (c.engine, c.origin) == ("duckdb", "DATAHUB_ENGINE")


def test_run_tag_override_wins_and_is_checked(env, tmp_path):
    data_file(tmp_path / "data/shop/in/a.csv", 3 * MB)
    specs = load(
        env,
        {"shop/silver/a.xml": pipeline_xml("a", "silver", '<csv id="x" path="in/*.csv"/>', "auto")},
    )
    s = settings_of(env, DATAHUB_ENGINE_AUTO_MAX_MB="1")
    assert choose(specs["a"], s, None).engine == "spark"  # 3 MB > 1 MB
    forced = choose(specs["a"], s, None, override="duckdb")
    assert (forced.engine, forced.requested) == ("duckdb", "duckdb")
    assert forced.reason == f"engine=duckdb (run tag {RUN_TAG})"
    assert choose(specs["a"], s, None, override=" Spark ").engine == "spark"
    assert choose(specs["a"], s, None, override="").engine == "spark"  # empty tag: no override
    big = settings_of(env, DATAHUB_ENGINE_AUTO_MAX_MB="4", DATAHUB_ENGINE="spark")
    assert choose(specs["a"], big, None, override="auto").engine == "duckdb"
    with pytest.raises(ValueError, match="polars"):
        choose(specs["a"], s, None, override="polars")


# --------------------------------------------------------------------------- auto


def test_auto_threshold_on_real_files(env, tmp_path):
    data = tmp_path / "data/shop"
    sizes = [
        data_file(data / "in/a.csv", 700_000),
        data_file(data / "in/b.csv", 600_000),
        data_file(data / "events/2024/x.json", 150_000),
        data_file(data / "events/2025/y.json", 50_000),
        data_file(data / "part/k=1/f.parquet", 1000),
        data_file(data / "part/k=2/g.parquet", 2000),
    ]
    data_file(data / "in/c.txt", 5 * MB)  # not matched by the glob
    data_file(data / "part/_SUCCESS", 9 * MB)  # hidden in a folder source, as Spark skips it
    data_file(data / "part/.k=3.crc", 9 * MB)
    sources = (
        '<csv id="a" path="in/*.csv"/>\n'
        '<json id="e" path="events/{2024,2025}/*.json"/>\n'
        '<parquet id="p" path="part"/>'
    )
    specs = load(env, {"shop/bronze/a.xml": pipeline_xml("a", "bronze", sources, "auto")})
    total = sum(sizes)
    assert total == 1_503_000
    small = choose(specs["a"], settings_of(env, DATAHUB_ENGINE_AUTO_MAX_MB="2"), None)
    assert (small.engine, small.input_bytes, small.requested) == ("duckdb", total, "auto")
    assert small.reason == "auto: inputs 1.4 MB ≤ 2 MB → duckdb"
    large = choose(specs["a"], settings_of(env, DATAHUB_ENGINE_AUTO_MAX_MB="1"), None)
    assert (large.engine, large.input_bytes) == ("spark", total)
    assert large.reason == "auto: inputs 1.4 MB > 1 MB → spark"
    exact = dataclasses.replace(settings_of(env), engine_auto_max_bytes=total)
    assert choose(specs["a"], exact, None).engine == "duckdb"  # ≤ is DuckDB
    below = dataclasses.replace(settings_of(env), engine_auto_max_bytes=total - 1)
    assert choose(specs["a"], below, None).engine == "spark"


def test_auto_counts_only_the_file_drop_batch_when_given(env, tmp_path):
    landing = tmp_path / "data/shop/landing"
    one = data_file(landing / "a.csv", 400_000)
    data_file(landing / "b.csv", 3 * MB)
    specs = load(
        env,
        {
            "shop/raw/a.xml": pipeline_xml(
                "a", "raw", '<csv id="drop" path="landing/*.csv"><watch/></csv>', "auto"
            )
        },
    )
    s = settings_of(env, DATAHUB_ENGINE_AUTO_MAX_MB="1")
    assert choose(specs["a"], s, None).engine == "spark"  # the whole landing folder
    batch = choose(specs["a"], s, None, files={"drop": [str(landing / "a.csv")]})
    assert (batch.engine, batch.input_bytes) == ("duckdb", one)
    gone = choose(specs["a"], s, None, files={"drop": [str(landing / "moved_away.csv")]})
    assert gone.input_bytes == 0


def test_auto_sizes_iceberg_table_sources_from_the_snapshot_summary(env):
    specs = load(
        env,
        {
            "shop/raw/a.xml": pipeline_xml("a", "raw", '<csv id="x" path="in/*.csv"/>'),
            "shop/bronze/b.xml": pipeline_xml(
                "b", "bronze", '<table id="src" ref="raw.t"/>', "auto", table="b"
            ),
        },
    )
    s = settings_of(env)
    catalog = open_catalog(s.catalog_uri, s.warehouse)
    missing = choose(specs["b"], s, catalog)  # the table does not exist yet: counts 0
    assert (missing.engine, missing.input_bytes) == ("duckdb", 0)

    catalog.create_namespace("shop_raw")
    rows = pa.table(
        {"id": pa.array(range(20_000), pa.int64()), "s": [f"v{i}" * 5 for i in range(20_000)]}
    )
    table = catalog.create_table("shop_raw.t", rows.schema)
    assert choose(specs["b"], s, catalog).input_bytes == 0  # created, never written
    table.append(rows)
    table.append(rows.slice(0, 5000))
    on_disk = sum(
        f.stat().st_size for f in Path(s.warehouse.removeprefix("file://")).rglob("*.parquet")
    )
    assert on_disk > 0
    measured = choose(specs["b"], s, catalog)
    assert (measured.engine, measured.input_bytes) == ("duckdb", on_disk)
    tiny = dataclasses.replace(s, engine_auto_max_bytes=on_disk - 1)
    assert choose(specs["b"], tiny, catalog).engine == "spark"
    # without a catalog the platform catalog of the settings is opened
    assert input_bytes(specs["b"], s, None) == (on_disk, [])


def test_auto_with_an_input_it_cannot_size_goes_to_spark(env, tmp_path):
    specs = load(
        env,
        {
            "shop/raw/a.xml": pipeline_xml("a", "raw", '<csv id="x" path="in/*.csv"/>'),
            "shop/bronze/b.xml": pipeline_xml(
                "b", "bronze", '<table id="src" ref="raw.t"/>', "auto", table="b"
            ),
        },
    )
    s = settings_of(env)
    catalog = open_catalog(s.catalog_uri, s.warehouse)
    (tmp_path / "home/catalog.db").write_bytes(b"not a database" * 100)
    choice = choose(specs["b"], s, catalog)
    assert (choice.engine, choice.input_bytes) == ("spark", None)
    assert choice.reason.startswith('auto: the size of source "src" (DatabaseError: ')
    assert "\n" not in choice.reason
    assert choice.reason.endswith(") is unknown → spark")


def test_auto_with_a_blocker_goes_to_spark_and_a_forced_duckdb_run_is_refused(env):
    db = (
        '<database id="users" jdbcUrl="jdbc:postgresql://db:5432/app" userSecretRef="SHOP_DB">'
        '<table name="public.users"/></database>'
    )
    steps_xml = pipeline_xml("s", "silver", '<csv id="x" path="in/*.csv"/>', "auto", "t2").replace(
        "<targets>",
        '<transformations><derive source="x" column="h" expr="xxhash64(id)"/>'
        "</transformations>\n<targets>",
    )
    specs = load(
        env,
        {
            "shop/silver/d.xml": pipeline_xml("d", "silver", db, "auto"),
            "shop/silver/s.xml": steps_xml,
        },
    )
    s = settings_of(env)
    d = choose(specs["d"], s, None)
    assert (d.engine, d.input_bytes) == ("spark", None)
    assert d.reason == (
        'auto: <database> source "users" (shop/silver/d.xml:3): DuckDB has no JDBC reader → spark'
    )
    h = choose(specs["s"], s, None)
    assert h.engine == "spark"
    assert "xxhash64()" in h.reason
    assert "shop/silver/s.xml:" in h.reason
    with pytest.raises(EngineRefused, match="JDBC reader"):
        choose(specs["d"], s, None, override="duckdb")
    assert choose(specs["d"], s, None, override="spark").engine == "spark"


# -------------------------------------------------------------------------- helpers


def test_expand_braces_and_human_size():
    assert expand_braces("a/{x,y}/*.csv") == ["a/x/*.csv", "a/y/*.csv"]
    assert expand_braces("{a,b{1,2}}z") == ["az", "b1z", "b2z"]
    assert expand_braces("no/braces") == ["no/braces"]
    assert expand_braces("open{a,b") == ["open{a,b"]
    assert human_size(512) == "512 bytes"
    assert human_size(1536) == "1.5 KB"
    assert human_size(int(12.3 * MB)) == "12.3 MB"


def test_s3_inputs_are_sized_by_listing(env, s3_client):
    client, bucket = s3_client
    sizes = {"shop/in/a.csv": 1000, "shop/in/b.csv": 2500, "shop/in/sub/c.csv": 7, "shop/x.txt": 99}
    for key, size in sizes.items():
        client.put_object(Bucket=bucket, Key=key, Body=b"y" * size)
    specs = load(
        env,
        {
            "shop/silver/a.xml": pipeline_xml(
                "a", "silver", '<csv id="x" path="in/*.csv"/>\n<csv id="f" path="in/sub"/>', "auto"
            )
        },
    )
    s = settings_of(env, DATAHUB_DATA_DIR=f"s3://{bucket}")
    assert input_bytes(specs["a"], s, None, s3_client_factory=lambda: client) == (3507, [])
    batch = {"x": [f"s3://{bucket}/shop/in/b.csv", f"s3://{bucket}/shop/in/gone.csv"]}
    total, unknown = input_bytes(specs["a"], s, None, batch, lambda: client)
    assert (total, unknown) == (2507, [])  # b.csv and the folder source; a file gone counts 0
    many = [f"shop/in/m{i:02d}.csv" for i in range(25)]
    for i, key in enumerate(many):
        client.put_object(Bucket=bucket, Key=key, Body=b"z" * (i + 1))
    big_batch = {"x": [f"s3://{bucket}/{k}" for k in many], "f": []}
    assert input_bytes(specs["a"], s, None, big_batch, lambda: client) == (sum(range(1, 26)), [])
