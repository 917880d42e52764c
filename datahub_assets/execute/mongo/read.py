"""`mongo` sources on Spark: plan on the driver, read in parallel `_id` ranges on the workers.

The driver (this module) only talks to MongoDB for metadata: the estimated document count,
the smallest and largest `_id`, and one `$sample` (the schema sample when no `schemaRef`
pins it; it also gives the split points). It then builds `spark.range(n, numPartitions=n)`
and `mapInArrow(worker.make_reader(...))`: task i opens pymongo on the Spark server's Python
worker and reads `filter AND _id in [b(i), b(i+1))`, converting documents to Arrow batches in
the target schema (`worker.py`). No document passes through the driver.

Ranges: n = ceil(estimated count / DATAHUB_MONGO_DOCS_PER_PARTITION (250,000)), at most
DATAHUB_MONGO_MAX_PARTITIONS (8). Split points are quantiles of the sampled `_id`s, sorted in
BSON order. MongoDB compares `$lt`/`$gte` within one type bracket only, so ranges are used
only when the smallest and largest `_id` (by the server's sort) are of the same bracket —
then every `_id` is (BSON sorts brackets apart); otherwise the collection is read as one
range. The first range is open below and the last open above, so every document matching the
filter is read by exactly one task.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pyspark import cloudpickle
from pyspark.sql import DataFrame
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.mongo import infer, worker
from datahub_assets.execute.schemas import schema_for
from datahub_assets.execute.sources import SourceError
from datahub_assets.spec.models import MongoSource

cloudpickle.register_pickle_by_value(worker)  # workers need pymongo + pyarrow, not Data Hub

DOCS_PER_PARTITION = 250_000
MAX_PARTITIONS = 8
BOUNDARY_SAMPLE = 32  # sampled _ids per range when the schema sample is not used
_USERINFO = re.compile(r"^mongodb(?:\+srv)?://([^@/]+)@")


# ------------------------------------------------------------------------ connection


def source_uri_ref(source: MongoSource, ctx: ExecContext) -> str:
    """The secret holding the URI: the source's own, else its app.yaml connection's."""
    spec = getattr(ctx, "spec", None)
    ref = spec.endpoint(source).uri_secret_ref if spec is not None else source.uri_secret_ref
    if not ref:
        raise SourceError(
            f"source {source.id!r}: no uriSecretRef (on the source or its "
            "connection) names the secret holding the mongodb:// URI"
        )
    return ref


def secrets_of(uri: str) -> tuple[str, ...]:
    """Strings that must never appear in a message: the URI, its user:password, password."""
    out = [uri]
    m = _USERINFO.match(uri)
    if m:
        userinfo = m.group(1)
        out.append(userinfo)
        if ":" in userinfo:
            password = userinfo.split(":", 1)[1]
            out += [password, unquote(password)]
    return tuple(sorted({s for s in out if len(s) >= 3}, key=len, reverse=True))


def mongo_client(uri: str, timeout: int = 10_000):
    """A client whose server selection and connect give up after `timeout` ms
    (DATAHUB_MONGO_TIMEOUT_MS, `Settings.mongo_timeout_ms`)."""
    from pymongo import MongoClient

    return MongoClient(
        uri, appname="datahub", serverSelectionTimeoutMS=timeout, connectTimeoutMS=timeout
    )


def parse_json(text: str | None, what: str, source_id: str) -> dict | None:
    """A filter/projection (MongoDB extended JSON: `{"$oid": ...}`, `{"$date": ...}`)."""
    if text is None or not text.strip():
        return None
    from bson import json_util

    try:
        value = json_util.loads(text)
    except (ValueError, TypeError) as exc:
        raise SourceError(f"source {source_id!r}: <{what}> is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SourceError(f"source {source_id!r}: <{what}> must be a JSON object")
    return value


def and_query(*parts: dict | None) -> dict:
    """The conjunction of filter documents (merged when their keys do not clash)."""
    parts_ = [p for p in parts if p]
    if not parts_:
        return {}
    merged: dict = {}
    for p in parts_:
        if set(p) & set(merged):
            return {"$and": parts_}
        merged.update(p)
    return merged


# ------------------------------------------------------------------------- schemas


def spark_type(t: Any) -> T.DataType:
    """An inferred type (`infer`) as a Spark type; fields nullable as inferred."""
    if isinstance(t, infer.Scalar):
        return {
            "null": T.StringType(),
            "bool": T.BooleanType(),
            "int": T.IntegerType(),
            "long": T.LongType(),
            "double": T.DoubleType(),
            "string": T.StringType(),
            "objectid": T.StringType(),
            "timestamp": T.TimestampType(),
            "binary": T.BinaryType(),
        }[t.name]
    if isinstance(t, infer.DecimalT):
        return T.DecimalType(t.precision, t.scale)
    if isinstance(t, infer.ArrayT):
        return T.ArrayType(spark_type(t.element), True)
    if isinstance(t, infer.MapT):
        return T.MapType(T.StringType(), spark_type(t.value), True)
    return T.StructType([T.StructField(f.name, spark_type(f.type), f.nullable) for f in t.fields])


def relaxed(schema: T.StructType) -> T.StructType:
    """Every field nullable at every depth (an unsampled document may lack any field)."""

    def walk(dt: T.DataType) -> T.DataType:
        if isinstance(dt, T.StructType):
            return T.StructType([T.StructField(f.name, walk(f.dataType), True) for f in dt.fields])
        if isinstance(dt, T.ArrayType):
            return T.ArrayType(walk(dt.elementType), True)
        if isinstance(dt, T.MapType):
            return T.MapType(dt.keyType, walk(dt.valueType), True)
        return dt

    out = walk(schema)
    assert isinstance(out, T.StructType)  # a struct walks to a struct
    return out


def schema_defaults(path: str | Path) -> dict[str, Any]:
    """Declared defaults of a schemaRef by dotted path: JSON Schema `default` of a property
    (nested objects too), Avro `default` of a record field."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    out: dict[str, Any] = {}

    def json_walk(node: Any, prefix: str) -> None:
        if not isinstance(node, dict):
            return
        for name, sub in (node.get("properties") or {}).items():
            dotted = f"{prefix}{name}"
            if isinstance(sub, dict):
                if "default" in sub:
                    out[dotted] = sub["default"]
                json_walk(sub, dotted + ".")

    def avro_walk(node: Any, prefix: str) -> None:
        if isinstance(node, list):
            for branch in node:
                avro_walk(branch, prefix)
            return
        if not isinstance(node, dict) or node.get("type") != "record":
            return
        for f in node.get("fields", []):
            dotted = f"{prefix}{f['name']}"
            if "default" in f:
                out[dotted] = f["default"]
            avro_walk(f.get("type"), dotted + ".")

    (avro_walk if str(path).endswith(".avsc") else json_walk)(doc, "")
    return out


def column_paths(schema: T.StructType, flatten: bool) -> dict[str, tuple[str, ...]]:
    """Output column -> document path (flattened: through embedded documents)."""
    if not flatten:
        return {f.name: (f.name,) for f in schema.fields}
    out: dict[str, tuple[str, ...]] = {}

    def walk(st: T.StructType, prefix: tuple[str, ...]) -> None:
        for f in st.fields:
            path = (*prefix, f.name)
            if isinstance(f.dataType, T.StructType):
                walk(f.dataType, path)
            else:
                out["_".join(path)] = path

    walk(schema, ())
    return out


# ---------------------------------------------------------------------- split points


def bracket(value: Any) -> str:
    """MongoDB's comparison bracket of a value (`$lt` only compares within one)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float | Decimal) or type(value).__name__ == "Decimal128":
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):
        return "date"
    if type(value).__name__ == "ObjectId":
        return "objectid"
    return "other"


def _sort_key(value: Any) -> Any:
    return value.to_decimal() if type(value).__name__ == "Decimal128" else value


def split_points(ids: list[Any], parts: int, kind: str) -> list[Any]:
    """Up to parts-1 increasing boundaries: quantiles of the sampled `_id`s of `kind`."""
    same = sorted((v for v in ids if bracket(v) == kind), key=_sort_key)
    if parts <= 1 or not same:
        return []
    out: list[Any] = []
    for j in range(1, parts):
        b = same[len(same) * j // parts]
        if not out or _sort_key(b) > _sort_key(out[-1]):
            out.append(b)
    return out


def range_queries(base: dict, points: list[Any]) -> list[dict]:
    """One query per range: (-inf, p1), [p1, p2), ..., [pk, +inf); no points: `base`."""
    if not points:
        return [base]
    bounds = [None, *points, None]
    out = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        cond = {}
        if lo is not None:
            cond["$gte"] = lo
        if hi is not None:
            cond["$lt"] = hi
        out.append(and_query(base, {"_id": cond}))
    return out


# ---------------------------------------------------------------------------- plan


@dataclass
class MongoPlan:
    """Everything the driver decided for one read; `frame()` builds the lazy DataFrame."""

    source: MongoSource
    ctx: ExecContext
    uri: str
    base_filter: dict
    projection: dict | None
    schema: T.StructType
    """Target schema (nullable fields) of the rows, before flatten."""
    defaults: dict[str, Any]
    points: list[Any]
    estimated: int
    sample: list[dict] = field(default_factory=list)
    inferred: infer.StructT | None = None

    @property
    def partitions(self) -> int:
        return len(self.points) + 1

    def error(self, exc: BaseException) -> SourceError:
        text = worker.scrub(f"{type(exc).__name__}: {exc}", secrets_of(self.uri))
        return SourceError(
            f"source {self.source.id!r}: mongo "
            f"{self.source.database}.{self.source.collection}: {text}"
        )

    def frame(self, policy: str | None, extra: dict | None = None) -> DataFrame:
        """Rows of the target schema + the worker's `__dh_*` columns (null when valid)."""
        out_schema = T.StructType(
            [T.StructField(f.name, f.dataType, True) for f in self.schema.fields]
            + [T.StructField(c, T.StringType(), True) for c in worker.EXTRA_COLUMNS]
        )
        config = {
            "uri": self.uri,
            "secrets": secrets_of(self.uri),
            "database": self.source.database,
            "collection": self.source.collection,
            "queries": range_queries(and_query(self.base_filter, extra), self.points),
            "projection": self.projection,
            "schema": self.schema,
            "arrow_schema": to_arrow_schema(out_schema, timezone="UTC"),
            "defaults": self.defaults,
            "policy": policy,
            "source_id": self.source.id,
            "undot": bool(self.projection and any("." in k for k in self.projection)),
            "batch_size": self.ctx.settings.mongo_batch_size,
        }
        n = self.partitions
        return self.ctx.spark.range(0, n, 1, n).mapInArrow(worker.make_reader(config), out_schema)


def sample_documents(coll, query: dict, size: int, projection: dict | None) -> list[dict]:
    """`size` random documents matching `query` ($sample); servers whose $match cannot
    compare some values answer nothing, then the first `size` documents are taken."""
    pipeline: list[dict] = [{"$match": query}] if query else []
    pipeline.append({"$sample": {"size": size}})
    if projection:
        pipeline.append({"$project": projection})
    docs = list(coll.aggregate(pipeline))
    if not docs and query:
        docs = list(coll.find(query, projection).limit(size))
    if projection and any("." in k for k in projection):
        docs = [worker.undot(d) for d in docs]
    return docs


def partitions_for(estimated: int, per: int = DOCS_PER_PARTITION, cap: int = MAX_PARTITIONS) -> int:
    """Read partitions for `estimated` documents: `per` documents each
    (DATAHUB_MONGO_DOCS_PER_PARTITION), at most `cap` (DATAHUB_MONGO_MAX_PARTITIONS)."""
    return max(1, min(cap, math.ceil(max(estimated, 1) / max(per, 1))))


def plan_read(
    source: MongoSource, ctx: ExecContext, extra: dict | None = None, need_sample: bool = False
) -> MongoPlan:
    """Decide schema, sample and ranges for `source` (talks to MongoDB, not to Spark)."""
    uri = ctx.secret(source_uri_ref(source, ctx))
    user_filter = parse_json(source.filter, "filter", source.id) or {}
    projection = parse_json(source.projection, "projection", source.id)
    query = and_query(user_filter, extra)
    if source.schema_ref:
        schema_path = ctx.app_path(source.schema_ref)
        schema = schema_for(ctx.spec, source.schema_ref, schema_path)
        defaults = schema_defaults(schema_path)
    else:
        schema, defaults = None, {}
    plan = MongoPlan(
        source=source,
        ctx=ctx,
        uri=uri,
        base_filter=user_filter,
        projection=projection,
        schema=schema or T.StructType([]),
        defaults=defaults,
        points=[],
        estimated=0,
    )
    try:
        settings = ctx.settings
        client = mongo_client(uri, settings.mongo_timeout_ms)
        try:
            coll = client[source.database][source.collection]
            plan.estimated = coll.estimated_document_count()
            parts = partitions_for(
                plan.estimated, settings.mongo_docs_per_partition, settings.mongo_max_partitions
            )
            if schema is None:
                plan.sample = sample_documents(coll, query, source.sample_size, projection)
                plan.inferred = infer.infer_schema(plan.sample)
                inferred = spark_type(plan.inferred)
                if not isinstance(inferred, T.StructType):  # documents infer to a struct
                    raise TypeError(f"inferred a {inferred.simpleString()}, not a struct")
                plan.schema = relaxed(inferred)
            elif parts > 1 or need_sample:
                plan.sample = sample_documents(coll, query, max(BOUNDARY_SAMPLE * parts, 128), None)
            if parts > 1:
                plan.points = _points(coll, plan.sample, parts)
        finally:
            client.close()
    except SourceError:
        raise
    except Exception as exc:
        raise plan.error(exc) from None
    if not plan.schema.fields:
        raise SourceError(
            f"source {source.id!r}: no document of "
            f"{source.database}.{source.collection} matched the filter, so no "
            "schema could be inferred; pin one with schemaRef "
            "(datahub mongo infer-schema writes it)"
        )
    ctx.log.info(
        "source %s: mongo %s.%s, ~%d documents, %d range(s)",
        source.id,
        source.database,
        source.collection,
        plan.estimated,
        plan.partitions,
    )
    return plan


def _points(coll, sample: list[dict], parts: int) -> list[Any]:
    """Split points, or [] when the `_id`s span several brackets (or too few were seen)."""
    first = list(coll.find({}, {"_id": 1}).sort("_id", 1).limit(1))
    last = list(coll.find({}, {"_id": 1}).sort("_id", -1).limit(1))
    if not first or not last:
        return []
    kind = bracket(first[0]["_id"])
    if kind == "other" or bracket(last[0]["_id"]) != kind:
        return []
    ids = [d["_id"] for d in sample if "_id" in d]
    if len(ids) < parts:  # e.g. a projection without _id: sample the _ids on their own
        sampled = sample_documents(coll, {}, max(BOUNDARY_SAMPLE * parts, 128), None)
        ids = [d["_id"] for d in sampled]
    if len(ids) < parts:
        return []
    return split_points(ids, parts, kind)


__all__ = [
    "MongoPlan",
    "and_query",
    "bracket",
    "column_paths",
    "mongo_client",
    "parse_json",
    "partitions_for",
    "plan_read",
    "range_queries",
    "relaxed",
    "sample_documents",
    "schema_defaults",
    "secrets_of",
    "spark_type",
    "split_points",
]
