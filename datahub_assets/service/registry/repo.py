"""The pipelines folder as a git work tree (GitPython objects, never shell strings).

Every approved change is one commit on the current branch: author = the requester
(`<name>@datahub.local`), committer "Data Hub", message = title, blank line, trailers
`Change-Id:`, `Requested-by:`, `Approved-by:`. Merges hold a repo-wide file lock (fcntl), so
two processes of the service never commit at once; GitPython calls of one process are
serialized by a thread lock (a Repo object is not thread-safe).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import git
from git import Actor, Repo

from datahub_assets.service.registry.errors import NotFound, PathRefused

IMPORT_MESSAGE = "Data Hub: import pipeline definitions"
COMMITTER = Actor("Data Hub", "datahub@datahub.local")
LOCK_FILE = "datahub-merge.lock"
SHA = re.compile(r"^[0-9a-f]{7,40}$")
FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
TRAILER = re.compile(r"^(Change-Id|Requested-by|Approved-by):\s*(.+?)\s*$", re.MULTILINE)


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
    """The git repository whose work tree is the pipelines folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.RLock()
        self.repo = self._open_or_init()

    # ------------------------------------------------------------------ setup
    def _open_or_init(self) -> Repo:
        self.root.mkdir(parents=True, exist_ok=True)
        repo = Repo(self.root) if (self.root / ".git").exists() else Repo.init(self.root)
        if not repo.head.is_valid():
            self._import(repo)
        return repo

    def _import(self, repo: Repo) -> None:
        """The first commit: every file now in the folder (as `git add --all` sees it:
        .gitignore applies), committed by Data Hub."""
        repo.git.add("--all", "--", ".")  # an argument list, no shell
        repo.index.commit(IMPORT_MESSAGE, author=COMMITTER, committer=COMMITTER, skip_hooks=True)

    # ------------------------------------------------------------------ reading
    def head(self) -> str:
        with self._lock:
            return self.repo.head.commit.hexsha

    def head_fast(self) -> str:
        """HEAD's commit id from .git's files (HEAD, the loose ref or packed-refs), without
        the thread lock: never waits for another git call. Falls back to `head()`."""
        git_dir = Path(self.repo.git_dir)
        try:
            head = (git_dir / "HEAD").read_text().strip()
            sha = head
            if head.startswith("ref: "):
                ref = head.removeprefix("ref: ")
                loose = git_dir / ref
                sha = loose.read_text().strip() if loose.is_file() else _packed(git_dir, ref)
            if FULL_SHA.match(sha):
                return sha
        except OSError:
            pass
        return self.head()

    def blob(self, path: str, commit: str | None = None) -> bytes | None:
        """The bytes of `path` (pipelines-dir relative) at `commit` (default HEAD)."""
        with self._lock:
            tree = self.repo.commit(commit or "HEAD").tree
            try:
                item = tree / path
            except KeyError:
                return None
            if item.type != "blob":
                return None
            return item.data_stream.read()

    def blob_id(self, path: str, commit: str | None = None) -> str | None:
        with self._lock:
            tree = self.repo.commit(commit or "HEAD").tree
            try:
                item = tree / path
            except KeyError:
                return None
            return item.hexsha if item.type == "blob" else None

    def files_under(self, folder: str, commit: str | None = None) -> dict[str, bytes]:
        """Every blob under `folder` at `commit` (default HEAD): relative path -> bytes."""
        with self._lock:
            tree = self.repo.commit(commit or "HEAD").tree
            try:
                sub = tree / folder
            except KeyError:
                return {}
            return {
                str(item.path): item.data_stream.read()
                for item in sub.traverse()
                if isinstance(item, git.Blob)
            }

    def paths_under(self, folder: str, commit: str | None = None) -> list[str]:
        """Paths of every blob under `folder` at `commit` (default HEAD), contents unread."""
        with self._lock:
            tree = self.repo.commit(commit or "HEAD").tree
            try:
                sub = tree / folder
            except KeyError:
                return []
            return sorted(str(i.path) for i in sub.traverse() if isinstance(i, git.Blob))

    def top_folders(self, commit: str | None = None) -> list[str]:
        with self._lock:
            tree = self.repo.commit(commit or "HEAD").tree
            return sorted(t.name for t in tree.trees)

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
        """Paths a commit changed against its first parent (all of them for a root commit)."""
        with self._lock:
            if commit.parents:
                diffs = commit.parents[0].diff(commit)
                paths = {d.a_path for d in diffs if d.a_path} | {
                    d.b_path for d in diffs if d.b_path
                }
                return sorted(paths)
            return sorted(
                str(item.path) for item in commit.tree.traverse() if isinstance(item, git.Blob)
            )

    def history(self, path: str, max_count: int = 100) -> list[HistoryEntry]:
        """Commits that changed `path` (a file or folder), newest first."""
        with self._lock:
            commits = list(self.repo.iter_commits("HEAD", paths=[path], max_count=max_count))
            return [_entry(c) for c in commits]

    def change_commit(self, change_id: str, max_count: int = 1000) -> HistoryEntry | None:
        """The commit of the branch carrying `Change-Id: <change_id>` (None: not merged)."""
        if not re.fullmatch(r"[0-9a-f]{1,64}", change_id):
            return None
        with self._lock:
            for commit in self.repo.iter_commits("HEAD", max_count=max_count):
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
        commit; returns its id. Call under merge_lock, after checking every path."""
        with self._lock:
            added, removed = [], []
            for path, data in writes.items():
                full = self.root / path
                if data is None:
                    if full.exists() or full.is_symlink():
                        full.unlink()
                        _prune_empty(full.parent, self.root)
                    removed.append(path)
                else:
                    _write_no_follow(full, data)
                    added.append(path)
            index = self.repo.index
            if added:
                index.add(added)
            tracked = [p for p in removed if self._tracked(p)]
            if tracked:
                index.remove(tracked, working_tree=False)
            commit = index.commit(
                message,
                author=actor(author),
                committer=COMMITTER,
                skip_hooks=True,
            )
            return commit.hexsha

    def _tracked(self, path: str) -> bool:
        try:
            _ = self.repo.head.commit.tree / path
        except KeyError:
            return False
        return True


def _packed(git_dir: Path, ref: str) -> str:
    """The id of `ref` in .git/packed-refs ("" when it is not there)."""
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
