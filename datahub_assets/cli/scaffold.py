"""`datahub new`: start an app or a pipeline definition from a template.

`new_app` writes `<pipelines>/<app>/app.yaml`; `new_pipeline` writes
`<pipelines>/<app>/<layer>/<id>.xml` (or `.yaml`) for one source kind and one target kind,
then loads and validates the whole project (the same loader as `datahub validate` and the
definitions). A template that would not validate is removed again and the errors are
reported, so a scaffold never leaves the project broken. Templates satisfy the loader's rules
(spec/validate.py): a database source names a jdbcUrl and a secret, an incremental source
writes to a merge target with keys, a `table` source references an existing table, a
`<watch/>` only goes on a raw-layer file source with a table target.

Why not `dg scaffold defs`: that command creates component instances (a folder with a
`defs.yaml`) under the `dg` defs folder; pipelines are not component instances but files of
the one `DataHubPipelines` instance's folder, `pipelines_xml/<app>/<layer>/`, which `dg`
cannot address.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from datahub_assets.spec.errors import SpecErrors
from datahub_assets.spec.loader import APP_NAME, load_project
from datahub_assets.spec.models import LAYERS, Project

SOURCES = ("csv", "json", "parquet", "database", "mongo", "table")
TARGETS = ("table", "csv", "database")
FILE_SOURCES = ("csv", "json", "parquet")
PIPELINE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

APP_YAML = """\
# {app}: application settings (docs/pipelines.md, contract section 7). All optional.
owner: {owner}
tags:
  domain: {app}
# Connections that sources and targets name with connection="...": URLs here, credentials
# only in the secrets their *SecretRef names (environment variables).
# connections:
#   {app}_db: {{jdbcUrl: "jdbc:postgresql://localhost:5432/{app}", userSecretRef: {secret}_DB}}
#   {app}_mongo: {{uriSecretRef: {secret}_MONGO_URI}}
"""


class ScaffoldError(ValueError):
    """A request that cannot be scaffolded (bad name, existing file, invalid result)."""


@dataclass(frozen=True)
class Request:
    app: str
    layer: str
    id: str
    source: str
    target: str
    ref: str | None = None  # table source: <app>.<layer>.<table>
    incremental: str | None = None  # database source: watermark column
    keys: str | None = None  # merge keys (incremental)
    owner: str | None = None

    @property
    def secret(self) -> str:
        return self.app.upper()


def new_app(pipelines_dir: Path, app: str, owner: str | None = None) -> Path:
    if not APP_NAME.match(app):
        raise ScaffoldError(
            f'app name "{app}" is not valid; allowed: [a-z][a-z0-9_]* '
            "(lower-case letters, digits, _; a letter first)"
        )
    path = pipelines_dir / app / "app.yaml"
    if path.exists():
        raise ScaffoldError(f"{path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        APP_YAML.format(app=app, owner=owner or f"{app}-team", secret=app.upper()), encoding="utf-8"
    )
    return path


def _check(req: Request) -> None:
    if not APP_NAME.match(req.app):
        raise ScaffoldError(f'app name "{req.app}" is not valid; allowed: [a-z][a-z0-9_]*')
    if req.layer not in LAYERS:
        raise ScaffoldError(f'layer "{req.layer}" is not valid; allowed: {", ".join(LAYERS)}')
    if not PIPELINE_ID.match(req.id):
        raise ScaffoldError(
            f'pipeline id "{req.id}" is not valid; allowed: letters, digits '
            "and _, not starting with a digit"
        )
    if req.source not in SOURCES:
        raise ScaffoldError(f"--source {req.source} is not valid; allowed: {', '.join(SOURCES)}")
    if req.target not in TARGETS:
        raise ScaffoldError(f"--target {req.target} is not valid; allowed: {', '.join(TARGETS)}")
    if req.incremental and req.source != "database":
        raise ScaffoldError(
            "--incremental is for --source database (file sources are read "
            "once per file with <watch/>)"
        )
    if req.incremental and req.target != "table":
        raise ScaffoldError(
            "--incremental needs --target table: an incremental source "
            "re-reads rows at the watermark, so it must merge into an Iceberg "
            "table on keys"
        )
    if req.incremental and not req.keys:
        raise ScaffoldError("--incremental needs --keys (the merge key columns of the table)")
    if req.ref and req.source != "table":
        raise ScaffoldError("--ref is for --source table")


def _default_ref(project: Project | None, req: Request) -> str:
    """The newest table of the same app in a lower layer (then any layer) to read from."""
    if project is None:
        raise ScaffoldError("--source table needs --ref <app>.<layer>.<table>")
    order = {layer: i for i, layer in enumerate(LAYERS)}
    tables = [
        t.ref
        for p in project.pipelines
        if p.app == req.app
        for t in p.targets
        if t.target.kind == "table"
    ]
    lower = [r for r in tables if order[r.layer] < order[req.layer]] or tables
    if not lower:
        raise ScaffoldError(
            f"--source table needs --ref <app>.<layer>.<table>: app "
            f'"{req.app}" has no table yet to read from'
        )
    best = max(lower, key=lambda r: order[r.layer])
    return f"{best.app}.{best.layer}.{best.table}"


def _source_xml(req: Request, ref: str | None) -> str:
    sid = "src"
    watch = req.layer == "raw" and req.target == "table"
    if req.source in FILE_SOURCES:
        extra = ' header="true"' if req.source == "csv" else ""
        path = f"landing/{req.id}/*.{req.source}"
        body = ("><watch/></" + req.source + ">") if watch else "/>"
        note = (
            "    <!-- path is under DATAHUB_DATA_DIR/<app>/; <watch/> ingests each dropped "
            "file once -->\n"
            if watch
            else "    <!-- path is under DATAHUB_DATA_DIR/<app>/ (or s3://...) -->\n"
        )
        return f'{note}    <{req.source} id="{sid}" path="{path}"{extra}{body}'
    if req.source == "database":
        inc = f'\n      <incremental column="{req.incremental}"/>' if req.incremental else ""
        return (
            f"    <!-- credentials: the environment variable {req.secret}_DB holds "
            f'"user:password"; or connection="..." from app.yaml -->\n'
            f'    <database id="{sid}" jdbcUrl="jdbc:postgresql://localhost:5432/{req.app}"'
            f' userSecretRef="{req.secret}_DB">\n'
            f'      <table name="public.{req.id}"/>{inc}\n    </database>'
        )
    if req.source == "mongo":
        return (
            f"    <!-- the environment variable {req.secret}_MONGO_URI holds the "
            f"mongodb:// URI -->\n"
            f'    <mongo id="{sid}" database="{req.app}" collection="{req.id}" '
            f'uriSecretRef="{req.secret}_MONGO_URI"/>'
        )
    return f'    <table id="{sid}" ref="{ref}"/>'


def _target_xml(req: Request) -> str:
    if req.target == "table":
        if req.incremental:
            return f'    <table table="{req.id}" mode="merge" keys="{req.keys}"/>'
        mode = "append" if req.layer == "raw" and req.source in FILE_SOURCES else "overwrite"
        return f'    <table table="{req.id}" mode="{mode}"/>'
    if req.target == "csv":
        return f'    <csv name="{req.id}_csv" path="service/{req.id}/%Y/%m/%d" mode="overwrite"/>'
    return (
        f'    <database id="{req.id}_db" jdbcUrl="jdbc:postgresql://localhost:5432/'
        f'{req.app}" userSecretRef="{req.secret}_DB" mode="overwrite">\n'
        f'      <table name="public.{req.id}"/>\n    </database>'
    )


def render_xml(req: Request, ref: str | None = None) -> str:
    checks = '  <checks>\n    <rowCount min="1"/>\n  </checks>\n' if req.target == "table" else ""
    return (
        f'<pipeline id="{req.id}" version="1.0.0" layer="{req.layer}">\n'
        f"  <metadata>\n    <owner>{req.owner or req.app + '-team'}</owner>\n"
        f"    <description>TODO: what {req.id} produces</description>\n"
        f"    <!-- <schedule>0 * * * *</schedule> -->\n  </metadata>\n"
        f"  <sources>\n{_source_xml(req, ref)}\n  </sources>\n"
        f"  <!-- <transformations> ... </transformations>: docs/pipelines.md 4.2 -->\n"
        f"  <targets>\n{_target_xml(req)}\n  </targets>\n{checks}</pipeline>\n"
    )


def _load(pipelines_dir: Path) -> Project | None:
    try:
        return load_project(pipelines_dir)
    except SpecErrors:
        return None


def new_pipeline(pipelines_dir: Path, req: Request) -> tuple[Path, Project]:
    """Write the pipeline file, validate the project with it; remove it again if invalid."""
    _check(req)
    app_dir = pipelines_dir / req.app
    path = app_dir / req.layer / f"{req.id}.xml"
    existing = [p for p in (app_dir / req.layer).glob(f"{req.id}.*")] if app_dir.exists() else []
    if existing:
        raise ScaffoldError(f"{existing[0]} already exists")
    before = _load(pipelines_dir) if pipelines_dir.exists() else None
    ref = req.ref or (_default_ref(before, req) if req.source == "table" else None)
    if not (app_dir / "app.yaml").exists() and not app_dir.exists():
        new_app(pipelines_dir, req.app, req.owner)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_xml(req, ref), encoding="utf-8")
    try:
        project = load_project(pipelines_dir)
    except SpecErrors as exc:
        path.unlink()
        raise ScaffoldError(
            f"the new pipeline would not validate, so it was not kept:\n{exc}"
        ) from exc
    return path, project


# ------------------------------------------------------------------ `datahub new`
def add_parser(sub: argparse._SubParsersAction) -> None:
    new = sub.add_parser("new", help="start an app or a pipeline definition from a template")
    kinds = new.add_subparsers(dest="kind", required=True)
    app = kinds.add_parser("app", help="<pipelines>/<name>/app.yaml")
    app.add_argument("name", help="app name: [a-z][a-z0-9_]*")
    app.add_argument("--owner", default=None, help="default owner (default: <name>-team)")
    pipe = kinds.add_parser("pipeline", help="<pipelines>/<app>/<layer>/<id>.xml, validated")
    pipe.add_argument("app")
    pipe.add_argument("layer", choices=LAYERS)
    pipe.add_argument("id", help="pipeline id, also the name of its table")
    pipe.add_argument("--source", choices=SOURCES, default="csv")
    pipe.add_argument("--target", choices=TARGETS, default="table")
    pipe.add_argument(
        "--ref",
        default=None,
        help="with --source table: <app>.<layer>.<table> "
        "to read (default: the app's newest table in a lower layer)",
    )
    pipe.add_argument(
        "--incremental",
        metavar="COLUMN",
        default=None,
        help="with --source database: read only rows above the watermark column",
    )
    pipe.add_argument("--keys", default=None, help="with --incremental: merge key columns")
    pipe.add_argument("--owner", default=None)


def run(args: argparse.Namespace, settings, out=None) -> int:
    out = out or sys.stdout
    root = settings.pipelines_dir
    try:
        if args.kind == "app":
            path = new_app(root, args.name, args.owner)
            out.write(
                f"created {path}\nnext: datahub new pipeline {args.name} raw <id> "
                "--source csv --target table\n"
            )
            return 0
        req = Request(
            app=args.app,
            layer=args.layer,
            id=args.id,
            source=args.source,
            target=args.target,
            ref=args.ref,
            incremental=args.incremental,
            keys=args.keys,
            owner=args.owner,
        )
        path, project = new_pipeline(root, req)
    except ScaffoldError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    spec = next(p for p in project.pipelines if p.app == req.app and p.pipeline.id == req.id)
    keys = ", ".join("/".join((t.ref.app, t.ref.layer, t.ref.table)) for t in spec.targets)
    out.write(
        f"created {path} (valid: {len(project.pipelines)} pipelines in the project)\n"
        f"assets: {keys}\n"
        f"next: edit it, then `datahub validate`; reload definitions in the UI "
        f"(make dev) or `dg list defs --assets 'key:\"{req.app}/{req.layer}/*\"'`\n"
    )
    return 0
