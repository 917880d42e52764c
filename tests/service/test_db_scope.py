"""Every route's state session commits before its answer is sent.

FastAPI ends a `yield` dependency of the default ("request") scope after the answer has gone
out, so a client that reads right after a write (the browser following a form's redirect,
a script's GET after its POST) could miss the write. The portal's browser test met it (a
404 on the change just submitted). TestClient waits for the whole request, so it cannot
show the race: this test checks the dependency graph of every route instead."""

from __future__ import annotations

from fastapi.routing import APIRoute

from datahub_assets.service.app import create_app
from datahub_assets.service.state.db import get_db


def _dependants(dependant):
    for sub in dependant.dependencies:
        yield sub
        yield from _dependants(sub)


def test_every_route_commits_its_session_before_answering(hub):
    app = create_app(hub.settings)
    seen = 0
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        for dep in _dependants(route.dependant):
            if dep.call is get_db:
                seen += 1
                assert dep.scope == "function", f"{route.methods} {route.path}: get_db scope"
    assert seen >= len([r for r in app.routes if isinstance(r, APIRoute)])
