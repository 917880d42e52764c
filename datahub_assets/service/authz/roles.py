"""Who the caller is and what each app lets them do (contract section 2)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum


class Role(IntEnum):
    viewer = 1
    editor = 2
    approver = 3


@dataclass(frozen=True)
class AppGrant:
    role: Role
    pii: bool = False


@dataclass(frozen=True)
class Principal:
    """The authenticated caller. `via`: "access" (signed access token), "api" (API token) or
    "session" (browser cookie)."""

    username: str
    admin: bool = False
    operator: bool = False
    grants: Mapping[str, AppGrant] = field(default_factory=dict)
    via: str = "access"

    def role_on(self, app: str) -> Role | None:
        """The caller's role on `app` (admin: approver on every app); None: invisible."""
        if self.admin:
            return Role.approver
        grant = self.grants.get(app)
        return grant.role if grant else None

    def can_see(self, app: str) -> bool:
        return self.role_on(app) is not None

    def pii_on(self, app: str) -> bool:
        grant = self.grants.get(app)
        return self.admin or bool(grant and grant.pii)
