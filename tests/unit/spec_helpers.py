"""Shared assertions and file setup of the spec tests."""

from __future__ import annotations

from pathlib import Path

from datahub_assets.spec.errors import SpecError


def find_error(errors: list[SpecError], file: str, line: int, *fragments: str) -> SpecError:
    """The error reported at file:line whose message holds every fragment."""
    for err in errors:
        if err.file == file and err.line == line and all(f in err.message for f in fragments):
            assert str(err).startswith(f"{file}:{line}:")
            return err
    raise AssertionError(
        f"no error at {file}:{line} with {fragments}; got:\n" + "\n".join(map(str, errors))
    )


def write(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (path relative to `root` -> text) under `root`; returns `root`."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
