"""The pipelines folder in a git work tree (GitPython objects, never shell strings).

When the folder lies inside an existing git work tree (found by searching its parent
folders; the default `pipelines_xml/` of a Data Hub checkout), that repository is used and
every path the registry reads or commits is the folder's path in it plus the
pipelines-dir-relative path; else the folder becomes a repository of its own (`git init`).
A folder the enclosing repository ignores and does not track gets a repository of its own.
The first start commits what the folder holds ("import") when the branch has nothing of it.

Every approved change is one commit on the current branch: author = the requester
(`<name>@datahub.local`), committer "Data Hub", message = title, blank line, trailers
`Change-Id:`, `Requested-by:`, `Approved-by:`. The commit's tree is HEAD's tree plus the
change's blobs, built in a temporary index, so the commit holds the change's files only and
whatever the user has staged stays staged; then the work-tree files are written and only
those paths of the real index are updated. The branch moves by `git update-ref` from the
HEAD the tree was built on (a branch that moved meanwhile is a Conflict). Merges hold a
repo-wide file lock (fcntl), so two processes of the service never commit at once; GitPython
calls of one process are serialized by a thread lock (a Repo object is not thread-safe).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import git
from git import Actor, Repo
from gitdb import IStream

from datahub_assets.service.registry.errors import Conflict, NotFound, PathRefused

IMPORT_MESSAGE = "Data Hub: import pipeline definitions"
COMMITTER = Actor("Data Hub", "datahub@datahub.local")
LOCK_FILE = "datahub-merge.lock"
SHA = re.compile(r"^[0-9a-f]{7,40}$")
FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
TRAILER = re.compile(r"^(Change-Id|Requested-by|Approved-by):\s*(.+?)\s*$", re.MULTILINE)
NO_COMMIT = "0" * 40
FILE_MODE = "100644"
# a merge, rebase, cherry-pick or revert of the user's in progress: no commit lands then
BUSY_MARKERS = ("MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD", "rebase-merge", "rebase-apply")
_log = logging.getLogger(__name__)


def blob_sha(data: bytes) -> str:
    """git's blob id of `data` (what `git hash-object` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def actor(username: str) -> Actor:
    return Actor(username, f"{username}@datahub.local")


def commit_message(title: str, change_id: str, author: str, approver: str) -> str:
    title = " ".join(title.split())  # one line: no trailer can be forged through the title
    return f"{title}\n\nChange-Id: {change_id}\nRequested-by: {author}\nApproved-by: {approver}\n"


@dataclass(frozen=True)
class HistoryEntry:
    commit: str
    author: str
    approver: str | None
    time: str
    message: str
    change_id: str | None = None

    def as_dict(self) -> dict:
        return {
            "commit": self.commit,
            "author": self.author,
            "approver": self.approver,
            "time": self.time,
            "message": self.message,
        }


class PipelinesRepo:
    """The git repository holding the pipelines folder: its own, or the enclosing work
    tree's. Every path of the public methods is relative to the pipelines folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.RLock()
        self.prefix = ""  # the pipelines folder's path in the repository ("" : its top)
        self.repo = self._open_or_init()

    # ------------------------------------------------------------------ setup
    def _open_or_init(self) -> Repo:
        self.root.mkdir(parents=True, exist_ok=True)
        found = _enclosing(self.root)
        if found is None:
            repo, prefix = Repo.init(self.root), ""
        else:
            repo, prefix = found
        self.repo, self.prefix = repo, prefix
        if not self._imported():
            self._import()
        return repo

    def _imported(self) -> bool:
        if not self.repo.head.is_valid():
            return False
        return not self.prefix or self._subtree(self.repo.head.commit) is not None

    def _import(self) -> None:
        """The first commit of the folder: every file in it (as `git add --all` sees it:
        .gitignore applies) on top of HEAD's tree, committed by Data Hub. A branch that
        has commits and gains nothing gets no commit."""
        head = self.repo.head.commit if self.repo.head.is_valid() else None
        with self._temp_index(head) as env:
            self.repo.git.add("--all", "--", self.prefix or ".", env=env)
            tree = self.repo.git.write_tree(env=env)
        if head is not None and tree == head.tree.hexsha:
            return
        self._advance(tree, IMPORT_MESSAGE, COMMITTER, head)
        self._sync_index([self.prefix or "."])

    # ------------------------------------------------------------------ paths
    def _full(self, path: str) -> str:
        """The repository path of a pipelines-dir-relative path ("" : the folder)."""
        path = path.strip("/")
        if not self.prefix:
            return path
        return f"{self.prefix}/{path}" if path else self.prefix

    def _rel(self, repo_path: str) -> str | None:
        """The pipelines-dir-relative path of a repository path (None: outside it)."""
        if not self.prefix:
            return repo_path
        lead = self.prefix + "/"
        return repo_path.removeprefix(lead) if repo_path.startswith(lead) else None

    def _item(self, commit: git.Commit, path: str) -> git.Blob | git.Tree | git.Submodule | None:
        full = self._full(path)
        if not full:
            return commit.tree
        try:
            return commit.tree / full
        except KeyError:
            return None

    def _subtree(self, commit: git.Commit, path: str = "") -> git.Tree | None:
        item = self._item(commit, path)
        return item if isinstance(item, git.Tree) else None

    # ------------------------------------------------------------------ reading
    def head(self) -> str:
        with self._lock:
            return self.repo.head.commit.hexsha

    def head_fast(self) -> str:
        """HEAD's commit id from the git dir's files (HEAD, the loose ref or packed-refs;
        a worktree's refs are in the common dir), without the thread lock: never waits
        for another git call. Falls back to `head()`."""
        git_dir = Path(self.repo.git_dir)
        common = Path(self.repo.common_dir)
        try:
            head = (git_dir / "HEAD").read_text().strip()
            sha = head
            if head.startswith("ref: "):
                ref = head.removeprefix("ref: ")
                loose = [d / ref for d in (git_dir, common) if (d / ref).is_file()]
                sha = loose[0].read_text().strip() if loose else _packed(common, ref)
            if FULL_SHA.match(sha):
                return sha
        except OSError:
            pass
        return self.head()

    def blob(self, path: str, commit: str | None = None) -> bytes | None:
        """The bytes of `path` (pipelines-dir relative) at `commit` (default HEAD)."""
        with self._lock:
            item = self._item(self.repo.commit(commit or "HEAD"), path)
            if not isinstance(item, git.Blob):
                return None
            return item.data_stream.read()

    def blob_id(self, path: str, commit: str | None = None) -> str | None:
        with self._lock:
            item = self._item(self.repo.commit(commit or "HEAD"), path)
            return item.hexsha if isinstance(item, git.Blob) else None

    def files_under(self, folder: str, commit: str | None = None) -> dict[str, bytes]:
        """Every blob under `folder` at `commit` (default HEAD): pipelines-dir-relative
        path -> bytes."""
        with self._lock:
            sub = self._subtree(self.repo.commit(commit or "HEAD"), folder)
            if sub is None:
                return {}
            return {
                self._rel(str(item.path)) or "": item.data_stream.read()
                for item in sub.traverse()
                if isinstance(item, git.Blob)
            }

    def paths_under(self, folder: str, commit: str | None = None) -> list[str]:
        """Pipelines-dir-relative paths of every blob under `folder` at `commit` (default
        HEAD), contents unread."""
        with self._lock:
            sub = self._subtree(self.repo.commit(commit or "HEAD"), folder)
            if sub is None:
                return []
            return sorted(
                self._rel(str(i.path)) or "" for i in sub.traverse() if isinstance(i, git.Blob)
            )

    def top_folders(self, commit: str | None = None) -> list[str]:
        with self._lock:
            sub = self._subtree(self.repo.commit(commit or "HEAD"))
            return sorted(t.name for t in sub.trees) if sub is not None else []

    def resolve_commit(self, sha: str) -> git.Commit:
        """The commit named by a hex id (7-40 digits); nothing else is ever passed to git."""
        if not isinstance(sha, str) or not SHA.match(sha):
            raise PathRefused(f'commit "{str(sha)[:60]}" is not a commit id (7-40 hex digits)')
        with self._lock:
            try:
                found = self.repo.commit(sha)
                _ = found.tree  # reads the object: an unknown id fails here
            except (ValueError, git.BadName, git.BadObject):
                found = None
            if found is None or not found.hexsha.startswith(sha):
                raise NotFound(f"commit {sha} not found")
            return found

    def changed_paths(self, commit: git.Commit) -> list[str]:
        """Pipelines-dir-relative paths a commit changed against its first parent (all of
        them for a root commit); paths outside the pipelines folder are left out."""
        with self._lock:
            if commit.parents:
                diffs = commit.parents[0].diff(commit)
                paths = {d.a_path for d in diffs if d.a_path} | {
                    d.b_path for d in diffs if d.b_path
                }
            else:
                paths = {
                    str(item.path) for item in commit.tree.traverse() if isinstance(item, git.Blob)
                }
            return sorted(r for r in (self._rel(p) for p in paths) if r)

    def history(self, path: str, max_count: int = 100) -> list[HistoryEntry]:
        """Commits that changed `path` (a file or folder), newest first."""
        with self._lock:
            commits = self.repo.iter_commits(
                "HEAD", paths=[self._full(path) or "."], max_count=max_count
            )
            return [_entry(c) for c in commits]

    def change_commit(self, change_id: str, max_count: int = 1000) -> HistoryEntry | None:
        """The commit of the branch carrying `Change-Id: <change_id>` (None: not merged)."""
        if not re.fullmatch(r"[0-9a-f]{1,64}", change_id):
            return None
        with self._lock:
            paths = [self.prefix] if self.prefix else ""
            for commit in self.repo.iter_commits("HEAD", paths=paths, max_count=max_count):
                if _entry(commit).change_id == change_id:
                    return _entry(commit)
        return None

    def work_blob_id(self, path: str) -> str | None:
        """The blob id of the work-tree file (None: absent)."""
        full = self.root / path
        if not full.is_file() or full.is_symlink():
            return None
        return blob_sha(full.read_bytes())

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def merge_lock(self) -> Iterator[None]:
        """The repo-wide lock of merges (a file lock: held across processes)."""
        lock_path = Path(self.repo.git_dir) / LOCK_FILE
        with self._lock, lock_path.open("a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def commit_files(self, writes: dict[str, bytes | None], message: str, author: str) -> str:
        """Write (bytes) or delete (None) pipelines-dir-relative paths and commit them as one
        commit holding only them; returns its id. Call under merge_lock, after checking
        every path. Conflict: the repository is mid-merge/rebase, or the branch moved."""
        with self._lock:
            self._refuse_when_busy()
            head = self.repo.head.commit
            added = {self._full(p): self._store(d) for p, d in writes.items() if d is not None}
            removed = [self._full(p) for p, d in writes.items() if d is None]
            with self._temp_index(head) as env:
                for full, sha in added.items():
                    self.repo.git.update_index(
                        "--add", "--cacheinfo", FILE_MODE, sha, full, env=env
                    )
                if removed:
                    self.repo.git.update_index("--force-remove", "--", *removed, env=env)
                tree = self.repo.git.write_tree(env=env)
            sha = self._advance(tree, message, actor(author), head)
            self._write_work_tree(writes)
            self._sync_index([self._full(p) for p in writes])
            return sha

    def _store(self, data: bytes) -> str:
        """Write a blob into the object database; its id."""
        stored = self.repo.odb.store(IStream("blob", len(data), BytesIO(data)))
        return stored.binsha.hex()

    @contextlib.contextmanager
    def _temp_index(self, head: git.Commit | None) -> Iterator[dict[str, str]]:
        """The environment of git calls on a temporary index holding `head`'s tree (empty
        without a head); the user's index is never read or written through it."""
        folder = tempfile.mkdtemp(prefix="datahub-index-", dir=self.repo.git_dir)
        env = {"GIT_INDEX_FILE": str(Path(folder) / "index"), "GIT_LITERAL_PATHSPECS": "1"}
        try:
            if head is not None:
                self.repo.git.read_tree(head.hexsha, env=env)
            yield env
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _advance(self, tree: str, message: str, author: Actor, head: git.Commit | None) -> str:
        """Commit `tree` on `head` and move the branch (or detached HEAD) to it, only from
        `head` (compare and swap); returns the new commit's id."""
        parents = [head] if head is not None else []
        commit = git.Commit.create_from_tree(
            self.repo, tree, message, parent_commits=parents, author=author, committer=COMMITTER
        )
        summary = message.splitlines()[0] if message else ""
        old = head.hexsha if head is not None else NO_COMMIT
        try:
            self.repo.git.update_ref("-m", f"commit: {summary}", "HEAD", commit.hexsha, old)
        except git.GitCommandError as exc:
            raise Conflict(
                "the branch moved while the change was being merged: approve it again"
            ) from exc
        return commit.hexsha

    def _refuse_when_busy(self) -> None:
        git_dir = Path(self.repo.git_dir)
        busy = [name for name in BUSY_MARKERS if (git_dir / name).exists()]
        if busy:
            raise Conflict(
                f"the repository of the pipelines folder is in the middle of a merge, rebase "
                f"or cherry-pick ({busy[0]}): finish or abort it first"
            )

    def _write_work_tree(self, writes: dict[str, bytes | None]) -> None:
        for path, data in writes.items():
            full = self.root / path
            if data is None:
                if full.exists() or full.is_symlink():
                    full.unlink()
                    _prune_empty(full.parent, self.root)
            else:
                _write_no_follow(full, data)

    def _sync_index(self, paths: list[str]) -> None:
        """Set these repository paths of the user's index to HEAD's version (a path HEAD
        lacks leaves it), nothing else of it; then refresh its file stats so `git status`
        shows them clean. Failing (the index locked by a git command of the user) only
        leaves them looking modified: logged, never raised (the commit is made)."""
        env = {"GIT_LITERAL_PATHSPECS": "1"}
        try:
            self.repo.git.reset("-q", "HEAD", "--", *paths, env=env)
            self.repo.git.update_index("-q", "--refresh", with_exceptions=False)
        except git.GitCommandError as exc:
            _log.warning("the git index was not updated for %d path(s): %s", len(paths), exc)


def _enclosing(root: Path) -> tuple[Repo, str] | None:
    """The work tree holding `root` and `root`'s path in it; None when there is none, or
    the one there ignores `root` and tracks nothing in it."""
    try:
        repo = Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    top = repo.working_tree_dir
    if repo.bare or top is None:
        return None
    prefix = Path(root).resolve().relative_to(Path(top).resolve()).as_posix()
    prefix = "" if prefix == "." else prefix
    if prefix and _ignored_and_untracked(repo, prefix):
        return None
    return repo, prefix


def _ignored_and_untracked(repo: Repo, prefix: str) -> bool:
    status, _, _ = repo.git.check_ignore(
        "-q", "--", prefix, with_extended_output=True, with_exceptions=False
    )
    if status != 0:
        return False
    if not repo.head.is_valid():
        return True
    try:
        _ = repo.head.commit.tree / prefix
    except KeyError:
        return True
    return False


def _packed(git_dir: Path, ref: str) -> str:
    """The id of `ref` in packed-refs ("" when it is not there)."""
    packed = git_dir / "packed-refs"
    if not packed.is_file():
        return ""
    for line in packed.read_text().splitlines():
        sha, _, name = line.partition(" ")
        if name == ref:
            return sha
    return ""


def _write_no_follow(full: Path, data: bytes) -> None:
    """Write `data` to `full`, creating its folders; never through a symlink (O_NOFOLLOW)."""
    full.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    fd = os.open(full, flags, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _prune_empty(folder: Path, root: Path) -> None:
    """Remove folders left empty by a deletion, up to (not including) the app folder."""
    while folder != root and folder.parent != root and folder.is_dir():
        if any(folder.iterdir()):
            return
        folder.rmdir()
        folder = folder.parent


def _entry(commit: git.Commit) -> HistoryEntry:
    message = str(commit.message)
    trailers = dict(TRAILER.findall(message))
    return HistoryEntry(
        commit=commit.hexsha,
        author=str(commit.author.name),
        approver=trailers.get("Approved-by"),
        time=datetime.fromtimestamp(commit.committed_date, UTC).isoformat(),
        message=message.strip(),
        change_id=trailers.get("Change-Id"),
    )
