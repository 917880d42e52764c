"""The `DataHubPipelines` component: the defs folder builds exactly what the builder builds,
its settings resolve environment first, and its type is registered with documented fields."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from datahub_assets.components import DataHubPipelines
from datahub_assets.orchestration.project import build_definitions

REPO = Path(__file__).resolve().parents[2]
TYPE_NAME = "datahub_assets.components.DataHubPipelines"
ORDERS = """<pipeline id="orders_raw" layer="raw">
  <sources><csv id="orders" path="landing/orders/*.csv"><watch/></csv></sources>
  <targets><table table="orders"/></targets>
</pipeline>
"""


def _summary(defs: dg.Definitions) -> dict:
    """Everything a load can differ in: assets (deps, groups, kinds, owners, automation,
    checks), sensors and their targets, jobs, schedules, resources, the executor."""
    graph = defs.resolve_asset_graph()
    repo = defs.get_repository_def()
    out: dict = {"assets": {}, "sensors": {}}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        cond = node.automation_condition
        out["assets"][key.to_user_string()] = (
            node.group_name,
            sorted(k.to_user_string() for k in node.parent_keys),
            sorted(node.kinds),
            list(node.owners),
            cond.get_label() if cond else None,
            sorted(c.name for c in node.assets_def.check_specs if c.asset_key == key),
            node.assets_def.specs_by_key[key].metadata.get("datahub/definition"),
        )
    for sensor in repo.sensor_defs:
        targets = sensor.asset_selection.resolve(graph) if sensor.asset_selection else set()
        out["sensors"][sensor.name] = (
            sensor.default_status.value,
            sensor.minimum_interval_seconds,
            sorted(k.to_user_string() for k in targets),
        )
    out["jobs"] = sorted(j.name for j in repo.get_all_jobs())
    out["schedules"] = sorted((s.name, s.cron_schedule) for s in repo.schedule_defs)
    out["resources"] = sorted(defs.resources or {})
    out["executor"] = defs.executor.name if defs.executor else None
    return out


def test_defs_folder_builds_exactly_the_builders_definitions(monkeypatch):
    monkeypatch.delenv("DATAHUB_PIPELINES_DIR", raising=False)
    monkeypatch.delenv("DATAHUB_EXECUTOR", raising=False)
    from datahub_assets.definitions import load_defs_folder

    via_component = _summary(load_defs_folder())
    direct = _summary(build_definitions(REPO / "pipelines_xml"))
    assert via_component == direct
    assert via_component["assets"]
    assert via_component["sensors"]


def test_the_projects_defs_yaml_instantiates_the_component_with_its_defaults():
    decl = yaml.safe_load((REPO / "datahub_assets/defs/pipelines/defs.yaml").read_text())
    assert decl["type"] == TYPE_NAME
    component = DataHubPipelines(**decl["attributes"])
    assert component == DataHubPipelines()


def test_pipelines_dir_is_relative_to_the_project_root_and_the_environment_wins(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("DATAHUB_PIPELINES_DIR", raising=False)
    component = DataHubPipelines(pipelines_dir="defs_here")
    assert component.resolved_pipelines_dir(tmp_path) == (tmp_path / "defs_here").resolve()
    assert (
        DataHubPipelines(pipelines_dir=str(tmp_path / "abs")).resolved_pipelines_dir(REPO)
        == tmp_path / "abs"
    )
    monkeypatch.setenv("DATAHUB_PIPELINES_DIR", str(tmp_path / "from_env"))
    assert component.resolved_pipelines_dir(REPO) == tmp_path / "from_env"


def test_executor_comes_from_the_environment_then_the_yaml(monkeypatch):
    monkeypatch.delenv("DATAHUB_EXECUTOR", raising=False)
    assert DataHubPipelines(executor="multiprocess").resolved_executor() == "multiprocess"
    monkeypatch.setenv("DATAHUB_EXECUTOR", "in_process")
    assert DataHubPipelines(executor="multiprocess").resolved_executor() == "in_process"
    with pytest.raises(ValueError, match="executor"):
        DataHubPipelines(executor="threads")


def test_component_loads_a_pipelines_folder_from_yaml_attributes(tmp_path, monkeypatch):
    """The component as `dg` instantiates it: attributes from YAML, a load context."""
    monkeypatch.delenv("DATAHUB_PIPELINES_DIR", raising=False)
    monkeypatch.delenv("DATAHUB_EXECUTOR", raising=False)
    (tmp_path / "pipes" / "shop" / "raw").mkdir(parents=True)
    (tmp_path / "pipes" / "shop" / "raw" / "orders.xml").write_text(ORDERS)
    component = DataHubPipelines.resolve_from_yaml(
        f"pipelines_dir: {tmp_path / 'pipes'}\nexecutor: multiprocess\n"
    )
    defs = dg.build_defs_for_component(component)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "shop/raw/orders" in keys
    assert defs.executor is not None
    assert defs.executor.name == "multiprocess"


def test_component_type_is_registered_and_documented():
    """What `dg list components` and the UI's Docs tab read: the entry-point registry and
    the type's JSON Schema, with every field described."""
    from dagster.components.core.package_entry import discover_entry_point_package_objects
    from dagster.components.core.snapshot import get_package_entry_snap

    registry = {
        f"{k.namespace}.{k.name}": (k, obj)
        for k, obj in discover_entry_point_package_objects().items()
    }
    assert TYPE_NAME in registry
    key, obj = registry[TYPE_NAME]
    snap = get_package_entry_snap(key, obj)
    assert "Data Hub pipelines" in (snap.description or "")
    schema = DataHubPipelines.get_model_cls().model_json_schema()
    assert set(schema["properties"]) == {"pipelines_dir", "executor"}
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"field {name} has no description"
    assert "DATAHUB_PIPELINES_DIR" in schema["properties"]["pipelines_dir"]["description"]
