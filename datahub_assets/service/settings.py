"""The service's settings (`datahub serve`): its variables are declared in
datahub_resources/settings.py VARIABLES and documented in README.md; this module reads them
from the mapping it is given (default: the process environment through `environ()`).

The signing key is DATAHUB_SERVICE_SECRET when set (at least 32 characters), else a random key
created once in $DATAHUB_HOME/secrets/service.key (mode 0600, written atomically: the first
process to create it wins, every other one reads it)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from datahub_resources.settings import Settings, environ

MIN_SECRET_CHARS = 32
KEY_FILE = Path("secrets") / "service.key"
APP_ROLES = ("viewer", "editor", "approver")
PLATFORM_ROLES = ("admin", "operator")


@dataclass(frozen=True)
class GroupGrant:
    """One DATAHUB_OIDC_GROUP_GRANTS item: members of `group` get `role` on `app`, or, with
    app "*", the platform role `role` (admin or operator)."""

    group: str
    app: str
    role: str
    pii: bool = False


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str
    groups_claim: str = "groups"
    group_grants: tuple[GroupGrant, ...] = ()


@dataclass(frozen=True)
class ServiceSettings:
    home: Path
    state_uri: str
    pipelines_dir: Path
    data_dir: Path
    secret_key: bytes = field(repr=False)
    access_ttl_s: int = 900
    session_ttl_s: int = 28800
    dagster_url: str | None = None
    ui_url: str = "http://localhost:3000"
    cookie_secure: bool = False
    oidc: OidcSettings | None = None
    max_body_bytes: int = 5 * 1024 * 1024
    platform: Settings | None = field(default=None, repr=False, compare=False)
    """The platform's settings of the same environment (engines, secrets allow-list, ...)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServiceSettings:
        values: Mapping[str, str] = environ() if env is None else env
        platform = Settings.from_env(None if env is None else values)
        home = platform.home
        return cls(
            home=home,
            state_uri=values.get("DATAHUB_STATE_URI") or f"sqlite:///{home}/hub.db",
            pipelines_dir=platform.pipelines_dir,
            data_dir=platform.data_dir,
            secret_key=_secret_key(values.get("DATAHUB_SERVICE_SECRET") or "", home),
            access_ttl_s=_positive(values, "DATAHUB_ACCESS_TOKEN_MINUTES", 15) * 60,
            session_ttl_s=_positive(values, "DATAHUB_SESSION_HOURS", 8) * 3600,
            dagster_url=(values.get("DATAHUB_DAGSTER_URL") or "").rstrip("/") or None,
            ui_url=platform.ui_url,
            cookie_secure=_flag(values, "DATAHUB_COOKIE_SECURE"),
            oidc=_oidc(values),
            max_body_bytes=_positive(values, "DATAHUB_MAX_BODY_BYTES", 5 * 1024 * 1024),
            platform=platform,
        )


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = (env.get(name) or "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) <= 0:
        raise ValueError(f"{name}={value!r} is not a positive integer (default {default})")
    return int(value)


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = (env.get(name) or "0").strip().lower()
    if value not in ("0", "1", "true", "false", "yes", "no"):
        raise ValueError(f"{name}={value!r}: write 1 or 0")
    return value in ("1", "true", "yes")


def _secret_key(value: str, home: Path) -> bytes:
    if value:
        if len(value) < MIN_SECRET_CHARS:
            raise ValueError(
                f"DATAHUB_SERVICE_SECRET is {len(value)} characters long: use at least "
                f"{MIN_SECRET_CHARS} random characters (e.g. `openssl rand -hex 32`)"
            )
        return value.encode()
    return _key_file(home / KEY_FILE)


def _key_file(path: Path) -> bytes:
    """The key in `path`, created (0600, atomically: a private temp file hard-linked into
    place, so a concurrent starter reads the winner's key) when absent."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
            with contextlib.suppress(FileExistsError):  # another process was first: theirs
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_text().strip()
    if len(key) < MIN_SECRET_CHARS:
        raise ValueError(f"{path} holds a key shorter than {MIN_SECRET_CHARS} characters")
    return key.encode()


_GRANT = re.compile(r"^([^:,\s]+):([A-Za-z0-9_*][A-Za-z0-9_-]*):([a-z]+)(:pii)?$")


def parse_group_grants(value: str) -> tuple[GroupGrant, ...]:
    """DATAHUB_OIDC_GROUP_GRANTS: "team-shop:shop:editor,platform-ops:*:operator"."""
    grants = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        m = _GRANT.match(item)
        allowed = PLATFORM_ROLES if m and m.group(2) == "*" else APP_ROLES
        if not m or m.group(3) not in allowed:
            raise ValueError(
                f"DATAHUB_OIDC_GROUP_GRANTS: {item!r} is not group:app:role[:pii] with role "
                f"one of {', '.join(APP_ROLES)} (or group:*:admin / group:*:operator)"
            )
        grants.append(GroupGrant(m.group(1), m.group(2), m.group(3), bool(m.group(4))))
    return tuple(grants)


def _oidc(env: Mapping[str, str]) -> OidcSettings | None:
    issuer = (env.get("DATAHUB_OIDC_ISSUER") or "").strip()
    if not issuer:
        return None
    client_id = (env.get("DATAHUB_OIDC_CLIENT_ID") or "").strip()
    if not client_id:
        raise ValueError("DATAHUB_OIDC_ISSUER is set but DATAHUB_OIDC_CLIENT_ID is not")
    return OidcSettings(
        issuer=issuer.rstrip("/"),
        client_id=client_id,
        client_secret=env.get("DATAHUB_OIDC_CLIENT_SECRET") or "",
        groups_claim=(env.get("DATAHUB_OIDC_GROUPS_CLAIM") or "groups").strip(),
        group_grants=parse_group_grants(env.get("DATAHUB_OIDC_GROUP_GRANTS") or ""),
    )
