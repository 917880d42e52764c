"""Configuration in one place: every environment variable is read by
datahub_resources/settings.py (and secrets by secrets.py), documented in README.md, and reaches
the resources as `dg.EnvVar` when it is set."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest

from datahub_resources.deployment import executor, resources
from datahub_resources.iceberg import IcebergResource
from datahub_resources.settings import NAMES, VARIABLES, Settings

REPO = Path(__file__).resolve().parents[2]
_READ = re.compile(r"os\.environ|getenv\(|environ\.get\(")

# path -> why it may read the environment itself
ALLOWED = {
    "datahub_resources/settings.py": "the one reader of the platform's variables",
    "datahub_resources/secrets.py": "*SecretRef values: secrets never become settings",
}


def test_no_environment_reads_outside_settings():
    offenders = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for package in ("datahub_assets", "datahub_resources")
        for path in sorted((REPO / package).rglob("*.py"))
        if str(path.relative_to(REPO)) not in ALLOWED
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if _READ.search(line)
    ]
    assert offenders == [], (
        "read environment variables through datahub_resources.settings.Settings "
        "(add a field and a VARIABLES row, document it in README.md):\n" + "\n".join(offenders)
    )


def test_the_grep_finds_a_read():
    assert _READ.search('x = os.environ.get("DATAHUB_X")')
    assert _READ.search('x = getenv("DATAHUB_X")')
    assert not _READ.search("settings.environ_value")


def test_every_variable_is_in_the_readme_environment_table():
    readme = (REPO / "README.md").read_text()
    missing = [v.name for v in VARIABLES if f"`{v.name}`" not in readme]
    assert missing == []


def test_every_datahub_variable_the_code_names_is_a_setting():
    """A `DATAHUB_*` name written anywhere in the packages is a known variable (catches a
    variable read by a new function without a Settings field)."""
    named = {
        m.group(0)
        for package in ("datahub_assets", "datahub_resources")
        for path in (REPO / package).rglob("*.py")
        for m in re.finditer(r"\bDATAHUB_[A-Z0-9_]*[A-Z0-9]\b", path.read_text())
    }
    not_settings = {"DATAHUB_CATALOG", "DATAHUB_HOME_DIR"} & named  # none expected
    assert named - NAMES - not_settings == set()


def test_defaults_and_values():
    default = Settings.from_env({"DATAHUB_HOME": "/srv/dh"})
    assert default.catalog_uri == "sqlite:////srv/dh/catalog.db"
    assert default.warehouse == "file:///srv/dh/warehouse"
    assert default.spark_state_dir == Path("/srv/dh/spark")
    assert default.watch_max_runs_per_tick == 20
    assert default.spark_port is None
    assert default.mongo_max_partitions == 8
    assert default.executor is None
    assert default.explicit == {"DATAHUB_HOME"}
    set_ = Settings.from_env(
        {
            "DATAHUB_WATCH_MAX_RUNS_PER_TICK": "3",
            "DATAHUB_SPARK_PORT": "15099",
            "DATAHUB_SPARK_RETRY_SECONDS": "2.5",
            "DATAHUB_UI_URL": "https://dagster.example.com/",
            "DATAHUB_DATA_DIR": "s3://bucket/data/",
        }
    )
    assert set_.watch_max_runs_per_tick == 3
    assert set_.spark_port == 15099
    assert set_.spark_retry_seconds == 2.5
    assert set_.ui_url == "https://dagster.example.com"
    assert set_.data_path("shop", "landing/a.csv") == "s3://bucket/data/shop/landing/a.csv"


def test_a_bad_number_names_the_variable():
    with pytest.raises(ValueError, match=r"DATAHUB_WATCH_MAX_RUNS_PER_TICK='many'"):
        Settings.from_env({"DATAHUB_WATCH_MAX_RUNS_PER_TICK": "many"})


def test_set_variables_reach_resources_as_env_vars(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAHUB_HOME", str(tmp_path))
    monkeypatch.setenv("DATAHUB_CATALOG_URI", f"sqlite:///{tmp_path}/other.db")
    monkeypatch.delenv("DATAHUB_WAREHOUSE", raising=False)
    monkeypatch.delenv("DATAHUB_SPARK_REMOTE", raising=False)
    res = resources()
    iceberg = res["iceberg"]
    assert isinstance(iceberg.catalog_uri, dg.EnvVar)  # the UI names the variable
    assert iceberg.catalog_uri.env_var_name == "DATAHUB_CATALOG_URI"
    assert not isinstance(iceberg.warehouse, dg.EnvVar)  # unset: the default, as a value
    assert iceberg.warehouse == f"file://{tmp_path}/warehouse"
    assert res["spark"].remote is None

    @dg.asset
    def where(iceberg: IcebergResource) -> dict:
        return {"uri": iceberg.catalog_uri, "warehouse": iceberg.warehouse}

    result = dg.materialize([where], resources={"iceberg": iceberg})
    assert result.output_for_node("where") == {
        "uri": f"sqlite:///{tmp_path}/other.db",
        "warehouse": f"file://{tmp_path}/warehouse",
    }


def test_executor_from_settings():
    assert executor(settings=Settings.from_env({})) is dg.in_process_executor
    chosen = executor(settings=Settings.from_env({"DATAHUB_EXECUTOR": "multiprocess"}))
    assert chosen.name == "multiprocess"
    with pytest.raises(ValueError, match="DATAHUB_EXECUTOR='threads'"):
        executor(settings=Settings.from_env({"DATAHUB_EXECUTOR": "threads"}))
