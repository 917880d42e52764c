"""`datahub mongo infer-schema <app.pipeline> [--source ID] [--out PATH]`.

Samples `sampleSize` documents of a pipeline's mongo source (its filter and projection
applied), infers their schema (`infer.py`) and writes it as a JSON Schema file, by default
`<app>/schemas/<source id>.json`, which `schemaRef` pins (`execute.schemas.load_schema`
reads it). No Spark session is opened.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from datahub_resources import secrets
from datahub_resources.settings import Settings


class MongoCommandError(ValueError):
    """A bad pipeline/source name or a failed read; never holds the connection URI."""


def add_parser(sub) -> None:
    mongo = sub.add_parser("mongo", help="MongoDB sources: infer a pinnable schema")
    actions = mongo.add_subparsers(dest="mongo_command", required=True)
    infer_ = actions.add_parser(
        "infer-schema",
        help="sample a mongo source and write its JSON Schema under the app's "
        "schemas/ (pin it with schemaRef)",
    )
    infer_.add_argument("pipeline", help="<app>.<pipeline id>")
    infer_.add_argument(
        "--source", default=None, help="mongo source id (needed when the pipeline has several)"
    )
    infer_.add_argument(
        "--out", default=None, help="output file (default: <app>/schemas/<source id>.json)"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    path, count, fields = infer_schema_file(settings, args.pipeline, args.source, args.out)
    app_dir = settings.pipelines_dir / args.pipeline.split(".", 1)[0]
    try:
        shown = path.relative_to(app_dir)
    except ValueError:
        shown = path
    sys.stdout.write(
        f"wrote {path} ({fields} top-level field(s) from {count} sampled "
        f'document(s)); pin it with schemaRef="{shown}"\n'
    )
    return 0


def infer_schema_file(
    settings: Settings, pipeline: str, source_id: str | None = None, out: str | None = None
) -> tuple[Path, int, int]:
    """(written file, documents sampled, top-level fields)."""
    from datahub_assets.execute.mongo import infer
    from datahub_assets.execute.mongo.read import (
        mongo_client,
        parse_json,
        sample_documents,
        secrets_of,
    )
    from datahub_assets.execute.mongo.worker import scrub
    from datahub_assets.execute.schemas import load_schema
    from datahub_assets.spec.loader import load_project

    project = load_project(settings.pipelines_dir)
    spec = next((p for p in project.pipelines if p.key == pipeline), None)
    if spec is None:
        raise MongoCommandError(f"no pipeline {pipeline!r} (write it as <app>.<pipeline id>)")
    sources = [s for s in spec.pipeline.sources if s.kind == "mongo"]
    if source_id is not None:
        sources = [s for s in sources if s.id == source_id]
    if len(sources) != 1:
        names = ", ".join(s.id for s in spec.pipeline.sources if s.kind == "mongo") or "(none)"
        raise MongoCommandError(
            f"pipeline {pipeline!r}: choose one mongo source with --source; mongo sources: {names}"
        )
    source = sources[0]
    ref = spec.endpoint(source).uri_secret_ref
    if not ref:
        raise MongoCommandError(f"source {source.id!r}: no uriSecretRef")
    uri = secrets.resolve(ref, spec.app)
    query = parse_json(source.filter, "filter", source.id) or {}
    projection = parse_json(source.projection, "projection", source.id)
    try:
        client = mongo_client(uri)
        try:
            docs = sample_documents(
                client[source.database][source.collection], query, source.sample_size, projection
            )
        finally:
            client.close()
    except Exception as exc:
        raise MongoCommandError(
            scrub(f"source {source.id!r}: {type(exc).__name__}: {exc}", secrets_of(uri))
        ) from None
    if not docs:
        raise MongoCommandError(
            f"source {source.id!r}: no document of "
            f"{source.database}.{source.collection} matched the filter"
        )
    schema = infer.infer_schema(docs)
    doc = infer.to_json_schema(schema, f"{source.database}.{source.collection}", len(docs))
    app_dir = settings.pipelines_dir / spec.app
    path = Path(out) if out else app_dir / "schemas" / f"{source.id}.json"
    if not path.is_absolute() and out:
        path = Path.cwd() / path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    load_schema(path)  # what schemaRef will do: fails here rather than in a run
    return path, len(docs), len(schema.fields)
