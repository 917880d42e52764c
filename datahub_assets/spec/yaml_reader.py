"""Read the YAML form of a pipeline (contract section 5) and an app's `app.yaml` (section 7).

The document is composed into nodes (not loaded), so every key keeps its line; scalars keep
the text as written (`version: 1.0` stays "1.0") and pydantic coerces them exactly as it
does XML attribute text, which makes both forms produce equal models.
"""

from __future__ import annotations

import json
import re
import typing
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.constructor import SafeConstructor
from yaml.error import MarkedYAMLError
from yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from datahub_assets.spec.errors import LocMap, SpecError, SpecErrors, Where, from_validation_error
from datahub_assets.spec.limits import MAX_NESTING, size_problem
from datahub_assets.spec.models import (
    AppConfig,
    Check,
    Connection,
    Incremental,
    Metadata,
    Pipeline,
    Source,
    Target,
    Transformation,
    Watch,
)
from datahub_resources.settings import env_value

TARGET_ALIASES = {"hive": "table", "iceberg": "table"}
SECTIONS = ("sources", "transformations", "targets", "checks")
TOP_KEYS = ("pipeline", "metadata", *SECTIONS)
_NULL = "tag:yaml.org,2002:null"


def _members(union: Any) -> dict[str, type[BaseModel]]:
    classes = typing.get_args(typing.get_args(union)[0])
    return {cls.model_fields["kind"].default: cls for cls in classes}


KINDS: dict[str, dict[str, type[BaseModel]]] = {
    "sources": _members(Source),
    "transformations": _members(Transformation),
    "targets": _members(Target),
    "checks": _members(Check),
}


def yaml_keys(model: type[BaseModel]) -> list[str]:
    """The keys a YAML mapping for `model` may use."""
    fields = model.model_fields.items()
    keys = [f.alias or name for name, f in fields if name not in ("loc", "kind")]
    return ["table" if k == "tableName" else k for k in keys]


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.locs: LocMap = {}
        self.errors: list[SpecError] = []

    def err(self, node: Node, message: str) -> None:
        mark = node.start_mark
        self.errors.append(SpecError(self.file, mark.line + 1, mark.column + 1, message))

    def mark(self, path: tuple, node: Node, element: str | None = None) -> dict:
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        self.locs[path] = Where(line, col, element)
        return {"file": self.file, "line": line, "column": col}

    def value(self, node: Node, path: tuple) -> Any:
        if isinstance(node, ScalarNode):
            return None if node.tag == _NULL else node.value
        if isinstance(node, SequenceNode):
            return [self.value(item, (*path, i)) for i, item in enumerate(node.value)]
        return {key: self.value(val, (*path, key)) for key, _, val in self.pairs(node, path)}

    def pairs(self, node: Node, path: tuple) -> list[tuple[str, Node, Node]]:
        """(key, key node, value node) of a mapping, recording each key's line."""
        if not isinstance(node, MappingNode):
            self.err(node, f"expected a mapping (key: value) at {'.'.join(map(str, path))}")
            return []
        out, seen = [], set()
        for key_node, val_node in node.value:
            key = str(key_node.value)
            if key in seen:
                self.err(key_node, f'duplicate key "{key}"')
            seen.add(key)
            self.mark((*path, key), key_node)
            out.append((key, key_node, val_node))
        return out

    def locate_items(self, items: list, path: tuple) -> None:
        """Give each mapping in a list (e.g. a table target's `columns`) the line of its
        first key, so rules about one item point at it."""
        for i, item in enumerate(items):
            first = next(iter(item), None) if isinstance(item, dict) else None
            where = self.locs.get((*path, i, first)) if first is not None else None
            if where is not None and "loc" not in item:
                item["loc"] = {"file": self.file, "line": where.line, "column": where.column}
                self.locs[(*path, i)] = Where(where.line, where.column, "column")

    def element(self, at: Node, body: Node, path: tuple, name: str, kind: str | None) -> dict:
        data: dict[str, Any] = {"loc": self.mark(path, at, name)}
        if kind:
            data["kind"] = kind
        if isinstance(body, ScalarNode) and body.tag == _NULL:
            return data
        for key, key_node, val in self.pairs(body, path):
            sub = (*path, key)
            if key in ("incremental", "watch") and kind in KINDS["sources"]:
                if isinstance(val, ScalarNode) and val.value in ("true", "True", "yes"):
                    data[key] = {"loc": self.mark(sub, key_node, key)}
                elif isinstance(val, ScalarNode) and val.value in ("false", "False", "no"):
                    continue
                else:
                    data[key] = self.element(key_node, val, sub, key, None)
            elif key == "table" and kind == "database":
                named = self.value(val, sub)
                data["tableName"] = named.get("name") if isinstance(named, dict) else named
                self.locs[(*path, "tableName")] = self.locs[sub]
            elif (
                key in ("filter", "projection")
                and kind == "mongo"
                and not isinstance(val, ScalarNode)
            ):
                data[key] = self.json_text(val, key)
            else:
                data[key] = self.value(val, sub)
                if key in ("sql", "query") and isinstance(data[key], str):
                    data[key] = data[key].strip()
                if key == "columns" and kind == "table" and isinstance(data[key], list):
                    self.locate_items(data[key], sub)
        if kind == "table" and path[0] == "targets" and "name" in data and "table" not in data:
            data["table"] = data.pop("name")
            self.locs[(*path, "table")] = self.locs[(*path, "name")]
        return data

    def json_text(self, node: Node, key: str) -> str | None:
        """A Mongo `filter`/`projection` written as a YAML mapping or list, as JSON text;
        YAML-only values (dates, binary, sets, bad explicit tags) are located errors."""

        def refuse(value: Any) -> Any:
            raise TypeError(f"{type(value).__name__} {value!s:.80}")

        try:
            return json.dumps(SafeConstructor().construct_object(node, deep=True), default=refuse)
        except (yaml.YAMLError, ValueError, TypeError) as exc:
            reason = getattr(exc, "problem", None) or str(exc)
            self.err(
                node,
                f"{key} on mongo is not JSON ({reason}); write it with mappings, lists, "
                "strings, numbers, true/false and null: quote dates and other values "
                '("2020-01-01") or use MongoDB extended JSON ({"$date": "2020-01-01T00:00:00Z"})',
            )
            return None

    def section(self, key_node: Node, node: Node, name: str) -> list[dict]:
        if not isinstance(node, SequenceNode):
            self.err(
                key_node,
                f"{name} must be a list of single-key maps, e.g. "
                f"`- {next(iter(KINDS[name]))}: {{...}}`",
            )
            return []
        out = []
        for i, item in enumerate(node.value):
            if not isinstance(item, MappingNode) or len(item.value) != 1:
                allowed = ", ".join(
                    KINDS[name] if name != "targets" else [*KINDS[name], "hive", "iceberg"]
                )
                self.err(
                    item,
                    f"each entry of {name} must be a map with exactly one key "
                    f"naming the element; allowed: {allowed}",
                )
                continue
            tag_node, body = item.value[0]
            tag = str(tag_node.value)
            kind = TARGET_ALIASES.get(tag, tag) if name == "targets" else tag
            out.append(self.element(tag_node, body, (name, i), tag, kind))
        return out

    def pipeline(self, root: Node) -> dict:
        data: dict[str, Any] = {}
        if not isinstance(root, MappingNode):
            self.err(root, "a pipeline file must be a mapping with keys: " + ", ".join(TOP_KEYS))
            return data
        for key, key_node, val in self.pairs(root, ()):
            if key == "pipeline":
                head = self.element(key_node, val, (), "pipeline", None)
                data.update(head)
            elif key == "metadata":
                data["metadata"] = self.element(key_node, val, ("metadata",), "metadata", None)
            elif key in SECTIONS:
                data[key] = self.section(key_node, val, key)
            else:
                self.err(key_node, f'unknown key "{key}"; allowed: {", ".join(TOP_KEYS)}')
        if "loc" not in data:
            self.err(root, "missing `pipeline: {id: ..., version: ..., layer: ...}`")
        return data


class _Refused(MarkedYAMLError):
    """A YAML construct the loader refuses (spec/limits.py); `problem` says what to do."""


class _LimitedLoader(yaml.SafeLoader):
    """SafeLoader composition that refuses an alias of a list or mapping (each use would be
    read again: 10 aliases per level is 10^levels nodes; `&r [*r]` never ends) and nesting
    deeper than MAX_NESTING (the composer recurses once per level). Aliases of single
    values stay: they cost one node each."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            anchored = self.anchors.get(event.anchor)
            if anchored is not None and not isinstance(anchored, ScalarNode):
                raise _Refused(
                    problem=f"YAML alias *{event.anchor} repeats a list or mapping "
                    f"(anchored &{event.anchor} at line {anchored.start_mark.line + 1}); "
                    "aliases may name single values only (merge keys `<<: *name` "
                    "included): write the list or mapping out where it is used",
                    problem_mark=event.start_mark,
                )
            return super().compose_node(parent, index)
        if not self.check_event(SequenceStartEvent, MappingStartEvent):
            return super().compose_node(parent, index)
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                raise _Refused(
                    problem=f"nested deeper than {MAX_NESTING} levels (lists and mappings "
                    "inside each other); a definition needs a handful: flatten it",
                    problem_mark=self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _compose(text: str, file: str) -> Node:
    too_big = size_problem(len(text.encode("utf-8", "surrogatepass")))
    if too_big:
        raise SpecErrors([SpecError(file, 1, 1, too_big)])
    try:
        root = yaml.compose(text, Loader=_LimitedLoader)
    except _Refused as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise SpecErrors([SpecError(file, line, col, str(exc.problem))]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        if mark is not None:
            line, col = mark.line + 1, mark.column + 1
        else:  # a reader error (a character YAML does not allow): only an offset
            at = getattr(exc, "position", 0) or 0
            line = text.count("\n", 0, at) + 1
            col = at - (text.rfind("\n", 0, at) + 1) + 1
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc)
        raise SpecErrors([SpecError(file, line, col, f"not valid YAML: {problem}")]) from None
    if root is None:
        raise SpecErrors([SpecError(file, 1, 1, "the file is empty")])
    return root


def _model_at(data: Any, path: tuple) -> type[BaseModel] | None:
    node = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    if not path:
        return Pipeline if "id" in data or "layer" in data else AppConfig
    if path == ("metadata",):
        return Metadata
    if path[-1] in ("incremental", "watch"):
        return Incremental if path[-1] == "incremental" else Watch
    if path[0] == "connections" and len(path) == 2:
        return Connection
    if isinstance(node, dict) and path[0] in KINDS:
        return KINDS[path[0]].get(node.get("kind", ""))
    return None


def _validate(model: type[BaseModel], data: dict, builder: _Builder, file: str) -> Any:
    if builder.errors:
        raise SpecErrors(builder.errors)
    try:
        return model.model_validate(data)
    except ValidationError as exc:

        def allowed(path: tuple) -> list[str]:
            found = _model_at(data, path)
            return yaml_keys(found) if found else []

        raise SpecErrors(
            from_validation_error(exc, data, builder.locs, file, "yaml", allowed)
        ) from None


def read_pipeline_yaml(text: str, file: str) -> Pipeline:
    """Parse and validate one YAML pipeline; raises SpecErrors with every problem found."""
    builder = _Builder(file)
    data = builder.pipeline(_compose(text, file))
    return _validate(Pipeline, data, builder, file)


def read_app_yaml(text: str, file: str) -> AppConfig:
    """Parse an app's `app.yaml` (owner, tags, connections); an empty file is the defaults."""
    if not text.strip():
        return AppConfig()
    builder = _Builder(file)
    root = _compose(text, file)
    data: dict[str, Any] = {}
    if not isinstance(root, MappingNode):
        builder.err(root, "app.yaml must be a mapping with keys: owner, tags, connections")
    else:
        data = builder.value(root, ())
        data["loc"] = builder.mark((), root, "app.yaml")
        maintenance = data.get("maintenance")
        if isinstance(maintenance, dict) and ("maintenance",) in builder.locs:
            where = builder.locs[("maintenance",)]
            maintenance["loc"] = {"file": file, "line": where.line, "column": where.column}
        connections = data.get("connections")
        for name, conn in (connections if isinstance(connections, dict) else {}).items():
            where = builder.locs[("connections", name)]
            builder.locs[("connections", name)] = Where(
                where.line, where.column, f"connections.{name}"
            )
            if isinstance(conn, dict):
                conn["loc"] = {"file": file, "line": where.line, "column": where.column}
                for key, value in list(conn.items()):
                    if key != "loc" and isinstance(value, str):
                        conn[key] = _expand_env(value, builder, where, f"{name}.{key}")
    return _validate(AppConfig, data, builder, file)


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value: str, builder: _Builder, where: Where, what: str) -> str:
    """`${NAME}` / `${NAME:-default}` in a connection value, from the environment at load
    time: the same app.yaml serves laptops and production (hosts and ports differ; secrets
    still belong in *SecretRef). An unset variable without a default is a load error, and so
    is one outside the app's secrets (DATAHUB_SECRETS_ALLOW, datahub_resources/secrets.py): a
    variable's value lands in the connection, which the UI shows."""
    from datahub_resources.secrets import scope_problem

    app = builder.file.split("/", 1)[0] if "/" in builder.file else None

    def expand(m: re.Match) -> str:
        problem = scope_problem(m.group(1), app)
        if problem:
            builder.errors.append(
                SpecError(
                    builder.file,
                    where.line,
                    where.column,
                    f"connections.{what}: ${{{m.group(1)}}}: {problem}",
                )
            )
            return m.group(0)
        found = env_value(m.group(1))
        if found:
            return found
        if m.group(2) is not None:
            return m.group(2)
        builder.errors.append(
            SpecError(
                builder.file,
                where.line,
                where.column,
                f"connections.{what}: environment variable "
                f"{m.group(1)} is not set; set it or write "
                f"${{{m.group(1)}:-default}}",
            )
        )
        return m.group(0)

    return _ENV_REF.sub(expand, value)
