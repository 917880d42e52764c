"""What a change does to the asset graph: asset keys added, removed and changed (the same
key, a different definition). Asset keys come from the targets of the pipeline files the
change writes or deletes (a key is `[app, layer, table]`, defined by one file), read before
(the base) and after; "changed" compares the pipeline's definition and the target as
written, positions (line numbers) left out, so moving text around is no change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from datahub_assets.service.registry.parsing import PARSE_CACHE
from datahub_assets.spec.models import LAYER_ALIASES, LAYERS
from datahub_assets.spec.validate import PipelineCheck

PIPELINE_FOLDERS = (*LAYERS, *LAYER_ALIASES)
AssetKey = tuple[str, str, str]


def is_pipeline_path(path: str) -> bool:
    parts = path.split("/")
    return (
        len(parts) == 2
        and parts[0] in PIPELINE_FOLDERS
        and path.endswith((".xml", ".yaml", ".yml"))
    )


def _strip_locations(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_locations(v) for k, v in value.items() if k != "loc"}
    if isinstance(value, list | tuple):
        return [_strip_locations(v) for v in value]
    return value


def pipeline_assets(app: str, path: str, text: str | None) -> dict[AssetKey, str]:
    """Asset key -> its definition (canonical JSON) of one app-relative pipeline file; {}
    for a deleted, unreadable or non-pipeline file."""
    if text is None or not is_pipeline_path(path):
        return {}
    file = f"{app}/{path}"
    try:
        pipeline = PARSE_CACHE(text, file)
        targets = PipelineCheck(pipeline, file).resolve_targets(app)
    except Exception:  # noqa: BLE001 - an unreadable file defines no asset (validation says why)
        return {}
    body = _strip_locations(pipeline.model_dump(mode="json", exclude={"targets"}))
    out: dict[AssetKey, str] = {}
    for target in targets:
        ref = target.ref
        definition = {
            "pipeline": body,
            "target": _strip_locations(target.target.model_dump(mode="json")),
            "dataset": target.dataset,
        }
        out[(ref.app, ref.layer, ref.table)] = json.dumps(definition, sort_keys=True, default=str)
    return out


def plan(app: str, before: Mapping[str, str | None], after: Mapping[str, str | None]) -> dict:
    """{"added", "removed", "changed"}: sorted asset keys (lists [app, layer, table]) from
    the files' text before and after (path -> text, None: absent)."""
    old: dict[AssetKey, str] = {}
    new: dict[AssetKey, str] = {}
    for path, text in before.items():
        old.update(pipeline_assets(app, path, text))
    for path, text in after.items():
        new.update(pipeline_assets(app, path, text))
    return {
        "added": [list(k) for k in sorted(new.keys() - old.keys())],
        "removed": [list(k) for k in sorted(old.keys() - new.keys())],
        "changed": [list(k) for k in sorted(old.keys() & new.keys()) if old[k] != new[k]],
    }
