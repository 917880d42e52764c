"""What `iceberg.pyiceberg_compat` relies on in pyiceberg still exists, with the
signature it calls. After a pyiceberg upgrade a failure here names the attribute that moved:
adapt pyiceberg_compat (only there), then widen the pin in pyproject.toml."""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version
from pathlib import Path

import pytest
from pyiceberg.catalog import MetastoreCatalog
from pyiceberg.catalog.sql import IcebergTables, SqlCatalog
from pyiceberg.io.fileformat import DataFileStatistics
from pyiceberg.schema import Schema
from pyiceberg.table import CommitTableResponse, Table, Transaction

from datahub_assets.iceberg import pyiceberg_compat as compat

ROOT = Path(__file__).resolve().parents[2]


def _params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_the_installed_pyiceberg_is_a_tested_version():
    installed = ".".join(version("pyiceberg").split(".")[:2])
    assert installed in compat.TESTED, (
        f"pyiceberg {version('pyiceberg')} is not one pyiceberg_compat was tested with "
        f"({compat.TESTED}); run these tests and tests/integration/test_data_file.py, then "
        "update TESTED and the pin"
    )


def test_pyproject_pins_the_tested_range():
    text = (ROOT / "pyproject.toml").read_text()
    pin = re.search(r'"pyiceberg\[[^\]]*\](>=[^"]+)"', text)
    assert pin, "pyproject.toml has no pyiceberg requirement"
    low = min(compat.TESTED)
    major, minor = (int(x) for x in max(compat.TESTED).split("."))
    assert pin.group(1) == f">={low},<{major}.{minor + 1}", pin.group(1)


@pytest.mark.parametrize(
    ("owner", "method", "params"),
    [
        (
            MetastoreCatalog,
            "_update_and_stage_table",
            ["self", "current_table", "table_identifier", "requirements", "updates"],
        ),  # noqa: E501 - one row per attribute reads best
        (MetastoreCatalog, "_write_metadata", ["metadata", "io", "metadata_path"]),
        (MetastoreCatalog, "_delete_old_metadata", ["io", "base", "metadata"]),
        (DataFileStatistics, "_partition_value", ["self", "partition_field", "schema"]),
    ],
)
def test_private_methods_exist_with_the_signature_used(owner, method, params):
    fn = getattr(owner, method, None)
    assert fn is not None, f"pyiceberg {owner.__name__}.{method} is gone"
    assert _params(fn) == params, f"pyiceberg {owner.__name__}.{method} changed: {_params(fn)}"
    assert issubclass(SqlCatalog, MetastoreCatalog), "SqlCatalog no longer a MetastoreCatalog"


def test_transaction_private_attributes_exist(tmp_path):
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=f"file://{tmp_path}")
    catalog.create_namespace("n")
    table = catalog.create_table(("n", "t"), schema=Schema())
    txn = table.transaction()
    txn.set_properties({"a": "b"})
    for name in ("_table", "_requirements", "_updates", "_failed"):
        assert hasattr(txn, name), f"pyiceberg Transaction.{name} is gone"
    assert compat.transaction_table(txn) is table
    requirements, updates = compat.transaction_changes(txn)
    assert isinstance(requirements, tuple), "Transaction._requirements is not a tuple"
    assert [type(u).__name__ for u in updates] == ["SetPropertiesUpdate"]
    assert compat.transaction_failed(txn) is False
    assert isinstance(Transaction.commit_transaction(txn), Table)
    assert catalog.load_table(("n", "t")).properties["a"] == "b"
    catalog.engine.dispose()


def test_the_catalog_row_and_the_commit_response_have_the_fields_used():
    for column in ("catalog_name", "table_namespace", "table_name", "metadata_location"):
        assert column in IcebergTables.__table__.columns, f"IcebergTables.{column} is gone"
    assert {"metadata", "metadata_location"} <= set(CommitTableResponse.model_fields)
    assert _params(Table.__init__)[:6] == [
        "self",
        "identifier",
        "metadata",
        "metadata_location",
        "io",
        "catalog",
    ], "pyiceberg Table() takes other arguments"
