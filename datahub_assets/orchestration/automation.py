"""When assets run without a human: cron from `<schedule>`, eager after a watched raw table.

Schedules are declarative automation conditions, not one ScheduleDefinition + job per
pipeline: a schedule's job must resolve its selection against the whole asset graph, which
makes loading thousands of pipelines quadratic; a condition is evaluated by the single
automation sensor and costs nothing at load time. One condition object per distinct cron is
shared by every asset that uses it.
"""

from __future__ import annotations

import warnings
from functools import cache

import dagster as dg

from datahub_assets.orchestration.checks import check_specs
from datahub_assets.runtime.keys import asset_key
from datahub_assets.spec.models import PipelineSpec, Project, TableRef


@cache
def on_cron(cron: str) -> dg.AutomationCondition:
    """Run once at each cron tick (UTC), unless a run of the asset is already in progress."""
    return (
        dg.AutomationCondition.cron_tick_passed(cron, "UTC") & ~dg.AutomationCondition.in_progress()
    ).with_label(f"on schedule {cron}")


class UpstreamNewer(dg.AutomationCondition):
    """True while a dependency's latest materialisation is newer than this asset's own (or
    this asset was never materialised and a dependency was).

    Level-triggered, unlike `eager()`'s "a dependency updated since the last evaluation":
    eager() treats an upstream update as handled when the downstream was requested or updated
    in the same evaluation window, even by a run that started before the update
    (dagster-io/dagster#24650). File drops landing every few seconds hit that window all the
    time, and the last file of a burst would never reach the service layer. Comparing storage
    ids of the latest materialisations (observations ignored: a rejected file is observed,
    not materialised) cannot miss an update. Unpartitioned assets only (Data Hub's tables)."""

    @property
    def name(self) -> str:
        return "upstream_newer"

    def evaluate(self, context):
        queryer = context.asset_graph_view.get_inner_queryer_for_back_compat()

        def latest(key: dg.AssetKey) -> int | None:
            record = queryer.get_asset_record(key)
            event = record.asset_entry.last_materialization_record if record else None
            return event.storage_id if event else None

        own = latest(context.key)
        parents = context.asset_graph.get(context.key).parent_keys
        newer = any((p := latest(key)) is not None and (own is None or p > own) for key in parents)
        return dg.AutomationResult(
            context, context.candidate_subset if newer else context.get_empty_subset()
        )


@cache
def after_upstream() -> dg.AutomationCondition:
    """Run when a dependency has newer data than this asset (`UpstreamNewer`), or together
    with a dependency that runs now; never while it or a dependency is in progress or missing.
    After a failed run it waits for the next upstream update instead of retrying every tick."""
    c = dg.AutomationCondition
    return (
        c.in_latest_time_window()
        & (
            (UpstreamNewer() & ~c.execution_failed())
            | (c.any_deps_updated() & c.execution_failed())
            | c.any_deps_match(c.will_be_requested())
        )
        & ~c.any_deps_missing()
        & ~c.any_deps_in_progress()
        & ~c.in_progress()
    ).with_label("after upstream changes")


def watched_closure(project: Project) -> set[TableRef]:
    """Tables downstream (transitively) of a raw pipeline with a `<watch>` file source."""
    readers: dict[TableRef, list[PipelineSpec]] = {}
    for spec in project.pipelines:
        for ref in spec.upstream:
            readers.setdefault(ref, []).append(spec)
    frontier = [t.ref for spec in project.pipelines if spec.watched_sources for t in spec.targets]
    seen: set[TableRef] = set()
    while frontier:
        ref = frontier.pop()
        for spec in readers.get(ref, []):
            for target in spec.targets:
                if target.ref not in seen:
                    seen.add(target.ref)
                    frontier.append(target.ref)
    return seen


def condition_for(
    spec: PipelineSpec, downstream_of_watch: set[TableRef], ref: TableRef
) -> dg.AutomationCondition | None:
    if spec.pipeline.metadata.schedule:
        return on_cron(spec.pipeline.metadata.schedule)
    if ref in downstream_of_watch:
        return after_upstream()
    return None


MAX_ENTITIES_PER_SENSOR = 450
"""Assets + checks per user-code automation sensor (Dagster refuses more than 500)."""


def followers(project: Project, downstream_of_watch: set[TableRef]) -> list[PipelineSpec]:
    """Pipelines whose assets use `after_upstream()` (downstream of a watch, no schedule)."""
    return [
        spec
        for spec in project.pipelines
        if not spec.pipeline.metadata.schedule
        and any(t.ref in downstream_of_watch for t in spec.targets)
    ]


def automation_sensors(project: Project) -> list[dg.AutomationConditionSensorDefinition]:
    """`datahub_automation` evaluates the built-in conditions (cron) in the daemon, for any
    number of assets; `UpstreamNewer` is Python, so the assets that follow file drops are
    evaluated on the code server by `datahub_follow_<n>` sensors of at most 450 assets and
    checks each. All run by default."""
    chunks: list[list[dg.AssetKey]] = []
    size = MAX_ENTITIES_PER_SENSOR
    for spec in followers(project, watched_closure(project)):
        entities = len(spec.targets) + len(check_specs(spec))
        if size + entities > MAX_ENTITIES_PER_SENSOR:
            chunks.append([])
            size = 0
        chunks[-1].extend(asset_key(t.ref) for t in spec.targets)
        size += entities
    follow_keys = [key for chunk in chunks for key in chunk]
    sensors = [
        dg.AutomationConditionSensorDefinition(
            "datahub_automation",
            target=dg.AssetSelection.all() - dg.AssetSelection.assets(*follow_keys),
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
    ]
    with warnings.catch_warnings():  # use_user_code_server is a beta parameter
        warnings.simplefilter("ignore", dg.BetaWarning)
        for n, chunk in enumerate(chunks):
            sensors.append(
                dg.AutomationConditionSensorDefinition(
                    f"datahub_follow_{n}",
                    target=dg.AssetSelection.assets(*chunk),
                    default_status=dg.DefaultSensorStatus.RUNNING,
                    use_user_code_server=True,
                    description="Materialises assets downstream of file drops when an upstream "
                    "table has newer data (condition `after upstream changes`).",
                )
            )
    return sensors
