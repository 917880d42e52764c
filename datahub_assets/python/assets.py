"""`table_asset`: a Python function that returns a frame becomes a platform table asset.

    from datahub_assets.python import checks as c, table_asset

    @table_asset(layer="gold", ins={"orders": "silver.orders_enriched"}, mode="merge",
                 keys=["customer_id"], checks=[c.unique("customer_id")])
    def customer_features(orders: DataFrame) -> DataFrame:
        return orders.groupBy("customer_id").count()

gives the asset `[app, gold, customer_features]` (app: the folder `<app>/python/` it sits
in), group = layer, kinds python + iceberg, the app's owner, stored by the Iceberg IO
manager (`datahub_resources.iceberg_io`) as `<app>_gold.customer_features` through the XML
targets' write path. `ins` maps parameter names to tables (`[app.]layer.table`); the
parameter's annotation picks the frame type (Spark by default, `pyarrow.Table`,
`pandas.DataFrame`). Each check is a Dagster asset check; an `error` check is blocking.
`schema` takes a pandera schema (pandas `DataFrameSchema`/`DataFrameModel`, or the
`pandera.pyspark` ones for Spark frames): the returned frame is validated before anything
is written.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import dagster as dg

from datahub_assets.python.discovery import CURRENT
from datahub_assets.runtime.keys import SPARK_POOL  # the pool of every pipeline step
from datahub_assets.runtime.metadata import check_results
from datahub_assets.spec.check_json import to_json
from datahub_assets.spec.models import LAYER_ALIASES, LAYERS, Check, TableRef, TableTarget
from datahub_resources.iceberg_io import IO_MANAGER_KEY, take_outcome

WRITE_MODES = ("append", "overwrite", "merge")


def table_key(app: str, ref: str) -> dg.AssetKey:
    """`[app.]layer.table` -> the asset key `[app, layer, table]`."""
    parts = ref.split(".")
    if len(parts) == 2:
        parts = [app, *parts]
    if len(parts) != 3:
        raise ValueError(f"{ref!r} is not a table reference: [app.]layer.table")
    parts[1] = LAYER_ALIASES.get(parts[1], parts[1])
    if parts[1] not in LAYERS:
        raise ValueError(f"{ref!r}: layer {parts[1]!r} is not one of {', '.join(LAYERS)}")
    return dg.AssetKey(parts)


def _code_references(path: str, line: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.CodeReferencesMetadataValue(
            code_references=[
                dg.LocalFileCodeReference(file_path=path, line_number=line, label="Python asset")
            ]
        )


def _validate_schema(schema: Any, value: Any, where: str) -> Any:
    """The frame validated by a pandera schema (lazy: every failure reported at once)."""
    import pandera.errors

    try:
        out = schema.validate(value, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        raise dg.Failure(
            f"{where}: the returned frame does not match its pandera schema; nothing was "
            f"written:\n{exc.failure_cases.head(20).to_string()}",
            allow_retries=False,
        ) from None
    errors = getattr(getattr(out, "pandera", None), "errors", None)
    if errors:  # pandera.pyspark reports on the frame instead of raising
        raise dg.Failure(
            f"{where}: the returned Spark frame does not match its pandera schema; nothing "
            f"was written: {dict(errors)}",
            allow_retries=False,
        )
    return out


def table_asset(
    *,
    layer: str,
    name: str | None = None,
    app: str | None = None,
    ins: Mapping[str, str] | None = None,
    deps: Sequence[str] = (),
    mode: Literal["append", "overwrite", "merge"] = "overwrite",
    keys: Sequence[str] = (),
    partition_by: Sequence[str] = (),
    checks: Sequence[Check] = (),
    schema: Any = None,
    description: str | None = None,
    owners: Sequence[str] | None = None,
    tags: Mapping[str, str] | None = None,
    automation_condition: dg.AutomationCondition | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """A table asset `[app, layer, name]` from a function returning a frame (see the module
    doc). `deps` are tables read without being loaded (lineage only); `metadata` is added to
    the asset's."""
    importing = CURRENT.get()
    app = app or (importing.app if importing else None)
    if not app:
        raise ValueError(
            "table_asset: app= is needed outside <pipelines>/<app>/python/ (there the folder "
            "names the app)"
        )
    layer = LAYER_ALIASES.get(layer, layer)
    if layer not in LAYERS:
        raise ValueError(f"table_asset: layer {layer!r} is not one of {', '.join(LAYERS)}")
    # the write settings, validated now (not in a run): a bad mode fails the load
    if mode not in WRITE_MODES:
        raise ValueError(f"table_asset: mode {mode!r} is not one of {', '.join(WRITE_MODES)}")
    TableTarget(table=name or "t", mode=mode, keys=tuple(keys), partition_by=tuple(partition_by))
    if mode == "merge" and not keys:
        raise ValueError("table_asset: mode='merge' needs keys=[...]")

    def decorate(fn: Callable[..., Any]) -> dg.AssetsDefinition:
        table = name or fn.__name__
        ref = TableRef(app=app, layer=layer, table=table)  # pyright: ignore[reportArgumentType] - layer checked above
        key = dg.AssetKey(ref.asset_path)
        line = fn.__code__.co_firstlineno
        file = importing.file if importing else fn.__code__.co_filename
        where = f"{file}:{line}"
        meta: dict[str, Any] = {
            "datahub/definition": where,
            "dagster/code_references": _code_references(fn.__code__.co_filename, line),
            "dagster/table_name": f"datahub.{ref.identifier}",
            "datahub/write_mode": mode,
            "datahub/checks": to_json(tuple(checks)),
            **({"datahub/keys": ",".join(keys)} if keys else {}),
            **({"datahub/partition_by": ",".join(partition_by)} if partition_by else {}),
            **(metadata or {}),
        }
        check_specs = [
            dg.AssetCheckSpec(
                name=c.check_name,
                asset=key,
                blocking=c.severity == "error",
                description=f"{c.kind} ({c.severity})",
                metadata={"datahub/definition": where, "datahub/severity": c.severity},
            )
            for c in checks
        ]
        default_owners = [importing.owner] if importing and importing.owner else []

        @functools.wraps(fn)
        def body(*args, **kwargs):
            value = fn(*args, **kwargs)
            if schema is not None:
                value = _validate_schema(schema, value, where)
            yield dg.Output(value)  # the IO manager stores it now (write-audit-publish)
            if check_specs:
                context = dg.AssetExecutionContext.get()
                outcome = take_outcome(context.run.run_id, key)
                if outcome is None:
                    raise dg.Failure(
                        f"{where}: no check results: the output was not stored by the "
                        f"Iceberg IO manager (resource {IO_MANAGER_KEY!r})"
                    )
                yield from check_results(outcome, published=True, key=key)

        return dg.asset(
            key=key,
            # inputs are read by this IO manager whoever wrote them (XML assets store nothing)
            ins={
                param: dg.AssetIn(key=table_key(app, r), input_manager_key=IO_MANAGER_KEY)
                for param, r in (ins or {}).items()
            },
            deps=[table_key(app, r) for r in deps],
            group_name=layer,
            io_manager_key=IO_MANAGER_KEY,
            kinds={"python", "iceberg"},
            owners=list(owners) if owners is not None else default_owners,
            tags={"datahub/app": app, "datahub/layer": layer, **(tags or {})},
            description=description or (fn.__doc__ or "").strip() or f"Python asset {where}",
            metadata=meta,
            check_specs=check_specs,
            automation_condition=automation_condition,
            pool=SPARK_POOL,
            # a run record per Python asset (runs/records.py), like the XML pipelines' steps
            op_tags={"datahub/pipeline": f"{app}.python.{table}"},
        )(body)

    return decorate
