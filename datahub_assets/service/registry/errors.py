"""The registry's refusals; the routers answer each with its HTTP status and
`{"detail": ...}` (detail: a message, or for a refused change the errors that say why)."""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    status_code = 400

    def __init__(self, detail: Any) -> None:
        self.detail = detail
        super().__init__(detail if isinstance(detail, str) else repr(detail))

    @property
    def status(self) -> int:
        """The HTTP status (`status_code`, which get_db reads to keep a refusal's audit)."""
        return self.status_code


class PathRefused(RegistryError):
    """A path or content a change may not write (422): nothing is written."""

    status_code = 422


class Conflict(RegistryError):
    """The change cannot be merged as it stands (409): invalid, already decided, or its
    files changed on the branch since it was opened."""

    status_code = 409


class NotAllowed(RegistryError):
    """The caller may not do this to this change (403), e.g. approve their own change."""

    status_code = 403


class NotFound(RegistryError):
    status_code = 404


class Invalid(PathRefused):
    """Other input the registry refuses (422): a title, a reason, a commit id."""
