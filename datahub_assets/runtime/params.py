"""Run parameters: the run date and the named `:name` parameters a run hands its pipelines.

Where a value comes from, strongest first:
1. the run tag `datahub/param/<name>` (set on the launchpad's tags, `dagster job execute
   --tags`, or `dagster asset materialize --tags`; works for asset runs and job runs alike);
2. the job's run config (`<name>: value`, the launchpad's config editor, `-c params.yaml`);
3. the job's declared `default`.
`{{ run_date }}` in a value is the run's date: the run tag `datahub/run_date`, else the date
of the scheduled tick (`dagster/scheduled_execution_time`, set on every scheduled run), else
today in UTC. `runDate` (default `{{ run_date }}`) is the date the run uses for `:runDate` and
`%Y/%m/%d` in export paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime

from datahub_assets.spec.job_models import RUN_DATE, RUN_DATE_TEMPLATE

RUN_DATE_TAG = "datahub/run_date"
PARAM_TAG_PREFIX = "datahub/param/"
SCHEDULED_TAG = "dagster/scheduled_execution_time"


def base_run_date(tags: Mapping[str, str]) -> date:
    if tags.get(RUN_DATE_TAG):
        return date.fromisoformat(tags[RUN_DATE_TAG])
    if tags.get(SCHEDULED_TAG):
        return datetime.fromisoformat(tags[SCHEDULED_TAG]).astimezone(UTC).date()
    return datetime.now(UTC).date()


def run_parameters(
    tags: Mapping[str, str],
    declared: Mapping[str, str | None] | None = None,
    config: Mapping[str, object] | None = None,
) -> tuple[date, dict[str, str]]:
    """(run date, named parameters) of a run; raises ValueError naming a bad runDate."""
    values: dict[str, str] = {RUN_DATE: RUN_DATE_TEMPLATE}
    values.update({k: v for k, v in (declared or {}).items() if v is not None})
    values.update({k: str(v) for k, v in (config or {}).items() if v not in (None, "")})
    values.update(
        {k[len(PARAM_TAG_PREFIX) :]: v for k, v in tags.items() if k.startswith(PARAM_TAG_PREFIX)}
    )
    base = base_run_date(tags).isoformat()
    values = {k: v.replace(RUN_DATE_TEMPLATE, base) for k, v in values.items()}
    try:
        run_date = date.fromisoformat(values[RUN_DATE])
    except ValueError:
        raise ValueError(
            f"runDate={values[RUN_DATE]!r} is not a date; allowed: YYYY-MM-DD or "
            f"{RUN_DATE_TEMPLATE}"
        ) from None
    return run_date, values
