"""The wizard's routes: GET /apps/{app}/new (the page; its query prefills the form), and the
POSTs /new/fields (the fields of a source/target/check kind, and the source helpers),
/new/validate (the XML the wizard writes and the validator's verdict), /new/preview (a run on
a sample, writes nothing) and /new/submit (a change → 303 /changes/{id}).

htmx requests (HX-Request) get a fragment; a browser without JS posts the whole form and gets
the whole page back, with the same content. htmx fragments answer 200 even when they report
errors (htmx would otherwise drop them and log a console error)."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from datahub_assets.service import audit
from datahub_assets.service.pages import wizard_form as wizard
from datahub_assets.service.pages.render import is_htmx, me, render
from datahub_assets.service.pages.review import change_context
from datahub_assets.service.pages.wizard_form import Draft, Element
from datahub_assets.service.registry.errors import RegistryError
from datahub_assets.service.state.db import get_db
from datahub_assets.service.state.models import Change

router = APIRouter(include_in_schema=False)
PREVIEW_ROWS = 20
_log = logging.getLogger("datahub.service.pages")


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.multi_items() if isinstance(v, str)}


def _context(app: str, draft: Draft, **extra: Any) -> dict[str, Any]:
    return {
        "app": app,
        "draft": draft,
        "layers": wizard.LAYERS,
        "engines": ("spark", "duckdb", "auto"),
        "source_kinds": list(wizard.kinds("sources")),
        "target_kinds": list(wizard.kinds("targets")),
        "check_kinds": list(wizard.kinds("checks")),
        "fields_of": _fields,
        "metadata_fields": wizard.METADATA_FIELDS,
        "result": None,
        "preview": None,
        **extra,
    }


def _fields(section: str, kind: str) -> tuple[wizard.Field, ...]:
    if section.startswith("check"):
        return wizard.fields_of(wizard.kinds("checks")[kind], check=True)
    return wizard.fields_of(wizard.kinds(f"{section}s")[kind])


def _page(
    request: Request, db: Session, app: str, draft: Draft, status: int = 200, **extra: Any
) -> HTMLResponse:
    return render(request, db, "wizard.html", _context(app, draft, **extra), status_code=status)


@router.get("/apps/{app}/new")
def wizard_page(
    app: str, request: Request, db: Session = Depends(get_db, scope="function")
) -> HTMLResponse:
    params = dict(request.query_params)
    draft = wizard.parse_form(params)
    if not params:
        draft.pipeline["layer"] = "raw"
        draft.checks = [Element("notNull")]
    return _page(request, db, app, draft)


# ------------------------------------------------------------------ fields and helpers


def _next_index(form: dict[str, str]) -> int:
    found = [int(m.group(1)) for k in form if (m := re.match(r"^check\.(\d{1,3})\.kind$", k))]
    return max(found, default=-1) + 1


@router.post("/apps/{app}/new/fields")
async def fields(
    app: str, request: Request, db: Session = Depends(get_db, scope="function")
) -> Response:
    form = await _form(request)
    draft = wizard.parse_form(form)
    section = form.get("section", "")
    if not is_htmx(request):  # without JS: the page again, with the kinds chosen
        if "add_check" in form and len(draft.checks) < wizard.MAX_CHECKS:
            draft.checks.append(Element("notNull"))
        return _page(request, db, app, draft)
    ctx = _context(app, draft)
    if section in ("source", "target"):
        element = draft.source if section == "source" else draft.target
        ctx |= {"section": section, "element": element}
        return _revalidating(render(request, db, "_kind_fields.html", ctx))
    if section in ("check", "check_add"):
        index = _next_index(form) if section == "check_add" else _index(form)
        kind = form.get(f"check.{index}.kind", "")
        if section == "check" and kind not in wizard.kinds("checks"):  # "— none —": removed
            return _revalidating(HTMLResponse(""))
        element = Element(kind if kind in wizard.kinds("checks") else "notNull")
        element.values = {
            k.split(".", 2)[2]: v for k, v in form.items() if k.startswith(f"check.{index}.")
        }
        ctx |= {"index": index, "check": element}
        return _revalidating(render(request, db, "_check_row.html", ctx))
    if section == "helper":
        result = await run_in_threadpool(_helper, request, app, form)
        return render(request, db, "_helper.html", ctx | result)
    raise HTTPException(status_code=422, detail="section: source, target, check or helper")


def _revalidating(response: HTMLResponse) -> HTMLResponse:
    """New fields: the form validates again once they are in place."""
    response.headers["HX-Trigger-After-Settle"] = "revalidate"
    return response


def _index(form: dict[str, str]) -> int:
    value = form.get("index", "")
    if not value.isdigit() or int(value) >= wizard.MAX_CHECKS * 20:
        raise HTTPException(status_code=422, detail="index: the check row's number")
    return int(value)


def _helper(request: Request, app: str, form: dict[str, str]) -> dict[str, Any]:
    """A source helper's answer: landing files, a landing file's header, a connection's
    tables or collections, or a table's schema (registry/sources.py)."""
    from datahub_assets.service.registry import sources

    settings = request.app.state.settings
    pipelines_dir, data_dir = settings.pipelines_dir, settings.data_dir
    helper = form.get("helper", "")
    connection = form.get("source.connection", "")
    try:
        if helper == "landing":
            return {"helper": helper, "files": sources.landing_files(pipelines_dir, app, data_dir)}
        if helper == "header":
            name = form.get("name", "")
            return {
                "helper": helper,
                "header": sources.landing_header(pipelines_dir, app, name, data_dir),
            }
        if helper == "connections":
            return {"helper": helper, "connections": sources.connections(pipelines_dir, app)}
        if helper == "tables":
            tables = sources.tables(pipelines_dir, app, connection)
            return {"helper": helper, "tables": tables, "connection": connection}
        if helper == "schema":
            table = form.get("source.table") or form.get("source.collection") or ""
            schema = sources.table_schema(pipelines_dir, app, connection, table)
            return {"helper": helper, "schema": schema}
    except sources.SourceHelperError as error:
        return {"helper": helper, "helper_error": str(error)}
    return {"helper": helper, "helper_error": f"unknown helper {helper!r}"}


# ------------------------------------------------------------------ validate


def evaluate(request: Request, app: str, draft: Draft) -> dict[str, Any]:
    """The XML of the draft and the validator's verdict, with errors by form key."""
    registry = request.app.state.registry
    errors = wizard.draft_errors(draft)
    xml, local, marks = wizard.build_xml(draft)
    field_errors: dict[str, list[str]] = {k: [v] for k, v in {**errors, **local}.items()}
    general: list[str] = []
    validation = None
    path = draft.path
    if path and not local:
        pipeline_id = draft.pipeline.get("id")
        if any(row.get("id") == pipeline_id for row in registry.pipelines(app)):
            field_errors.setdefault("pipeline.id", []).append(
                f"the app has a pipeline {pipeline_id!r} already: choose another id"
            )
        validation = registry.validate(app, [{"path": path, "content": xml}])
        located, general = wizard.locate(validation, path, draft, marks)
        for key, messages in located.items():
            field_errors.setdefault(key, []).extend(messages)
    ok = bool(validation and validation.get("ok")) and not field_errors and not general
    keys = [
        key
        for section, names in wizard.section_fields(draft).items()
        for key in (section, *(f"{section}.{n}" for n in names))
    ]
    return {
        "xml": xml,
        "path": path,
        "field_errors": field_errors,
        "general": general,
        "ok": ok,
        "validated": validation is not None,
        "error_keys": keys,
    }


@router.post("/apps/{app}/new/validate")
async def validate(
    app: str, request: Request, db: Session = Depends(get_db, scope="function")
) -> Response:
    draft = wizard.parse_form(await _form(request))
    result = await run_in_threadpool(evaluate, request, app, draft)
    if is_htmx(request):
        context = _context(app, draft, result=result, oob=True)
        return render(request, db, "_validation.html", context)
    return _page(request, db, app, draft, result=result)


# ------------------------------------------------------------------ preview


def _run_preview(request: Request, app: str, files: list[dict]) -> dict[str, Any]:
    from datahub_assets.service.registry.preview import preview

    registry = request.app.state.registry
    settings = request.app.state.settings
    pii = me(request).pii_on(app)
    try:
        with registry.overlay(app, files) as tree:
            result = preview(tree, app, files, settings, pii=pii)
    except RegistryError as error:
        return {"tables": [], "checks": [], "errors": [{"message": str(error.detail)}]}
    except Exception as error:  # noqa: BLE001 - shown on the page, logged without data
        _log.exception("preview of %s failed", app)
        return {"tables": [], "checks": [], "errors": [{"message": type(error).__name__}]}
    for table in result.get("tables", []):
        table["shown"] = list(table.get("rows") or [])[:PREVIEW_ROWS]
    return result


def _change_files(db: Session, app: str, change_id: str) -> list[dict]:
    change = db.get(Change, change_id)
    if change is None or change.app != app:
        raise HTTPException(status_code=404, detail=f"no change {change_id!r} in {app!r}")
    return [{"path": f["path"], "content": f.get("content")} for f in change.files]


@router.post("/apps/{app}/new/preview")
async def preview(
    app: str, request: Request, db: Session = Depends(get_db, scope="function")
) -> Response:
    form = await _form(request)
    change_id = form.get("change_id", "")
    draft = wizard.parse_form(form)
    result = None
    if change_id:
        files = _change_files(db, app, change_id)
    else:
        result = await run_in_threadpool(evaluate, request, app, draft)
        files = [{"path": result["path"], "content": result["xml"]}] if result["path"] else []
    if files:
        outcome = await run_in_threadpool(_run_preview, request, app, files)
    else:
        outcome = {"tables": [], "checks": [], "errors": [{"message": "fill in id and layer"}]}
    if is_htmx(request):
        return render(request, db, "_preview.html", _context(app, draft, preview=outcome))
    if change_id:
        change = db.get(Change, change_id)
        assert change is not None
        context = change_context(request, change) | {"preview": outcome}
        return render(request, db, "change.html", context)
    return _page(request, db, app, draft, result=result, preview=outcome)


# ------------------------------------------------------------------ submit


@router.post("/apps/{app}/new/submit")
async def submit(
    app: str, request: Request, db: Session = Depends(get_db, scope="function")
) -> Response:
    principal = me(request)
    draft = wizard.parse_form(await _form(request))
    result = await run_in_threadpool(evaluate, request, app, draft)
    if not result["ok"]:
        return _page(request, db, app, draft, status=422, result=result)
    title = draft.title or f"Add pipeline {draft.pipeline['id']} ({draft.pipeline['layer']})"
    files = [{"path": result["path"], "content": result["xml"]}]
    registry = request.app.state.registry
    try:
        change = await run_in_threadpool(
            lambda: registry.create_change(
                db,
                app,
                title[:200],
                files,
                principal.username,
                allow_python=principal.admin,
                client=audit.client_of(request),
            )
        )
    except RegistryError as error:
        result["general"].append(str(error.detail))
        return _page(request, db, app, draft, status=error.status, result=result)
    db.commit()  # before the browser follows the redirect (get_db commits after the answer)
    return RedirectResponse(f"/changes/{change.id}", status_code=303)
