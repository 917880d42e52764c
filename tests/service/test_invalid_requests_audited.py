"""A state-changing call whose body does not match the API's schema is refused with 422,
writes nothing and is audited (contract section 2: every state-changing call, allowed or
refused); the values sent are not copied into the log."""

from __future__ import annotations

from sqlalchemy import func, select

from datahub_assets.service.state.models import Change
from tests.service.conftest import Hub


def test_a_body_off_the_schema_is_422_audited_and_writes_nothing(hub: Hub):
    hub.add_user("ed", grants={"shop": "editor"})
    before = len(hub.events())
    answer = hub.client().post(
        "/api/v1/changes",
        json={"app": "shop", "title": "x" * 500, "files": "s3cr3t-typed-value"},
        headers=hub.bearer("ed"),
    )
    assert answer.status_code == 422
    events = hub.events()[before:]
    assert [(e.actor, e.action, e.target, e.outcome) for e in events] == [
        ("ed", "access", "POST /api/v1/changes", "invalid")
    ]
    assert "s3cr3t-typed-value" not in (events[0].detail or "")
    with hub.state.session() as db:
        assert db.scalar(select(func.count()).select_from(Change)) == 0


def test_an_unauthenticated_body_off_the_schema_is_still_401(hub: Hub):
    answer = hub.client().post("/api/v1/changes", json={"nonsense": True})
    assert answer.status_code == 401
