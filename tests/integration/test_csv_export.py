"""CSV exports: modes, compression, date expansion, partition folders, atomic replace."""

from __future__ import annotations

import bz2
import gzip
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from datahub_assets.execute.writers.csv_export import write_csv
from datahub_assets.spec.models import CsvTarget

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
    assert _names(result.path) == sorted(Path(f).name for f in result.files)
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
    files = [str(f) for f in Path(path).iterdir()]
    assert sorted(_lines(files)) == ["1,a,EU", "1,a,EU", "2,b,US", "3,c,EU"]
    assert result.rows == 1
    assert len(result.files) == 1
    with pytest.raises(FileExistsError, match="already exists"):
        write_csv(spark, _frame(spark), CsvTarget(path="out", mode="error"), path, RUN)
    skipped = write_csv(spark, _frame(spark), CsvTarget(path="out", mode="ignore"), path, RUN)
    assert skipped.skipped
    assert len(_names(path)) == 2


def test_partition_by_and_bzip2(spark, tmp_path):
    target = CsvTarget(path="parts", partition_by="region", compression="bzip2")
    result = write_csv(spark, _frame(spark), target, str(tmp_path / "parts"), RUN)
    assert _names(result.path) == ["region=EU", "region=US"]
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
