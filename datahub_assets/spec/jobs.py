"""Job pipelines (contract section 6): read `<app>/jobs/*.xml|*.yaml`, then validate them
against the loaded data pipelines.

Reading is per file (XML checked against `job.xsd`, YAML composed with line numbers, both
validated into `JobPipeline`). Resolution is project-wide: every `pipelineRef` must name a
pipeline (`<id>` in the job's app, `<app>.<id>` in another), `dependsOn` must name refs of
the same job, and the order dependsOn plus data lineage impose must have no cycle. Every
problem carries file:line:col, like the data pipelines' errors.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lxml import etree  # pyright: ignore[reportAttributeAccessIssue]  # compiled, no stubs
from pydantic import ValidationError
from yaml.nodes import MappingNode

from datahub_assets.spec import xml_reader, yaml_reader
from datahub_assets.spec.errors import LocMap, SpecError, SpecErrors, Where, from_validation_error
from datahub_assets.spec.job_models import (
    RUN_DATE,
    AppNotifications,
    JobPipeline,
    JobSpec,
    JobStep,
    PipelineRef,
    WebhookNotification,
)
from datahub_assets.spec.models import PipelineSpec
from datahub_assets.spec.validate import CRON_HELP, cron_problem

JOB_XSD = Path(__file__).with_name("job.xsd")
TOP_KEYS = ("jobPipeline", "description", "schedule", "parameters", "pipelines", "notifications")


def read_job_text(text: str, file: str) -> JobPipeline:
    """Read one job pipeline; the format follows the file name's suffix."""
    return read_job_xml(text, file) if file.endswith(".xml") else read_job_yaml(text, file)


# ------------------------------------------------------------------------------ XML


@functools.cache
def _job_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(JOB_XSD)))


def read_job_xml(text: str, file: str) -> JobPipeline:
    root, lines = xml_reader.parse_checked(text, file, _job_schema(), JOB_XSD)
    conv = xml_reader._Converter(file, lines)
    data = conv.node(root, ())
    for section in xml_reader._children(root):
        name = xml_reader._local(section.tag)
        if name in ("description", "schedule"):
            data[name] = xml_reader._text(section)
            continue
        kids = xml_reader._children(section)
        data[name] = [
            conv.node(el, (name, i), xml_reader._local(el.tag) if name == "notifications" else None)
            for i, el in enumerate(kids)
        ]
    try:
        return JobPipeline.model_validate(data)
    except ValidationError as exc:
        raise SpecErrors(from_validation_error(exc, data, conv.locs, file, "xml")) from None


# ----------------------------------------------------------------------------- YAML


def read_job_yaml(text: str, file: str) -> JobPipeline:
    """`jobPipeline: {id, version}`, then `schedule`, `parameters` (list of {name, default}),
    `pipelines` (list of {id, dependsOn, onFailure, ...}), `notifications` (list of
    `- email: {...}` / `- webhook: {...}`)."""
    builder = yaml_reader._Builder(file)
    root = yaml_reader._compose(text, file)
    data: dict[str, Any] = {}
    if not isinstance(root, MappingNode):
        builder.err(root, "a job pipeline file must be a mapping with keys: " + ", ".join(TOP_KEYS))
    else:
        for key, key_node, val in builder.pairs(root, ()):
            if key == "jobPipeline":
                data.update(builder.element(key_node, val, (), "jobPipeline", None))
            elif key in TOP_KEYS:
                data[key] = builder.value(val, (key,))
                _mark_items(builder.locs, data, key, file)
            else:
                builder.err(key_node, f'unknown key "{key}"; allowed: {", ".join(TOP_KEYS)}')
        if "loc" not in data:
            builder.err(root, "missing `jobPipeline: {id: ..., version: ...}`")
    if builder.errors:
        raise SpecErrors(builder.errors)
    try:
        return JobPipeline.model_validate(data)
    except ValidationError as exc:
        raise SpecErrors(from_validation_error(exc, data, builder.locs, file, "yaml")) from None


def _mark_items(locs: LocMap, data: dict, key: str, file: str) -> None:
    """Give each list item a loc (its first key's position) and an element name for errors."""
    element = {"parameters": "parameter", "pipelines": "pipelineRef"}.get(key)
    items = data.get(key)
    if not isinstance(items, list):
        return
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not item:
            continue
        first = next(iter(item))
        where = locs.get((key, i, first), Where(0, 0))
        name = element or first
        locs[(key, i)] = Where(where.line, where.column, name)
        item.setdefault("loc", {"file": file, "line": where.line, "column": where.column})


# ------------------------------------------------------------------------ resolution


class JobCheck:
    """Resolves and validates every job of a project against its pipelines."""

    def __init__(
        self,
        specs: Iterable[PipelineSpec],
        broken_apps: set[str],
        app_notifications: dict[str, AppNotifications | None],
    ) -> None:
        self.specs = {s.key: s for s in specs}
        self.by_id: dict[str, list[str]] = {}
        for key in self.specs:
            self.by_id.setdefault(key.split(".", 1)[1], []).append(key)
        self.producer = {t.ref: s.key for s in self.specs.values() for t in s.targets}
        self.broken = broken_apps
        self.app_notifications = app_notifications
        self.errors: list[SpecError] = []

    def err(self, file: str, node: Any, message: str) -> None:
        loc = getattr(node, "loc", None)
        self.errors.append(
            SpecError(file, loc.line if loc else 0, loc.column if loc else 0, message)
        )

    def resolve(self, jobs: list[tuple[str, str, JobPipeline]]) -> list[JobSpec]:
        out, seen = [], {}
        for app, file, job in jobs:
            if (app, job.id) in seen:
                self.err(
                    file,
                    job,
                    f'job pipeline id="{job.id}" is already used by '
                    f"{seen[(app, job.id)]}; ids must be unique within app {app}",
                )
                continue
            seen[(app, job.id)] = f"{file}:{job.loc.line if job.loc else 0}"
            spec = self.job(app, file, job)
            if spec is not None:
                out.append(spec)
        return sorted(out, key=lambda j: j.name)

    def pipeline_key(self, app: str, file: str, ref: PipelineRef) -> str | None:
        key = ref.id if "." in ref.id else f"{app}.{ref.id}"
        if key in self.specs:
            return key
        if key.split(".")[0] in self.broken:
            return None  # that app's files did not parse: its errors were reported
        elsewhere = [k for k in self.by_id.get(ref.id, []) if not k.startswith(f"{app}.")]
        if "." not in ref.id and elsewhere:
            self.err(
                file,
                ref,
                f'pipelineRef id="{ref.id}" names no pipeline of app {app}; '
                f"pipeline {elsewhere[0]} is in another app: write "
                f'id="{elsewhere[0]}"',
            )
            return None
        near = difflib.get_close_matches(key, list(self.specs), n=3)
        hint = f"; near matches: {', '.join(near)}" if near else ""
        self.err(
            file, ref, f'pipelineRef id="{ref.id}" names no pipeline in the project ({key}){hint}'
        )
        return None

    def job(self, app: str, file: str, job: JobPipeline) -> JobSpec | None:
        ok = self.basics(file, job)
        nodes: dict[str, tuple[PipelineRef, str]] = {}
        for ref in job.pipelines:
            key = self.pipeline_key(app, file, ref)
            if ref.id in nodes:
                self.err(
                    file,
                    ref,
                    f'pipelineRef id="{ref.id}" appears twice in job '
                    f"{job.id}; a pipeline runs once per job",
                )
                continue
            if key is None:
                ok = False
                continue
            nodes[ref.id] = (ref, key)
        for ref, _ in nodes.values():
            for dep in ref.depends_on:
                if dep not in nodes and dep not in {r.id for r in job.pipelines}:
                    self.err(
                        file,
                        ref,
                        f'dependsOn="{dep}" on pipelineRef "{ref.id}" names '
                        "no pipelineRef of this job; allowed: "
                        + ", ".join(r.id for r in job.pipelines if r is not ref),
                    )
                    ok = False
                elif dep == ref.id:
                    self.err(file, ref, f'pipelineRef "{ref.id}" depends on itself')
                    ok = False
        if not ok:
            return None
        edges = self.edges(nodes)
        order = self.order(file, job, nodes, edges)
        if order is None:
            return None
        steps = tuple(
            JobStep(
                node=_node(rid),
                ref=nodes[rid][0],
                pipeline_key=nodes[rid][1],
                after=tuple(_node(u) for u, _ in edges[rid]),
            )
            for rid in order
        )
        defaults = self.app_notifications.get(app)
        notify = job.notifications or (defaults.targets if defaults else ())
        return JobSpec(
            app=app,
            file=file,
            line=job.loc.line if job.loc else 0,
            job=job,
            steps=steps,
            notifications=notify,
        )

    def basics(self, file: str, job: JobPipeline) -> bool:
        n = len(self.errors)
        if job.schedule is not None:
            problem = cron_problem(job.schedule)
            if problem:
                self.err(
                    file,
                    job,
                    f'<schedule> "{job.schedule}" is not a cron expression: {problem}; '
                    + CRON_HELP,
                )
        names: set[str] = set()
        for p in job.parameters:
            if p.name in names:
                self.err(file, p, f'parameter name="{p.name}" is declared twice')
            if p.name == "watermark":
                self.err(
                    file,
                    p,
                    'parameter name="watermark" is reserved (an incremental '
                    "source's committed watermark)",
                )
            names.add(p.name)
        for ref in job.pipelines:
            if (
                ref.on_failure != "retry"
                and {"max_retries", "retry_delay_seconds"} & ref.model_fields_set
            ):
                self.err(
                    file,
                    ref,
                    f'maxRetries/retryDelaySeconds on pipelineRef "{ref.id}" '
                    f'have no effect with onFailure="{ref.on_failure}"; they '
                    'apply to onFailure="retry"',
                )
        for target in job.notifications:
            if isinstance(target, WebhookNotification):
                webhook_problem(self, file, target)
        return len(self.errors) == n

    def edges(self, nodes: dict[str, tuple[PipelineRef, str]]) -> dict[str, list[tuple]]:
        """node -> [(upstream node, why)]: dependsOn, plus data lineage between the job's
        pipelines (followed through pipelines outside the job)."""
        member = {key: rid for rid, (_, key) in nodes.items()}
        out: dict[str, list[tuple]] = {}
        for rid, (ref, key) in nodes.items():
            ups = {dep: "dependsOn" for dep in ref.depends_on}
            for up_key in self.upstream_members(key, member):
                ups.setdefault(member[up_key], "lineage")
            out[rid] = sorted(ups.items())
        return out

    def upstream_members(self, key: str, member: dict[str, str]) -> set[str]:
        found, seen, todo = set(), {key}, [key]
        while todo:
            for ref in self.specs[todo.pop()].upstream:
                up = self.producer.get(ref)
                if up is None or up in seen:
                    continue
                seen.add(up)
                if up in member:
                    found.add(up)
                else:
                    todo.append(up)
        return found

    def order(self, file: str, job: JobPipeline, nodes: dict, edges: dict) -> list[str] | None:
        """Topological order (stable: as written); a cycle is reported as a path."""
        done: list[str] = []
        state: dict[str, int] = {}

        def visit(rid: str, stack: list[str]) -> bool:
            if state.get(rid) == 2:
                return True
            if state.get(rid) == 1:
                cycle = [*stack[stack.index(rid) :], rid]
                why = {(a, b): w for a in nodes for b, w in edges[a]}
                verb = {"dependsOn": "dependsOn", "lineage": "reads a table of"}
                steps = ", ".join(
                    f"{a} {verb[why[(a, b)]]} {b}" for a, b in zip(cycle, cycle[1:], strict=False)
                )
                self.err(
                    file,
                    nodes[rid][0],
                    f"job {job.id}: pipelines form a cycle: {' -> '.join(cycle)} ({steps})",
                )
                return False
            state[rid] = 1
            for up, _ in edges[rid]:
                if not visit(up, [*stack, rid]):
                    return False
            state[rid] = 2
            done.append(rid)
            return True

        for rid in nodes:
            if not visit(rid, []):
                return None
        return done


def webhook_problem(check: JobCheck | Any, file: str, target: WebhookNotification) -> None:
    if (target.url is None) == (target.url_secret_ref is None):
        check.err(file, target, "<webhook> needs exactly one of url= or urlSecretRef=")
    elif target.url is not None and not target.url.startswith(("http://", "https://")):
        check.err(file, target, f'url="{target.url}" on <webhook> is not an http(s) URL')


def _node(ref_id: str) -> str:
    return ref_id.replace(".", "__")


def job_parameters(jobs: list[tuple[str, str, JobPipeline]]) -> dict[str, frozenset[str]]:
    """`<app>.<pipeline id>` -> the parameter names every job running it declares (what its
    database <sql> may use besides :runDate and :watermark)."""
    out: dict[str, frozenset[str]] = {}
    for app, _, job in jobs:
        names = frozenset({RUN_DATE, *(p.name for p in job.parameters)})
        for ref in job.pipelines:
            key = ref.id if "." in ref.id else f"{app}.{ref.id}"
            out[key] = out[key] & names if key in out else names
    return out
