"""When assets run without a human: cron from `<schedule>`, eager after a watched raw table.

Schedules are declarative automation conditions, not one ScheduleDefinition + job per
pipeline: a schedule's job must resolve its selection against the whole asset graph, which
makes loading thousands of pipelines quadratic; a condition is evaluated by the single
automation sensor and costs nothing at load time. One condition object per distinct cron is
shared by every asset that uses it.
"""

from __future__ import annotations

from functools import cache

import dagster as dg

from datahub_assets.spec.models import FILE_SOURCE_KINDS, PipelineSpec, Project, TableRef


@cache
def on_cron(cron: str) -> dg.AutomationCondition:
    """Run once at each cron tick (UTC), unless a run of the asset is already in progress."""
    return (
        dg.AutomationCondition.cron_tick_passed(cron, "UTC")
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"on schedule {cron}")


@cache
def after_upstream() -> dg.AutomationCondition:
    return dg.AutomationCondition.eager().with_label("after upstream changes")


def watched_closure(project: Project) -> set[TableRef]:
    """Tables downstream (transitively) of a raw pipeline with a `<watch>` file source."""
    readers: dict[TableRef, list[PipelineSpec]] = {}
    for spec in project.pipelines:
        for ref in spec.upstream:
            readers.setdefault(ref, []).append(spec)
    frontier = [
        t.ref
        for spec in project.pipelines
        if any(getattr(s, "watch", None) is not None and s.kind in FILE_SOURCE_KINDS
               for s in spec.pipeline.sources)
        for t in spec.targets
    ]
    seen: set[TableRef] = set()
    while frontier:
        ref = frontier.pop()
        for spec in readers.get(ref, []):
            for target in spec.targets:
                if target.ref not in seen:
                    seen.add(target.ref)
                    frontier.append(target.ref)
    return seen


def condition_for(spec: PipelineSpec, downstream_of_watch: set[TableRef],
                  ref: TableRef) -> dg.AutomationCondition | None:
    if spec.pipeline.metadata.schedule:
        return on_cron(spec.pipeline.metadata.schedule)
    if ref in downstream_of_watch:
        return after_upstream()
    return None
