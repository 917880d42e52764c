"""The pipelines folder inside the user's own git work tree (the default `pipelines_xml/` of
a Data Hub checkout): the registry commits on that repository's current branch, under the
folder's path, one commit holding only the change's files; the user's staged and modified
files are left as they were; no nested repository appears. An untracked folder (or a
repository without commits) gets an import commit of that folder only; a folder the
repository ignores gets a repository of its own."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from datahub_assets.service.registry.changes import Registry
from datahub_assets.service.registry.errors import Conflict
from datahub_assets.service.registry.repo import IMPORT_MESSAGE
from datahub_assets.service.settings import ServiceSettings
from tests.service.registry_fixtures import raw_xml, state_for, write_tree

NEW = [{"path": "raw/ingest_items.xml", "content": raw_xml("items")}]
PIPES = "sub/pipes"


def _outer(tmp_path: Path, track_pipes: bool = True, commit: bool = True) -> git.Repo:
    """The user's checkout: README.md and notes.txt committed on branch `work`, the
    pipelines folder at sub/pipes (committed when `track_pipes`)."""
    top = tmp_path / "checkout"
    repo = git.Repo.init(top)
    with repo.config_writer() as config:
        config.set_value("user", "name", "Uma")
        config.set_value("user", "email", "uma@example.com")
        config.set_value("commit", "gpgsign", "false")
    (top / "README.md").write_text("checkout\n")
    (top / "notes.txt").write_text("notes\n")
    write_tree(top / PIPES)
    if commit:
        repo.git.add("README.md", "notes.txt", *([PIPES] if track_pipes else []))
        repo.git.commit("-q", "-m", "the user's commit")
        repo.git.checkout("-q", "-b", "work")
    return repo


def _dirty_the_user_work(repo: git.Repo) -> None:
    top = Path(str(repo.working_tree_dir))
    (top / "staged.txt").write_text("staged by the user\n")
    repo.git.add("staged.txt")
    (top / "notes.txt").write_text("notes, edited\n")


def _settings(tmp_path: Path, pipes: Path) -> ServiceSettings:
    return ServiceSettings(
        home=tmp_path / "home",
        state_uri=f"sqlite:///{tmp_path / 'home' / 'hub.db'}",
        pipelines_dir=pipes,
        data_dir=tmp_path / "data",
        secret_key=b"k" * 32,
    )


def _registry(tmp_path: Path, repo: git.Repo):
    settings = _settings(tmp_path, Path(str(repo.working_tree_dir)) / PIPES)
    return Registry(settings), state_for(settings)


def _open(registry, state, files=NEW, title="Add items") -> str:
    with state.session() as db:
        return registry.create_change(db, "shop", title, files, "ed").id


def _approve(registry, state, change_id) -> dict:
    with state.session() as db:
        return registry.approve(db, change_id, "ann")


def _touched(commit: git.Commit) -> list[str]:
    return sorted(str(p) for p in commit.stats.files)


def _names(repo: git.Repo, *args: str) -> list[str]:
    return sorted(repo.git.diff("--name-only", *args).split())


def test_an_approved_change_is_one_commit_of_the_enclosing_repository(tmp_path):
    repo = _outer(tmp_path)
    _dirty_the_user_work(repo)
    before = repo.head.commit
    registry, state = _registry(tmp_path, repo)
    assert repo.head.commit == before  # a tracked folder needs no import commit
    change_id = _open(registry, state)

    answer = _approve(registry, state, change_id)

    assert not (tmp_path / "checkout" / PIPES / ".git").exists()
    head = repo.head.commit
    assert answer["commit"] == head.hexsha
    assert repo.active_branch.name == "work"
    assert head.parents == (before,)
    assert _touched(head) == [f"{PIPES}/shop/raw/ingest_items.xml"]
    assert head.author.email == "ed@datahub.local"
    assert head.committer.name == "Data Hub"
    assert f"Change-Id: {change_id}\nRequested-by: ed\nApproved-by: ann" in str(head.message)
    # the user's work as it was: staged stays staged, modified stays modified
    assert _names(repo, "--cached") == ["staged.txt"]
    assert _names(repo) == ["notes.txt"]
    assert (tmp_path / "checkout" / "staged.txt").read_text() == "staged by the user\n"
    assert repo.git.status("--porcelain", "--", PIPES) == ""
    written = tmp_path / "checkout" / PIPES / "shop" / "raw" / "ingest_items.xml"
    assert written.read_text() == raw_xml("items")
    # reading through the registry: paths relative to the pipelines folder
    assert [p["id"] for p in registry.pipelines("shop")] == [
        "conform_orders",
        "ingest_items",
        "ingest_orders",
    ]
    assert registry.apps() == {"other": 1, "shop": 3}
    found = registry.pipeline("shop", "ingest_items")
    assert found is not None
    assert found["content"] == raw_xml("items")
    assert [(h["author"], h["approver"]) for h in found["history"]] == [("ed", "ann")]
    assert registry.repo.head_fast() == head.hexsha
    assert registry.repo.change_commit(change_id) is not None


def test_a_deletion_and_a_revert_in_the_enclosing_repository(tmp_path):
    repo = _outer(tmp_path)
    registry, state = _registry(tmp_path, repo)
    merged = _approve(registry, state, _open(registry, state))["commit"]
    gone = [{"path": "app.yaml", "content": None}]
    _approve(registry, state, _open(registry, state, gone, "Drop app.yaml"))
    assert _touched(repo.head.commit) == [f"{PIPES}/shop/app.yaml"]
    assert not (tmp_path / "checkout" / PIPES / "shop" / "app.yaml").exists()
    assert repo.git.status("--porcelain") == ""
    with state.session() as db:
        revert = registry.revert(db, "shop", merged[:10], "ed")
        base = repo.head.commit.tree / f"{PIPES}/shop/raw/ingest_items.xml"
        assert revert.files == [
            {"path": "raw/ingest_items.xml", "content": None, "base": base.hexsha}
        ]
        revert_id = revert.id
    _approve(registry, state, revert_id)
    assert _touched(repo.head.commit) == [f"{PIPES}/shop/raw/ingest_items.xml"]
    assert repo.git.status("--porcelain") == ""


def test_the_branch_moved_under_the_change_is_a_conflict(tmp_path):
    repo = _outer(tmp_path)
    registry, state = _registry(tmp_path, repo)
    edit = [{"path": "raw/ingest_orders.xml", "content": raw_xml("orders", "Ours")}]
    change_id = _open(registry, state, edit)
    path = tmp_path / "checkout" / PIPES / "shop" / "raw" / "ingest_orders.xml"
    path.write_text(raw_xml("orders", "Theirs"))
    repo.git.commit("-q", "-m", "a plain commit of the user", "--", str(path))
    moved = repo.head.commit
    with state.session() as db, pytest.raises(Conflict, match="changed on the branch"):
        registry.approve(db, change_id, "ann")
    assert repo.head.commit == moved
    assert "Theirs" in path.read_text()


def test_a_merge_in_progress_refuses_the_approval(tmp_path):
    repo = _outer(tmp_path)
    registry, state = _registry(tmp_path, repo)
    change_id = _open(registry, state)
    before = repo.head.commit
    (Path(repo.git_dir) / "MERGE_HEAD").write_text(before.hexsha + "\n")
    with state.session() as db, pytest.raises(Conflict, match="middle of a merge"):
        registry.approve(db, change_id, "ann")
    assert repo.head.commit == before
    (Path(repo.git_dir) / "MERGE_HEAD").unlink()
    assert _approve(registry, state, change_id)["status"] == "merged"


def test_an_untracked_folder_is_imported_alone(tmp_path):
    repo = _outer(tmp_path, track_pipes=False)
    _dirty_the_user_work(repo)
    (tmp_path / "checkout" / "untracked.txt").write_text("the user's\n")
    before = repo.head.commit
    registry, state = _registry(tmp_path, repo)
    head = repo.head.commit
    assert head.parents == (before,)
    assert str(head.message).strip() == IMPORT_MESSAGE
    assert _touched(head) == [
        f"{PIPES}/other/raw/ingest_things.xml",
        f"{PIPES}/shop/app.yaml",
        f"{PIPES}/shop/bronze/conform_orders.xml",
        f"{PIPES}/shop/raw/ingest_orders.xml",
    ]
    assert _names(repo, "--cached") == ["staged.txt"]
    assert _names(repo) == ["notes.txt"]
    assert repo.git.status("--porcelain", "--", PIPES) == ""
    assert "untracked.txt" in repo.untracked_files
    Registry(registry.settings)  # a second start imports nothing
    assert repo.head.commit == head
    _approve(registry, state, _open(registry, state))
    assert _touched(repo.head.commit) == [f"{PIPES}/shop/raw/ingest_items.xml"]


def test_a_repository_without_commits_gets_the_folder_only(tmp_path):
    repo = _outer(tmp_path, commit=False)
    (tmp_path / "checkout" / "staged.txt").write_text("staged\n")
    repo.git.add("staged.txt")
    registry, _ = _registry(tmp_path, repo)
    [first] = list(repo.iter_commits("HEAD"))
    assert all(p.startswith(f"{PIPES}/") for p in _touched(first))
    assert _names(repo, "--cached") == ["staged.txt"]
    assert registry.apps() == {"other": 1, "shop": 2}
    assert not (tmp_path / "checkout" / PIPES / ".git").exists()


def test_a_folder_the_repository_ignores_gets_its_own(tmp_path):
    repo = _outer(tmp_path, track_pipes=False)
    (tmp_path / "checkout" / ".gitignore").write_text("sub/\n")
    before = repo.head.commit
    registry, _ = _registry(tmp_path, repo)
    assert repo.head.commit == before
    own = git.Repo(tmp_path / "checkout" / PIPES)
    assert Path(own.git_dir) == tmp_path / "checkout" / PIPES / ".git"
    assert registry.repo.prefix == ""
    assert registry.apps() == {"other": 1, "shop": 2}


def test_a_linked_worktree(tmp_path):
    repo = _outer(tmp_path)
    linked = tmp_path / "linked"
    repo.git.worktree("add", "-q", "-b", "side", str(linked))
    settings = _settings(tmp_path, linked / PIPES)
    registry, state = Registry(settings), state_for(settings)
    sha = _approve(registry, state, _open(registry, state))["commit"]
    assert git.Repo(linked).head.commit.hexsha == sha
    assert repo.heads["side"].commit.hexsha == sha
    assert repo.heads["work"].commit.hexsha != sha
    assert registry.repo.head_fast() == sha
    repo.git.pack_refs("--all")
    assert registry.repo.head_fast() == sha
    assert git.Repo(linked).git.status("--porcelain") == ""


def test_overlays_are_made_in_the_enclosing_repos_git_dir(tmp_path):
    """Same file system as the work tree, so an overlay hard-links instead of copying."""
    from datahub_assets.service.registry.validate import OVERLAYS, scratch_dir

    outer = tmp_path / "checkout"
    (outer / "sub" / "pipes").mkdir(parents=True)
    git.Repo.init(outer)
    assert scratch_dir(outer / "sub" / "pipes") == (outer / ".git" / OVERLAYS).resolve()
    assert scratch_dir(tmp_path / "elsewhere") is None
