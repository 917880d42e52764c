"""The DuckDB engine's session (engines/duckdb/session.py): limits, spill folder, one connection per
run without state leaking from the previous run, PySpark's withColumn semantics."""

from __future__ import annotations

from datahub_assets.engines.api import F, current, use
from datahub_assets.engines.duckdb.session import duckdb_engine
from datahub_assets.execute.transforms import apply_steps
from datahub_assets.spec import models as m
from datahub_resources.settings import Settings
from tests.support.context import exec_context


def _settings(tmp_path, **env) -> Settings:
    return Settings.from_env({"DATAHUB_HOME": str(tmp_path / "home"), **env})


def test_connection_has_the_limits_of_the_settings(tmp_path):
    settings = _settings(tmp_path, DATAHUB_DUCKDB_MEMORY_LIMIT="512MB", DATAHUB_DUCKDB_THREADS="1")
    engine = duckdb_engine(settings)
    ((limit, threads, spill, zone, order),) = engine.connection.sql(
        "SELECT current_setting('memory_limit'), current_setting('threads'), "
        "current_setting('temp_directory'), current_setting('TimeZone'), "
        "current_setting('preserve_insertion_order')"
    ).fetchall()
    assert limit == "488.2 MiB"  # DuckDB prints 512 MB (10^6) in MiB
    assert threads == 1
    assert spill == str(tmp_path / "home" / "duckdb_tmp")
    assert (tmp_path / "home" / "duckdb_tmp").is_dir()
    assert zone == "UTC"
    assert order is True
    engine.connection.close()


def test_each_run_gets_a_fresh_database_and_catalog(tmp_path):
    """sqlframe keeps one session per process: a second run with a dataset of the same name
    but other columns must not see the first run's views or cached schemas."""
    settings = _settings(tmp_path)
    results = []
    for columns, query in (
        (["a", "b"], "SELECT a + b AS s FROM orders"),
        (["order_ts", "x"], "SELECT max(order_ts) AS m, count(*) AS n FROM orders"),
    ):
        engine = duckdb_engine(settings)
        ctx = exec_context(engine, settings, app="x")
        with use(engine):
            frame = engine.session.createDataFrame([(1, 2), (3, 4)], columns)
            out = apply_steps([m.Sql(output="r", query=query)], {"orders": frame}, ctx)["r"]
            results.append([tuple(r) for r in out.collect()])
        engine.connection.close()
    assert results == [[(3,), (7,)], [(3, 2)]]
    assert current().name == "spark"  # outside `use`, the Spark namespaces again


def test_with_column_replaces_in_place_after_select_and_cross_join(tmp_path):
    """PySpark's withColumn(s): an existing column (any case) is replaced where it stands,
    a new one appended (sqlframe alone appended a duplicate after select + crossJoin)."""
    engine = duckdb_engine(_settings(tmp_path))
    with use(engine):
        s = engine.session
        left = s.createDataFrame([(1, "x", "p")], ["id", "name", "phone"])
        keys = s.createDataFrame([("salt",)], ["k"])
        joined = left.select(*[F.col(f"`{c}`") for c in left.columns]).crossJoin(keys)
        out = joined.withColumns({"phone": F.concat(F.col("k"), F.col("phone")), "n": F.lit(1)})
        assert out.columns == ["id", "name", "phone", "k", "n"]
        assert [tuple(r) for r in out.collect()] == [(1, "x", "saltp", "salt", 1)]
        renamed = left.withColumn("NAME", F.upper(F.col("name")))
        assert renamed.columns == ["id", "NAME", "phone"]
        assert [tuple(r) for r in renamed.collect()] == [(1, "X", "p")]
    engine.connection.close()


def test_joins_by_dataset_alias_in_consecutive_runs(tmp_path):
    """Joins alias frames by dataset id; sqlframe records alias ids on its session, so a
    second run joining datasets of the same names must not resolve them to the first run's
    (in-process executor: every step of a Dagster run shares the process)."""
    settings = _settings(tmp_path)
    join = m.Join(
        left="orders",
        right="customers",
        type="left",
        condition="orders.cid = customers.id",
        select="orders.*, customers.name AS name",
        output="joined",
    )
    for run in range(3):
        engine = duckdb_engine(settings)
        ctx = exec_context(engine, settings, app="x")
        with use(engine):
            s = engine.session
            datasets = {
                "orders": s.createDataFrame([(run, 1), (run + 1, 2)], ["oid", "cid"]),
                "customers": s.createDataFrame([(1, f"ann{run}")], ["id", "name"]),
            }
            out = apply_steps([join], datasets, ctx)["joined"]
            rows = sorted(tuple(r) for r in out.collect())
        engine.connection.close()
        assert rows == [(run, 1, f"ann{run}"), (run + 1, 2, None)]
