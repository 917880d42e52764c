"""A change validated as the whole project would load with it applied: the same rules as
`datahub validate` (spec.loader.load_project) run over an overlay, a scratch copy of the
pipelines folder (hard links, made in .git/datahub-overlays/ so they share its file system)
with the change's files written or deleted.

Errors are `{"file", "line", "column", "message"}`: `file` is app-relative for files of the
change's app (as the change names them), else pipelines-dir-relative. Errors the base tree
already has outside the change's files are not the change's and are left out. Whatever
goes wrong in the loader becomes a located error, never an exception.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from datahub_assets.service.registry.parsing import PARSE_CACHE
from datahub_assets.service.registry.paths import FileChange, target_in_tree
from datahub_assets.spec.errors import SpecError, SpecErrors
from datahub_assets.spec.loader import load_project
from datahub_assets.spec.models import Project

OVERLAYS = "datahub-overlays"
_log = logging.getLogger(__name__)

ErrorKey = tuple[str, int, int, str]


def scratch_dir(root: Path) -> Path | None:
    """Where overlays are made: inside the git dir of the repository that holds `root` (its
    own, or the enclosing checkout's: same file system, so files are hard-linked; never
    loaded). None (the system's temp folder) when no `.git` folder is found."""
    here = Path(root).resolve()
    for folder in (here, *here.parents):
        git_dir = folder / ".git"
        if git_dir.is_dir():
            scratch = git_dir / OVERLAYS
            scratch.mkdir(exist_ok=True)
            return scratch
        if git_dir.exists():  # a linked worktree's `.git` file: use the system temp folder
            return None
    return None


def _link_or_copy(src: Path, dst: Path) -> None:
    if src.is_symlink():
        dst.symlink_to(src.readlink())  # the base's own symlinks, kept as they are
        return
    try:
        dst.hardlink_to(src)
    except OSError:
        shutil.copy2(src, dst)


def link_tree(root: Path, dest: Path) -> None:
    """Mirror `root` (its top-level dot entries, .git included, left out) into `dest`."""
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel = here.relative_to(root)
        if rel == Path():
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            filenames = [f for f in filenames if not f.startswith(".")]
        out = dest / rel
        out.mkdir(exist_ok=True)
        for name in list(dirnames):
            if (here / name).is_symlink():
                dirnames.remove(name)
                (out / name).symlink_to((here / name).readlink())
        for name in filenames:
            _link_or_copy(here / name, out / name)


def apply_files(tree: Path, app: str, files: Iterable[FileChange]) -> None:
    """Write or delete the change's files in `tree` (never into a hard-linked original:
    an existing file is unlinked first; never through a symlink)."""
    for change in files:
        target = target_in_tree(tree, app, change.path)
        if target.exists() or target.is_symlink():
            target.unlink()
        data = change.data
        if data is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)


@contextlib.contextmanager
def overlay(
    root: Path, app: str, files: Iterable[FileChange], wait: bool = False
) -> Iterator[Path]:
    """A scratch pipelines tree: `root` with the change's files applied; removed after
    (in the background unless `wait`: removing thousands of links takes a while)."""
    tmp = Path(tempfile.mkdtemp(prefix="overlay-", dir=scratch_dir(root)))
    try:
        link_tree(root, tmp)
        apply_files(tmp, app, list(files))
        yield tmp
    finally:
        if wait:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            threading.Thread(
                target=shutil.rmtree, args=(tmp, True), name="overlay-cleanup", daemon=True
            ).start()


def load_errors(tree: Path, blame: str = "") -> tuple[Project | None, list[SpecError]]:
    """load_project over `tree`: the project, or None and every error. A crash of the loader
    (a bug) becomes one located error on `blame` (a file of the change)."""
    try:
        return load_project(tree, parse=PARSE_CACHE), []
    except SpecErrors as exc:
        return None, [_unrooted(e, tree) for e in exc.errors]
    except Exception as exc:  # noqa: BLE001 - the loader's own failure is the change's error
        _log.exception("the loader failed on an overlay")
        text = f"{type(exc).__name__}: {exc}".replace(str(tree), "<pipelines>")[:300]
        return None, [
            SpecError(
                blame,
                1,
                1,
                f"the definitions could not be loaded ({text}); this is an error in the "
                "loader: please report it with this change",
            )
        ]


def _unrooted(error: SpecError, tree: Path) -> SpecError:
    """The error with the overlay's own path taken out of its file and message."""
    prefix = f"{tree}/"
    file = error.file.removeprefix(prefix)
    return SpecError(
        file, error.line, error.column, error.message.replace(prefix, "").replace(str(tree), ".")
    )


def change_errors(
    app: str,
    files: list[FileChange],
    errors: list[SpecError],
    base_errors: Callable[[], set[ErrorKey]],
) -> list[dict]:
    """The errors that are the change's: every error in one of its files, and those in
    other files that the base does not have (`base_errors` is only called when needed)."""
    own = {f"{app}/{f.path}" for f in files}
    others = [e for e in errors if e.file not in own]
    known = base_errors() if others else set()
    out = []
    for e in sorted(set(errors)):
        if e.file not in own and _key(e) in known:
            continue
        out.append(
            {
                "file": e.file.removeprefix(f"{app}/"),
                "line": e.line,
                "column": e.column,
                "message": e.message,
            }
        )
    return out


def _key(e: SpecError) -> ErrorKey:
    return (e.file, e.line, e.column, e.message)


def tree_signature(root: Path) -> str:
    """A digest of the work tree's files (path, size, modification time; top-level dot
    entries such as .git left out): the base's errors are those of the tree as it stands,
    so an edit not committed yet (a checkout's pipelines folder) computes them anew."""
    digest = hashlib.sha256()
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            filenames = [f for f in filenames if not f.startswith(".")]
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            try:
                info = path.lstat()
            except OSError:
                continue
            rel = path.relative_to(root).as_posix()
            digest.update(f"{rel}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def base_error_keys(root: Path) -> set[ErrorKey]:
    """The errors of the tree as it stands (the work tree at HEAD)."""
    _, errors = load_errors(Path(root))
    return {_key(e) for e in errors}


def validate_change(
    root: Path,
    app: str,
    files: list[FileChange],
    base_errors: Callable[[], set[ErrorKey]],
) -> tuple[dict, Project | None]:
    """{"ok", "errors"} of the change against the tree at `root`, and the project it loads
    (None when it does not)."""
    blame = f"{app}/{files[0].path}" if files else app
    with overlay(root, app, files) as tree:
        project, errors = load_errors(tree, blame)
    found = change_errors(app, files, errors, base_errors)
    return {"ok": not found, "errors": found}, project
