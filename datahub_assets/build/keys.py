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
    """Unique, valid Dagster op name for a pipeline: `<app>__<id>`."""
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{spec.app}__{spec.pipeline.id}")


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
