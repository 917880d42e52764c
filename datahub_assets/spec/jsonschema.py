"""JSON Schema of the YAML pipeline form (contract section 5), generated from the models.

Regenerate the shipped file after a model change:
    python -m datahub_assets.spec.jsonschema
"""

from __future__ import annotations

import copy
import json
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from datahub_assets.spec.models import (
    ENGINE_NAMES,
    LAYER_ALIASES,
    LAYERS,
    Check,
    Incremental,
    Metadata,
    Pipeline,
    Source,
    Target,
    Transformation,
    Watch,
)

SCHEMA_PATH = Path(__file__).with_name("pipeline.schema.json")
SECTIONS = {
    "sources": Source,
    "transformations": Transformation,
    "targets": Target,
    "checks": Check,
}
TARGET_ALIASES = ("hive", "iceberg")
_COMMA_LIST = {
    "anyOf": [
        {"type": "string", "description": "comma-separated"},
        {"type": "array", "items": {"type": "string"}},
    ]
}
_NAMED_TABLE = {
    "type": "object",
    "properties": {"name": {"type": "string"}},
    "required": ["name"],
    "additionalProperties": False,
}


def _members(union: Any) -> list[type[BaseModel]]:
    return list(typing.get_args(typing.get_args(union)[0]))


def _is_comma_list(model: type[BaseModel], name: str) -> bool:
    for meta in model.model_fields[name].metadata:
        func = getattr(meta, "func", None)
        if func is not None and func.__name__ == "_split_commas":
            return True
    return False


def _strip_titles(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_titles(v) for k, v in node.items() if k != "title"}
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def _element(model: type[BaseModel], defs: dict) -> dict:
    """The def of one element, reshaped from pydantic's to the YAML keys."""
    schema = copy.deepcopy(defs[model.__name__])
    props: dict = schema["properties"]
    required = [r for r in schema.get("required", []) if r not in ("loc", "kind")]
    props.pop("loc", None)
    props.pop("kind", None)
    for name, info in model.model_fields.items():
        alias = info.alias or name
        if alias in props and _is_comma_list(model, name):
            props[alias] = {
                **_COMMA_LIST,
                **{k: v for k, v in props[alias].items() if k in ("default", "description")},
            }
    if "tableName" in props:  # database source/target: `table: {name: schema.table}`
        props.pop("tableName")
        props["table"] = {**_NAMED_TABLE, "description": "Full table name."}
    if "incremental" in props:
        props["incremental"] = {"$ref": "#/$defs/Incremental"}
    if "watch" in props:  # `watch: true` or `watch: {pollSeconds: 5}`
        props["watch"] = {"anyOf": [{"$ref": "#/$defs/Watch"}, {"type": "boolean"}]}
    if model.__name__ == "MongoSource":  # a JSON string or the document as YAML
        for key in ("filter", "projection"):
            props[key] = {
                "anyOf": [{"type": "string"}, {"type": "object"}],
                "description": props[key].get("description", ""),
            }
    if model.__name__ == "TableTarget":
        props["name"] = {"type": "string", "description": "Alias of `table`."}
        props["columns"] = {
            "description": props["columns"].get("description", ""),
            "anyOf": [
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "description": {"type": "string"},
                        },
                        "required": ["name", "description"],
                        "additionalProperties": False,
                    },
                },
                {"type": "object", "additionalProperties": {"type": "string"}},
            ],
        }
        required = [r for r in required if r != "table"]
        schema["anyOf"] = [{"required": ["table"]}, {"required": ["name"]}]
    schema["required"] = required
    if not required:
        schema.pop("required")
    return schema


def _list_of(section: str, union: Any) -> dict:
    choices = []
    for model in _members(union):
        kind = model.model_fields["kind"].default
        keys = [kind, *(TARGET_ALIASES if section == "targets" and kind == "table" else ())]
        ref = {"$ref": f"#/$defs/{model.__name__}"}
        for key in keys:
            choices.append(
                {
                    "type": "object",
                    "properties": {key: ref},
                    "required": [key],
                    "additionalProperties": False,
                }
            )
    return {"type": "array", "items": {"oneOf": choices}}


def yaml_json_schema() -> dict:
    """JSON Schema (draft 2020-12) for a `.yaml` data pipeline."""
    base = Pipeline.model_json_schema(by_alias=True)
    defs = base["$defs"]
    out_defs: dict[str, Any] = {}
    models = [m for union in SECTIONS.values() for m in _members(union)]
    for model in models:
        out_defs[model.__name__] = _element(model, defs)
    for model in (Incremental, Watch, Metadata):
        out_defs[model.__name__] = _element(model, defs)
    layers = [*LAYERS, *LAYER_ALIASES]
    head = {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "layer"],
        "properties": {
            "id": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
            "version": {"type": ["string", "number"], "default": "1.0.0"},
            "layer": {"enum": layers, "description": "staging = raw, standardization = silver"},
            "engine": {
                "enum": list(ENGINE_NAMES),
                "description": Pipeline.model_fields["engine"].description,
            },
        },
    }
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://datahub.example/schemas/pipeline.schema.json",
        "title": "Data Hub pipeline (YAML form)",
        "description": Pipeline.__doc__,
        "type": "object",
        "additionalProperties": False,
        "required": ["pipeline", "sources", "targets"],
        "properties": {
            "pipeline": head,
            "metadata": {"$ref": "#/$defs/Metadata"},
            **{section: _list_of(section, union) for section, union in SECTIONS.items()},
        },
        "$defs": dict(sorted(out_defs.items())),
    }
    return _strip_titles(schema) | {"title": schema["title"]}


def render() -> str:
    return json.dumps(yaml_json_schema(), indent=2) + "\n"


def write_json_schema(path: Path = SCHEMA_PATH) -> Path:
    """Write the generated schema (the shipped copy by default) and return its path."""
    path.write_text(render(), encoding="utf-8")
    return path


if __name__ == "__main__":
    write_json_schema()
