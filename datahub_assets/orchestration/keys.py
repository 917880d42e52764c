"""Names the Dagster side derives from a spec: asset keys, owners, tags, op names."""

from __future__ import annotations

import re

import dagster as dg

from datahub_assets.spec.models import PipelineSpec, TableRef

_TAG_VALUE = re.compile(r"^[A-Za-z0-9_.-]{0,63}$")
_TAG_KEY = re.compile(r"^([A-Za-z0-9_.-]{1,63}/)?[A-Za-z0-9_.-]{1,63}$")


def asset_key(ref: TableRef) -> dg.AssetKey:
    return dg.AssetKey(ref.asset_path)


def op_name(spec: PipelineSpec) -> str:
    """The pipeline's step name, as run pages and the launchpad show it: the asset it
    writes, `<app>__<layer>__<table>` (Dagster's own `AssetKey.to_python_identifier`), or
    for a pipeline with several targets `<app>__<layer>__<pipeline id>__<n>_targets`.

    Stable across runs (it only depends on the definition) and unique: asset keys are unique
    and a multi-target name ends in `_targets` after its pipeline id, unique per app."""
    if len(spec.targets) == 1:
        return _identifier(asset_key(spec.targets[0].ref).to_python_identifier())
    return _identifier(f"{spec.app}__{spec.layer}__{spec.pipeline.id}__{len(spec.targets)}_targets")


def _identifier(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def owners(spec: PipelineSpec) -> list[str]:
    """Dagster owners are emails or `team:<name>`; a plain owner is read as a team."""
    if not spec.owner:
        return []
    owner = spec.owner.strip()
    if "@" in owner or owner.startswith("team:"):
        return [owner]
    return [f"team:{re.sub(r'[^A-Za-z0-9_.-]', '-', owner)}"]


def split_tags(spec: PipelineSpec) -> tuple[dict[str, str], dict[str, str]]:
    """(tags Dagster accepts, the rest) — the rest is kept as metadata, nothing is dropped."""
    valid: dict[str, str] = {
        "datahub/app": spec.app,
        "datahub/layer": spec.layer,
        "datahub/pipeline": spec.pipeline.id,
    }
    other: dict[str, str] = {}
    for key, value in spec.tags.items():
        if _TAG_KEY.match(key) and _TAG_VALUE.match(value):
            valid[key] = value
        else:
            other[key] = value
    return {k: v for k, v in valid.items() if _TAG_VALUE.match(v)}, other
