"""The shared fixtures, registered for every test by `tests/conftest.py`: `engine_pair` (a test
once on Spark, once on DuckDB) and `catalog` (the platform catalog of the test's `settings`).
The engine and catalog modules are imported when a fixture first runs, not when pytest starts
(as in conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from datahub_resources.settings import Settings
    from tests.support.context import EngineUnderTest

ENGINE_PAIR = [pytest.param("spark", marks=pytest.mark.spark), "duckdb"]


@pytest.fixture(params=ENGINE_PAIR)
def engine_pair(request: pytest.FixtureRequest, settings: Settings) -> Iterator[EngineUnderTest]:
    """The test once per engine: `spark` (needs the shared server, marked `spark`) and
    `duckdb` (a new connection, closed afterwards, with `use(engine)` active during the test so
    that `engines.api` F/T/Window are DuckDB's)."""
    from datahub_assets.engines.api import use
    from datahub_assets.engines.duckdb.session import duckdb_engine
    from tests.support.context import EngineUnderTest

    if request.param == "spark":
        yield EngineUnderTest("spark", request.getfixturevalue("spark"), None, settings)
        return
    duck = duckdb_engine(settings)
    try:
        with use(duck):
            yield EngineUnderTest("duckdb", duck.session, duck, settings)
    finally:
        duck.connection.close()


@pytest.fixture
def catalog(settings: Settings) -> Catalog:
    """The platform catalog of the test's `settings` (DATAHUB_HOME in tmp_path)."""
    from datahub_resources.iceberg import load_catalog

    return load_catalog(settings)
