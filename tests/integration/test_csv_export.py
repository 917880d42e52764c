"""CSV exports: modes, compression, date expansion, partition folders, atomic replace, and
overwrite only of a folder that is an earlier export of the same target (issue #19 finding 6:
every export folder carries a `_DATAHUB_EXPORT` marker naming its target)."""

from __future__ import annotations

import bz2
import contextlib
import gzip
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from datahub_assets.engines.api import use
from datahub_assets.engines.duckdb.session import duckdb_engine
from datahub_assets.execute.writers.csv_export import MARKER, write_csv
from datahub_assets.spec.models import CsvTarget
from datahub_resources import s3
from datahub_resources.settings import Settings
from tests.s3 import use_bucket_env

pytestmark = pytest.mark.spark

RUN = date(2024, 3, 1)


def _frame(spark):
    return spark.createDataFrame(
        [(1, "a", "EU"), (2, "b", "US"), (3, "c", "EU")], "id int, name string, region string"
    ).coalesce(1)


def _names(folder) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir())


def _lines(paths) -> list[str]:
    out = []
    for p in paths:
        opener = gzip.open if p.endswith(".gz") else bz2.open if p.endswith(".bz2") else open
        with opener(p, "rt") as fh:
            out += fh.read().splitlines()
    return out


def test_overwrite_gzip_with_date_expansion(spark, tmp_path):
    target = CsvTarget(path="exports/%Y/%m/%d/customers", compression="gzip", delimiter=";")
    result = write_csv(spark, _frame(spark), target, str(tmp_path / target.path), RUN)
    assert result.path == str(tmp_path / "exports/2024/03/01/customers")
    assert result.rows == 3
    assert result.files
    assert all(f.endswith(".csv.gz") for f in result.files)
    assert _lines(result.files) == ["id;name;region", "1;a;EU", "2;b;US", "3;c;EU"]
    assert _names(result.path) == sorted([MARKER, *(Path(f).name for f in result.files)])
    # overwrite replaces the folder; no temporary or old sibling is left behind
    again = write_csv(spark, _frame(spark).limit(1), target, str(tmp_path / target.path), RUN)
    assert again.rows == 1
    assert _lines(again.files)[1:] == ["1;a;EU"]
    assert _names(tmp_path / "exports/2024/03/01") == ["customers"]


def test_append_error_ignore_modes(spark, tmp_path):
    path = str(tmp_path / "out")
    write_csv(spark, _frame(spark), CsvTarget(path="out", header=False), path, RUN)
    result = write_csv(
        spark, _frame(spark).limit(1), CsvTarget(path="out", mode="append", header=False), path, RUN
    )
    files = [str(f) for f in Path(path).iterdir() if f.name != MARKER]
    assert sorted(_lines(files)) == ["1,a,EU", "1,a,EU", "2,b,US", "3,c,EU"]
    assert result.rows == 1
    assert len(result.files) == 1
    with pytest.raises(FileExistsError, match="already exists"):
        write_csv(spark, _frame(spark), CsvTarget(path="out", mode="error"), path, RUN)
    skipped = write_csv(spark, _frame(spark), CsvTarget(path="out", mode="ignore"), path, RUN)
    assert skipped.skipped
    assert len(_names(path)) == 3  # two data files and the marker


def test_partition_by_and_bzip2(spark, tmp_path):
    target = CsvTarget(path="parts", partition_by=("region",), compression="bzip2")
    result = write_csv(spark, _frame(spark), target, str(tmp_path / "parts"), RUN)
    assert _names(result.path) == [MARKER, "region=EU", "region=US"]
    eu = [f for f in result.files if "/region=EU/" in f]
    assert _lines(eu) == ["id,name", "1,a", "3,c"]


def test_failed_export_keeps_the_old_folder(spark, tmp_path):
    path = str(tmp_path / "out")
    write_csv(spark, _frame(spark), CsvTarget(path="out"), path, RUN)
    before = _names(path)
    bad = _frame(spark).withColumn(
        "name", F.when(F.col("id") == 3, F.raise_error(F.lit("boom"))).otherwise(F.col("name"))
    )
    with pytest.raises(Exception, match="boom"):
        write_csv(spark, bad, CsvTarget(path="out"), path, RUN)
    assert _names(path) == before
    assert _names(tmp_path) == ["out"]


# ------------------------------------------- overwrite replaces only its own export


def _victim(folder: Path) -> Path:
    """A folder that is no export: files someone else keeps there."""
    (folder / "sub").mkdir(parents=True)
    (folder / "keep.txt").write_text("precious")
    (folder / "sub" / "also.txt").write_text("also precious")
    return folder


def _intact(folder: Path) -> bool:
    return (folder / "keep.txt").read_text() == "precious" and (
        folder / "sub" / "also.txt"
    ).read_text() == "also precious"


def test_overwrite_refuses_a_folder_that_is_no_export(spark, tmp_path):
    """`<csv path="/data/shared" mode="overwrite"/>` used to swap the folder out and delete it."""
    victim = _victim(tmp_path / "shared")
    with pytest.raises(FileExistsError, match=f"{victim}.*no {MARKER} marker"):
        write_csv(spark, _frame(spark), CsvTarget(path="shared"), str(victim), RUN)
    assert _intact(victim)
    assert _names(victim) == ["keep.txt", "sub"]
    assert _names(tmp_path) == ["shared"]  # no temporary or old sibling left


def test_overwrite_refuses_another_targets_export(spark, tmp_path):
    path = str(tmp_path / "out")
    first = write_csv(
        spark, _frame(spark), CsvTarget(path="out"), path, RUN, owner="shop.service.a"
    )
    assert (Path(path) / MARKER).read_text().strip() == "shop.service.a"
    with pytest.raises(FileExistsError, match="export of shop.service.a, not of shop.service.b"):
        write_csv(spark, _frame(spark), CsvTarget(path="out"), path, RUN, owner="shop.service.b")
    assert _names(path) == sorted([MARKER, *(Path(f).name for f in first.files)])
    again = write_csv(
        spark, _frame(spark).limit(1), CsvTarget(path="out"), path, RUN, owner="shop.service.a"
    )
    assert again.rows == 1
    assert _names(path) == sorted([MARKER, *(Path(f).name for f in again.files)])


def test_overwrite_refuses_a_link_and_a_file(spark, tmp_path):
    victim = _victim(tmp_path / "elsewhere")
    link = tmp_path / "out"
    link.symlink_to(victim, target_is_directory=True)
    with pytest.raises(FileExistsError, match="symbolic link"):
        write_csv(spark, _frame(spark), CsvTarget(path="out"), str(link), RUN)
    assert link.is_symlink()
    assert _intact(victim)
    plain = tmp_path / "file"
    plain.write_text("a file")
    with pytest.raises(FileExistsError, match="not a folder"):
        write_csv(spark, _frame(spark), CsvTarget(path="file"), str(plain), RUN)
    assert plain.read_text() == "a file"
    assert _names(tmp_path) == ["elsewhere", "file", "out"]


def test_an_empty_folder_is_replaced_and_append_leaves_a_foreign_folder_unmarked(spark, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = write_csv(spark, _frame(spark), CsvTarget(path="empty"), str(empty), RUN)
    assert (empty / MARKER).exists()
    assert result.files
    victim = _victim(tmp_path / "shared")
    write_csv(spark, _frame(spark), CsvTarget(path="shared", mode="append"), str(victim), RUN)
    assert _intact(victim)
    assert not (victim / MARKER).exists()  # appending claims nothing
    with pytest.raises(FileExistsError, match=MARKER):
        write_csv(spark, _frame(spark), CsvTarget(path="shared"), str(victim), RUN)
    assert _intact(victim)


# ----------------------------------------------------------------------------- S3


@pytest.fixture
def bucket_env(spark, s3_client, tmp_path, monkeypatch):
    """(settings, client, bucket): the AWS environment of a moto bucket, Spark's S3A settings
    for it."""
    client, bucket = s3_client
    use_bucket_env(monkeypatch, client)
    settings = Settings.from_env(
        {"DATAHUB_HOME": str(tmp_path / "home"), "DATAHUB_DATA_DIR": f"s3://{bucket}/data"}
    )
    conf = s3.bucket_conf(client, bucket)
    for key, value in conf.items():
        spark.conf.set(key, value)
    yield settings, client, bucket
    for key in conf:
        spark.conf.unset(key)


def _keys(client, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", ()))


def _session(engine: str, spark, settings):
    if engine == "spark":
        return spark, None
    e = duckdb_engine(settings)
    return e.session, e


@pytest.mark.parametrize("engine", ["spark", "duckdb"])
def test_s3_overwrite_replaces_only_its_own_export(spark, bucket_env, engine):
    """Spark's overwrite and DuckDB's `write_csv_s3` used to delete every object below the
    prefix first, whatever wrote them."""
    settings, client, bucket = bucket_env
    session, e = _session(engine, spark, settings)
    foreign = ["shared/keep.txt", "shared/sub/also.txt"]
    for key in foreign:
        client.put_object(Bucket=bucket, Key=key, Body=b"precious")
    target = CsvTarget(path="x")
    with use(e) if e else contextlib.nullcontext():
        df = session.createDataFrame([(1, "a"), (2, "b")], "n int, t string")
        with pytest.raises(FileExistsError, match=f"s3://{bucket}/shared.*no {MARKER} marker"):
            write_csv(session, df, target, f"s3://{bucket}/shared", RUN, owner="shop.service.x")
        assert _keys(client, bucket, "shared/") == foreign
        out = f"s3://{bucket}/out"
        write_csv(session, df, target, out, RUN, owner="shop.service.x")
        marker = client.get_object(Bucket=bucket, Key=f"out/{MARKER}")["Body"].read()
        assert marker.decode().strip() == "shop.service.x"
        with pytest.raises(
            FileExistsError, match="export of shop.service.x, not of shop.service.y"
        ):
            write_csv(session, df, target, out, RUN, owner="shop.service.y")
        again = write_csv(session, df.limit(1), target, out, RUN, owner="shop.service.x")
    assert again.rows == 1
    keys = [k for k in _keys(client, bucket, "out/") if not k.endswith("_SUCCESS")]
    assert len(keys) == 2  # the marker and the new file: the old export's file is gone
    assert f"out/{MARKER}" in keys


# ------------------------------------------------------------------- through a run

EXPORT_TO_LANDING = """<pipeline id="dump" layer="bronze">
  <sources><csv id="o" path="landing/orders/*.csv" inferSchema="true"/></sources>
  <targets><csv name="dump" source="o" path="landing" mode="overwrite"/></targets>
</pipeline>
"""


def test_a_run_cannot_replace_the_apps_landing_folder(spark, settings):
    """`<csv path="landing" mode="overwrite"/>` is a path the loader accepts (below the app's
    data folder); the run used to replace the landing folder, deleting every dropped file."""
    from datahub_assets.execute.runner import PipelineRunError, run_pipeline
    from datahub_assets.spec.loader import load_project
    from datahub_resources.iceberg import load_catalog
    from tests.support.context import exec_context

    folder = settings.pipelines_dir / "shop" / "bronze"
    folder.mkdir(parents=True)
    (folder / "dump.xml").write_text(EXPORT_TO_LANDING)
    landing = settings.data_dir / "shop" / "landing"
    (landing / "orders").mkdir(parents=True)
    (landing / "orders" / "a.csv").write_text("order_id,total\n1,5.0\n")
    (spec,) = load_project(settings.pipelines_dir).pipelines
    ctx = exec_context(spark, settings, app="shop", run_id="r1")
    with pytest.raises(
        PipelineRunError, match=f"shop/bronze/dump.xml:3: csv export failed.*{MARKER}"
    ):
        run_pipeline(spec, ctx, load_catalog(settings))
    assert (landing / "orders" / "a.csv").read_text() == "order_id,total\n1,5.0\n"
    assert _names(landing.parent) == ["landing"]
