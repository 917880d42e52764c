"""Registry changes against a real git work tree and a real state database: open, approve
(one commit with trailers, author = requester), conflicts, racing approvals (SQLite and
PostgreSQL), reject, revert, the pipelines index and history, a failed reload; bad input
leaves nothing written."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import git
import pytest

from datahub_assets.service.registry.changes import Registry
from datahub_assets.service.registry.errors import (
    Conflict,
    Invalid,
    NotAllowed,
    NotFound,
    PathRefused,
)
from datahub_assets.service.registry.repo import IMPORT_MESSAGE
from datahub_assets.service.state.models import Change
from tests.service.registry_fixtures import (
    BILLION_LAUGHS,
    DOCTYPE_EXTERNAL,
    SQL_TEXT,
    YAML_BOMB,
    audit_rows,
    change_count,
    commits,
    raw_xml,
    settings_for,
    state_for,
)


def _paths(commit: git.Commit) -> list[str]:
    return [str(b.path) for b in commit.tree.traverse() if isinstance(b, git.Blob)]


NEW = [{"path": "raw/ingest_items.xml", "content": raw_xml("items")}]


@pytest.fixture
def setup(tmp_path):
    settings = settings_for(tmp_path)
    return Registry(settings), state_for(settings)


def _open(registry, state, files=NEW, author="ed", title="Add items") -> str:
    with state.session() as db:
        return registry.create_change(db, "shop", title, files, author).id


def _get(state, change_id) -> Change:
    with state.session() as db:
        row = db.get(Change, change_id)
        assert row is not None
        db.expunge(row)
        return row


def test_the_pipelines_folder_becomes_a_git_work_tree(setup):
    registry, _ = setup
    [first] = commits(registry.root)
    assert first.message.strip() == IMPORT_MESSAGE
    assert "shop/raw/ingest_orders.xml" in _paths(first)
    Registry(registry.settings)  # a second start keeps it
    assert len(commits(registry.root)) == 1


def test_open_and_approve_is_one_commit(setup):
    registry, state = setup
    change_id = _open(registry, state)
    row = _get(state, change_id)
    assert row.status == "open"
    assert row.base_commit == commits(registry.root)[0].hexsha
    assert row.files == [
        {"path": "raw/ingest_items.xml", "content": raw_xml("items"), "base": None}
    ]
    assert row.plan == {"added": [["shop", "raw", "items"]], "removed": [], "changed": []}
    assert "+++ b/raw/ingest_items.xml" in row.diff
    assert not (registry.root / "shop" / "raw" / "ingest_items.xml").exists()
    # pytest.raises exits first: the session commits the refusal's audit row
    with state.session() as db, pytest.raises(NotAllowed):
        registry.approve(db, change_id, "ed")
    with state.session() as db:
        answer = registry.approve(db, change_id, "ann")
    assert answer["status"] == "merged"
    head = commits(registry.root)[0]
    assert answer["commit"] == head.hexsha
    assert head.author.name == "ed"
    assert head.author.email == "ed@datahub.local"
    assert head.committer.name == "Data Hub"
    assert head.message == (
        f"Add items\n\nChange-Id: {change_id}\nRequested-by: ed\nApproved-by: ann\n"
    )
    assert (registry.root / "shop" / "raw" / "ingest_items.xml").read_text() == raw_xml("items")
    assert not git.Repo(registry.root).is_dirty(untracked_files=True)
    row = _get(state, change_id)
    assert (row.status, row.commit, row.decided_by) == ("merged", head.hexsha, "ann")
    assert [(a.actor, a.outcome) for a in audit_rows(state, "change.create")] == [("ed", "ok")]
    assert [(a.actor, a.outcome) for a in audit_rows(state, "change.approve")] == [
        ("ed", "denied"),
        ("ann", "ok"),
    ]
    # the index follows HEAD; the pipeline has its history with the approver
    ids = [p["id"] for p in registry.pipelines("shop")]
    assert ids == ["conform_orders", "ingest_items", "ingest_orders"]
    found = registry.pipeline("shop", "ingest_items")
    assert found is not None
    assert found["content"] == raw_xml("items")
    assert found["assets"] == [["shop", "raw", "items"]]
    assert [(h["author"], h["approver"]) for h in found["history"]] == [("ed", "ann")]
    assert registry.apps() == {"other": 1, "shop": 3}
    assert registry.repo.head_fast() == head.hexsha
    git.Repo(registry.root).git.pack_refs("--all")  # refs in .git/packed-refs only
    assert registry.repo.head_fast() == head.hexsha
    with state.session() as db, pytest.raises(Conflict, match="merged"):
        registry.approve(db, change_id, "bob")


def test_deleting_and_changing_files(setup):
    registry, state = setup
    files = [
        {"path": "raw/ingest_orders.xml", "content": raw_xml("orders", "New text")},
        {"path": "app.yaml", "content": None},
    ]
    change_id = _open(registry, state, files)
    assert _get(state, change_id).plan["changed"] == [["shop", "raw", "orders"]]
    with state.session() as db:
        registry.approve(db, change_id, "ann")
    assert not (registry.root / "shop" / "app.yaml").exists()
    assert "New text" in (registry.root / "shop" / "raw" / "ingest_orders.xml").read_text()
    assert "shop/app.yaml" not in _paths(commits(registry.root)[0])


def test_an_invalid_change_cannot_be_approved(setup):
    registry, state = setup
    bad = [{"path": "raw/x.xml", "content": raw_xml("x").replace("append", "sideways")}]
    change_id = _open(registry, state, bad)
    assert _get(state, change_id).status == "invalid"
    with state.session() as db, pytest.raises(Conflict, match="invalid"):
        registry.approve(db, change_id, "ann")
    assert len(commits(registry.root)) == 1
    assert not (registry.root / "shop" / "raw" / "x.xml").exists()


def test_a_file_changed_on_the_branch_is_a_conflict(setup):
    registry, state = setup
    first = _open(
        registry, state, [{"path": "raw/ingest_orders.xml", "content": raw_xml("orders", "A")}]
    )
    second = _open(
        registry, state, [{"path": "raw/ingest_orders.xml", "content": raw_xml("orders", "B")}]
    )
    with state.session() as db:
        registry.approve(db, first, "ann")
    with state.session() as db, pytest.raises(Conflict, match="changed on the branch"):
        registry.approve(db, second, "ann")
    assert _get(state, second).status == "open"
    assert len(commits(registry.root)) == 2
    assert "A</description>" in (registry.root / "shop" / "raw" / "ingest_orders.xml").read_text()
    outcomes = [a.outcome for a in audit_rows(state, "change.approve")]
    assert outcomes == ["ok", "invalid"]


def test_uncommitted_edits_in_the_work_tree_are_a_conflict(setup):
    registry, state = setup
    change_id = _open(
        registry, state, [{"path": "raw/ingest_orders.xml", "content": raw_xml("orders", "A")}]
    )
    (registry.root / "shop" / "raw" / "ingest_orders.xml").write_text(raw_xml("orders", "hand"))
    with state.session() as db, pytest.raises(Conflict, match="not committed"):
        registry.approve(db, change_id, "ann")
    assert "hand" in (registry.root / "shop" / "raw" / "ingest_orders.xml").read_text()


def test_a_change_invalid_at_head_is_refused(setup):
    """Opened when valid; meanwhile the table it reads is removed on the branch."""
    registry, state = setup
    reader = [{"path": "silver/read.xml", "content": _silver_reading("raw.orders")}]
    change_id = _open(registry, state, reader)
    assert _get(state, change_id).status == "open"
    remover = _open(
        registry,
        state,
        [
            {"path": "raw/ingest_orders.xml", "content": None},
            {"path": "bronze/conform_orders.xml", "content": None},
        ],
    )
    with state.session() as db:
        registry.approve(db, remover, "ann")
    with state.session() as db, pytest.raises(Conflict, match="not valid at the branch's head"):
        registry.approve(db, change_id, "ann")
    assert _get(state, change_id).status == "open"


def _silver_reading(ref: str) -> str:
    return f"""<pipeline id="read" version="1.0.0" layer="silver">
  <metadata><owner>t</owner><description>reads</description></metadata>
  <sources><table id="src" ref="{ref}"/></sources>
  <targets><table table="read" source="src" mode="overwrite"/></targets>
</pipeline>
"""


def _race(registry: Registry, state, change_id: str) -> list[object]:
    barrier = threading.Barrier(2)
    results: list[object] = []

    def approve(approver: str) -> None:
        with state.session() as db:
            db.get(Change, change_id)
            barrier.wait()
            try:
                results.append(registry.approve(db, change_id, approver))
            except Conflict as exc:
                results.append(exc)

    threads = [threading.Thread(target=approve, args=(name,)) for name in ("ann", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_two_racing_approvals_merge_once_sqlite(setup):
    registry, state = setup
    change_id = _open(registry, state)
    results = _race(registry, state, change_id)
    assert len(results) == 2
    merged = [r for r in results if isinstance(r, dict)]
    assert len(merged) == 1, results
    assert len([r for r in results if isinstance(r, Conflict)]) == 1
    assert len(commits(registry.root)) == 2
    assert _get(state, change_id).status == "merged"


def test_two_racing_approvals_merge_once_postgres(tmp_path, postgres_server):
    from datahub_assets.demo.local_servers import create_database

    name = f"registry_{uuid.uuid4().hex[:8]}"
    create_database(postgres_server, name)
    uri = postgres_server.sqlalchemy_url.rsplit("/", 1)[0] + f"/{name}"
    settings = settings_for(tmp_path, state_uri=uri)
    registry, state = Registry(settings), state_for(settings)
    change_id = _open(registry, state)
    results = _race(registry, state, change_id)
    assert len([r for r in results if isinstance(r, dict)]) == 1, results
    assert len([r for r in results if isinstance(r, Conflict)]) == 1
    assert len(commits(registry.root)) == 2
    assert _get(state, change_id).status == "merged"
    state.dispose()


def _stale_claim(state, change_id: str) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from datahub_assets.service.state.db import utcnow

    with state.session() as db:
        db.execute(
            update(Change)
            .where(Change.id == change_id)
            .values(status="merging", decided_at=utcnow() - timedelta(hours=1))
        )


def test_a_claim_left_by_a_dead_process_is_recovered(setup):
    registry, state = setup
    change_id = _open(registry, state)
    _stale_claim(state, change_id)  # died before committing: open again, then merged
    with state.session() as db:
        assert registry.approve(db, change_id, "ann")["status"] == "merged"
    sha = commits(registry.root)[0].hexsha
    _stale_claim(state, change_id)  # died after committing: merged with its commit
    with state.session() as db, pytest.raises(Conflict, match="merged"):
        registry.approve(db, change_id, "bob")
    row = _get(state, change_id)
    assert (row.status, row.commit, row.decided_by) == ("merged", sha, "ann")
    assert len(commits(registry.root)) == 2


def test_reject(setup):
    registry, state = setup
    change_id = _open(registry, state)
    with state.session() as db, pytest.raises(Invalid):
        registry.reject(db, change_id, "ann", "  ")
    with state.session() as db:
        view = registry.reject(db, change_id, "ann", SQL_TEXT)
    assert (view["status"], view["reason"], view["decided_by"]) == ("rejected", SQL_TEXT, "ann")
    with state.session() as db, pytest.raises(Conflict):
        registry.approve(db, change_id, "bob")
    with state.session() as db, pytest.raises(Conflict):
        registry.reject(db, change_id, "bob", "again")
    assert [a.outcome for a in audit_rows(state, "change.reject")] == ["ok", "invalid"]
    assert len(commits(registry.root)) == 1


def test_revert_is_a_new_change(setup):
    registry, state = setup
    files = [
        {"path": "raw/ingest_items.xml", "content": raw_xml("items")},
        {"path": "raw/ingest_orders.xml", "content": raw_xml("orders", "Edited")},
        {"path": "app.yaml", "content": None},
    ]
    change_id = _open(registry, state, files)
    with state.session() as db:
        merged = registry.approve(db, change_id, "ann")["commit"]
    with state.session() as db:
        revert = registry.revert(db, "shop", merged[:10], "ed")
        revert_id, reverts, title = revert.id, revert.reverts, revert.title
    assert reverts == merged
    assert title == 'Revert "Add items"'
    row = _get(state, revert_id)
    assert row.status == "open"
    contents = {f["path"]: f["content"] for f in row.files}
    assert contents["raw/ingest_items.xml"] is None
    assert contents["raw/ingest_orders.xml"] == raw_xml("orders")
    assert contents["app.yaml"] == "owner: team-shop\n"
    with state.session() as db:
        registry.approve(db, revert_id, "ann")
    assert not (registry.root / "shop" / "raw" / "ingest_items.xml").exists()
    assert (registry.root / "shop" / "app.yaml").read_text() == "owner: team-shop\n"
    with state.session() as db, pytest.raises(NotFound):
        registry.revert(db, "other", merged, "ed")  # changes no file of `other`
    with state.session() as db, pytest.raises(PathRefused):
        registry.revert(db, "shop", "HEAD~1", "ed")
    with state.session() as db, pytest.raises(NotFound):
        registry.revert(db, "shop", "0" * 40, "ed")


def test_a_failed_reload_is_reported_and_audited_not_undone(tmp_path):
    from datahub_assets.demo.local_servers import free_port

    settings = settings_for(tmp_path, dagster_url=f"http://127.0.0.1:{free_port()}")
    registry, state = Registry(settings), state_for(settings)
    change_id = _open(registry, state)
    with state.session() as db:
        answer = registry.approve(db, change_id, "ann")
    assert answer["status"] == "merged"
    assert answer["reload"]["ok"] is False
    assert _get(state, change_id).status == "merged"
    [event] = audit_rows(state, "change.reload")
    assert (event.outcome, event.actor) == ("error", "ann")


def test_secret_values_never_appear_in_a_pipeline(setup, monkeypatch):
    """Definitions name secrets (*SecretRef); the value in the environment never shows."""
    registry, state = setup
    monkeypatch.setenv("SHOP_DB_PASSWORD", "s3cr3t-value-never-shown")
    found = registry.pipeline("shop", "ingest_orders")
    assert found is not None
    assert "s3cr3t-value-never-shown" not in repr(found)


BAD_FILES = [
    [{"path": "../other/raw/x.xml", "content": raw_xml("x")}],
    [{"path": "/etc/passwd", "content": "x"}],
    [{"path": "raw/x.sh", "content": "x"}],
    [{"path": "lib/x.xml", "content": raw_xml("x")}],
    [{"path": "raw/x'; DROP TABLE changes; --.xml", "content": raw_xml("x")}],
    [{"path": "raw/x.xml", "content": "bad \udc80"}],
    [{"path": "gold/x.xml", "content": raw_xml("x")}],  # gold/ is a symlink out of the app
]


@pytest.mark.parametrize("files", BAD_FILES)
def test_bad_paths_write_nothing(setup, tmp_path, files):
    registry, state = setup
    outside = tmp_path / "outside"
    outside.mkdir()
    (registry.root / "shop" / "gold").symlink_to(outside)
    with state.session() as db, pytest.raises(PathRefused):
        registry.create_change(db, "shop", "bad", files, "ed")
    assert change_count(state) == 0
    assert len(commits(registry.root)) == 1
    assert list(outside.iterdir()) == []
    assert not (registry.root / "shop" / "raw" / "x.xml").exists()


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("raw/evil.xml", DOCTYPE_EXTERNAL),
        ("raw/lolz.xml", BILLION_LAUGHS),
        ("raw/bomb.yaml", YAML_BOMB),
    ],
)
def test_hostile_content_is_an_invalid_change(setup, path, content):
    registry, state = setup
    change_id = _open(registry, state, [{"path": path, "content": content}])
    row = _get(state, change_id)
    assert row.status == "invalid"
    assert {e["file"] for e in row.validation["errors"]} == {path}
    with state.session() as db, pytest.raises(Conflict):
        registry.approve(db, change_id, "ann")
    assert not (registry.root / "shop" / path).exists()
    assert len(commits(registry.root)) == 1


def test_sql_looking_text_is_only_text(setup):
    registry, state = setup
    content = raw_xml("items", SQL_TEXT.replace("<", "").replace("&", ""))
    change_id = _open(
        registry, state, [{"path": "raw/ingest_items.xml", "content": content}], title=SQL_TEXT
    )
    row = _get(state, change_id)
    assert (row.title, row.status) == (SQL_TEXT, "open")
    with state.session() as db:
        commit = registry.approve(db, change_id, "ann")["commit"]
    assert git.Repo(registry.root).commit(commit).summary == SQL_TEXT
    assert change_count(state) == 1


def test_python_files_need_allow_python(setup):
    registry, state = setup
    files = [{"path": "python/assets.py", "content": "x = 1\n"}]
    with state.session() as db, pytest.raises(NotAllowed):
        registry.create_change(db, "shop", "code", files, "ed", allow_python=False)
    assert change_count(state) == 0


def test_overlay_is_a_copy_with_the_files(setup):
    registry, _ = setup
    with registry.overlay("shop", NEW) as tree:
        assert (tree / "shop" / "raw" / "ingest_items.xml").read_text() == raw_xml("items")
        assert (tree / "other" / "raw" / "ingest_things.xml").is_file()
        assert not (tree / ".git").exists()
        kept = Path(tree)
    deadline = time.monotonic() + 10
    while kept.exists():  # removed in the background
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not (registry.root / "shop" / "raw" / "ingest_items.xml").exists()
