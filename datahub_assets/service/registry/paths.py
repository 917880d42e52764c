"""What a change may write (contract section 3): app-relative paths of the allowed forms,
UTF-8 text within the size limits, and never through a symlink.

    <layer>/<name>.xml|yaml|yml   layer: raw, bronze, silver, gold, service (or an alias)
    jobs/<name>.xml|yaml          schemas/<name>.avsc|json     lookups/<name>.csv
    python/<name>.py              app.yaml

Anything else (absolute, `..`, backslashes, NUL, other folders or suffixes, overlong names)
is refused with PathRefused (422) naming the path and the allowed forms; user text never
becomes a path any other way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from datahub_assets.service.registry.errors import PathRefused
from datahub_assets.spec.limits import MAX_DEFINITION_BYTES, MAX_SCHEMA_FILE_BYTES
from datahub_assets.spec.models import LAYER_ALIASES, LAYERS

APP = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
PYTHON_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
MAX_PATH_CHARS = 200
MAX_FILES = 200
MAX_CHANGE_BYTES = 32 << 20
"""All files of one change together: at most 32 MiB."""

FOLDERS: dict[str, tuple[str, ...]] = {
    **{layer: (".xml", ".yaml", ".yml") for layer in (*LAYERS, *LAYER_ALIASES)},
    "jobs": (".xml", ".yaml"),
    "schemas": (".avsc", ".json"),
    "lookups": (".csv",),
    "python": (".py",),
}
ALLOWED = (
    "allowed: <layer>/<name>.xml|yaml|yml (layer: "
    + ", ".join((*LAYERS, *LAYER_ALIASES))
    + "), jobs/<name>.xml|yaml, schemas/<name>.avsc|json, lookups/<name>.csv, "
    "python/<name>.py or app.yaml, relative to the app folder; <name>: letters, digits, _ "
    "and -, starting with a letter or digit"
)


@dataclass(frozen=True)
class FileChange:
    """One file of a change: its checked app-relative path and new text (None: deleted)."""

    path: str
    content: str | None

    @property
    def data(self) -> bytes | None:
        return None if self.content is None else self.content.encode("utf-8")


def _shown(path: object) -> str:
    text = repr(path) if not isinstance(path, str) else path
    return text if len(text) <= 120 else f"{text[:120]}..."


def check_app(app: object) -> str:
    if not isinstance(app, str) or not APP.match(app):
        raise PathRefused(
            f'app "{_shown(app)}" is not an app name; allowed: lowercase letters, digits '
            "and _, starting with a letter, at most 64 characters"
        )
    return app


def check_path(path: object) -> PurePosixPath:
    """`path` as an app-relative PurePosixPath of an allowed form, or PathRefused."""
    if not isinstance(path, str) or not path:
        raise PathRefused(f'path "{_shown(path)}" is empty or not text; {ALLOWED}')
    refused = PathRefused(f'path "{_shown(path)}" is not allowed; {ALLOWED}')
    if len(path) > MAX_PATH_CHARS or any(c in path for c in "\\\x00") or path.startswith("/"):
        raise refused
    pure = PurePosixPath(path)
    if pure.as_posix() != path or ".." in pure.parts or "." in path.split("/"):
        raise refused
    if pure.parts == ("app.yaml",):
        return pure
    if len(pure.parts) != 2:
        raise refused
    folder, name = pure.parts
    suffixes = FOLDERS.get(folder)
    if suffixes is None or pure.suffix not in suffixes:
        raise refused
    stem_rule = PYTHON_NAME if folder == "python" else NAME
    if not stem_rule.match(pure.stem) or pure.name != pure.stem + pure.suffix:
        raise refused
    return pure


def size_limit(path: PurePosixPath) -> int:
    """The most bytes a file at `path` may hold (spec/limits.py)."""
    if path.parts[0] in ("schemas", "lookups"):
        return MAX_SCHEMA_FILE_BYTES
    return MAX_DEFINITION_BYTES


def check_content(path: PurePosixPath, content: object) -> str | None:
    """`content` if it is UTF-8 text within the file's size limit (None: delete)."""
    if content is None:
        return None
    if not isinstance(content, str):
        raise PathRefused(f"{path}: content must be text or null (null deletes the file)")
    try:
        size = len(content.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise PathRefused(
            f"{path}: content is not UTF-8 text (character {exc.start}: {exc.reason}); "
            "definitions are UTF-8 text files"
        ) from None
    limit = size_limit(path)
    if size > limit:
        raise PathRefused(
            f"{path}: the file is {size:,} bytes; files there may be at most {limit:,} bytes"
        )
    return content


def check_files(files: object) -> list[FileChange]:
    """The files of a change, checked: 1-200 entries {"path", "content"}, allowed paths,
    no path twice, UTF-8 text within the per-file and per-change limits."""
    if not isinstance(files, list) or not 1 <= len(files) <= MAX_FILES:
        raise PathRefused(f"files: give 1 to {MAX_FILES} entries {{path, content}}")
    out: list[FileChange] = []
    seen: set[str] = set()
    total = 0
    for entry in files:
        if not isinstance(entry, dict) or "path" not in entry:
            raise PathRefused('each file is {"path": ..., "content": text or null}')
        path = check_path(entry["path"])
        key = path.as_posix()
        if key in seen:
            raise PathRefused(f'path "{key}" is given twice; give each file once')
        seen.add(key)
        content = check_content(path, entry.get("content"))
        total += len(content.encode("utf-8")) if content is not None else 0
        if total > MAX_CHANGE_BYTES:
            raise PathRefused(
                f"the change's files total more than {MAX_CHANGE_BYTES:,} bytes; "
                "split it into smaller changes"
            )
        out.append(FileChange(key, content))
    return out


def target_in_tree(root: Path, app: str, path: str) -> Path:
    """Where `<root>/<app>/<path>` is written: no existing part of it (the app folder, its
    sub-folder, the file) may be a symlink, and it must resolve inside the app folder."""
    check_app(app)
    rel = check_path(path)
    base = Path(root)
    current = base
    for part in (app, *rel.parts):
        current = current / part
        if current.is_symlink():
            raise PathRefused(
                f'path "{path}" of app {app} goes through a symlink ({current.relative_to(base)}); '
                "changes never write through symlinks: replace it with a plain file or folder"
            )
    app_dir = (base / app).resolve()
    target = (base / app / rel).resolve()
    if not target.is_relative_to(app_dir):
        raise PathRefused(f'path "{path}" resolves outside the folder of app {app}')
    return base / app / rel
