"""OpenID Connect sign-in (optional: DATAHUB_OIDC_ISSUER, docs/service.md "OpenID Connect").

The authorization code flow with PKCE (S256), `state` and `nonce`, through authlib's httpx
OAuth 2 client; the provider's discovery document and JWKS are fetched from the issuer and
cached. The id_token's signature is checked against the JWKS (asymmetric algorithms only),
then `iss`, `aud` (and `azp` with several audiences), `exp`, `iat` and `nonce`.

The login transaction (state, nonce, PKCE verifier, where to go back) travels in a short-lived
cookie signed with the service key (`datahub_oidc`, HttpOnly, SameSite=Lax, path /auth/oidc/):
nothing is stored server-side before the provider answers, and an answer without its cookie,
or with another login's state, is refused.

Users and grants (`sync_user`): a user signing in through the provider is the user of that
name with source `oidc:<issuer>` (created without a password on first sign-in); a local user,
or one of another provider, of the same name is never taken over (refused). The provider's
groups decide exactly what DATAHUB_OIDC_GROUP_GRANTS speaks about, at every sign-in: the
grants on every app the mapping names (set to the highest role of the user's groups, or
removed when no group of the user gives one) and the `admin` / `operator` flags when the
mapping names them (`group:*:admin`, `group:*:operator`). Grants on apps the mapping does not
name, given with `datahub users grant`, are kept: the grants table records no origin, so the
mapping's apps are the provider's and every other app stays the administrators'.

This module holds no web framework: api/oidc.py is the router."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt as pyjwt
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select
from sqlalchemy.orm import Session

from datahub_assets.service.settings import GroupGrant, OidcSettings
from datahub_assets.service.state.models import Grant, User

TRANSACTION_COOKIE = "datahub_oidc"
TRANSACTION_PATH = "/auth/oidc/"
TRANSACTION_TTL_S = 600
SCOPES = "openid profile email"
LEEWAY_S = 60
CACHE_TTL_S = 3600
JWKS_REFRESH_MIN_S = 60
HTTP_TIMEOUT_S = 10.0
# asymmetric signatures only: never "none", never an HMAC keyed with the client secret
SIGNING_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
USERNAME_CLAIMS = ("preferred_username", "email", "sub")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
_ROLE_RANK = {"viewer": 1, "editor": 2, "approver": 3}
_TX_AUDIENCE = "datahub-oidc-transaction"


class OidcError(Exception):
    """A refused sign-in. `reason` is safe to show and to audit (no token, no secret);
    `outcome` is the audit outcome: "denied" (the answer failed a check) or "error" (the
    provider could not be reached or answered nonsense)."""

    def __init__(self, reason: str, outcome: str = "denied", username: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.outcome = outcome
        self.username = username


@dataclass(frozen=True)
class Transaction:
    state: str
    nonce: str
    verifier: str
    next: str


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in."""

    username: str
    subject: str
    groups: tuple[str, ...]


# ------------------------------------------------------------------ provider metadata


_cache: dict[str, tuple[float, Any]] = {}
_cache_lock = threading.Lock()


@contextmanager
def _client(oidc: OidcSettings, redirect_uri: str | None = None) -> Iterator[Any]:
    """authlib's OAuth 2 client (an httpx client) for one login step, closed afterwards."""
    client: Any = OAuth2Client(
        client_id=oidc.client_id,
        client_secret=oidc.client_secret or None,
        scope=SCOPES,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        timeout=HTTP_TIMEOUT_S,
        token_endpoint_auth_method="client_secret_basic" if oidc.client_secret else "none",
    )
    try:
        yield client
    finally:
        client.close()


def _get_json(url: str, what: str) -> dict[str, Any]:
    try:
        response = httpx.get(url, timeout=HTTP_TIMEOUT_S, follow_redirects=False)
        response.raise_for_status()
        value = response.json()
    except (httpx.HTTPError, ValueError) as error:
        raise OidcError(
            f"the identity provider's {what} ({url}) could not be read: {type(error).__name__}",
            outcome="error",
        ) from error
    if not isinstance(value, dict):
        raise OidcError(f"the identity provider's {what} ({url}) is not a JSON object", "error")
    return value


def _cached(key: str, max_age: float) -> Any | None:
    with _cache_lock:
        hit = _cache.get(key)
    if hit and time.monotonic() - hit[0] < max_age:
        return hit[1]
    return None


def _store(key: str, value: Any) -> Any:
    with _cache_lock:
        _cache[key] = (time.monotonic(), value)
    return value


def discover(oidc: OidcSettings) -> dict[str, Any]:
    """The provider's discovery document, checked to name this issuer."""
    key = f"meta:{oidc.issuer}"
    metadata = _cached(key, CACHE_TTL_S)
    if metadata is None:
        url = f"{oidc.issuer}/.well-known/openid-configuration"
        metadata = _get_json(url, "discovery document")
        if str(metadata.get("issuer", "")).rstrip("/") != oidc.issuer:
            raise OidcError(
                f"the discovery document at {url} names issuer {metadata.get('issuer')!r}, "
                f"not DATAHUB_OIDC_ISSUER={oidc.issuer!r}",
                outcome="error",
            )
        for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(metadata.get(field), str):
                raise OidcError(f"the discovery document at {url} has no {field}", "error")
        _store(key, metadata)
    return metadata


def _keys(metadata: dict[str, Any], refresh: bool = False) -> tuple[KeySet, bool]:
    """The provider's signing keys and whether they were just fetched. `refresh` fetches
    again (a rotated key), at most once a minute."""
    key = f"jwks:{metadata['jwks_uri']}"
    keys = _cached(key, JWKS_REFRESH_MIN_S if refresh else CACHE_TTL_S)
    if keys is not None:
        return keys, False
    document = _get_json(metadata["jwks_uri"], "JWKS")
    try:
        keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as error:
        raise OidcError(f"the provider's JWKS has no usable key: {error}", "error") from error
    return _store(key, keys), True


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


# ------------------------------------------------------------------ the login transaction


def safe_next(value: str | None) -> str:
    """`next` when it is a local path of this site, else "/" (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ch in value for ch in "\\\r\n\t") or ":" in value.split("?", 1)[0]:
        return "/"
    return value


def start(oidc: OidcSettings, secret_key: bytes, redirect_uri: str, next_path: str | None):
    """(the provider's authorization URL, the signed transaction cookie value)."""
    metadata = discover(oidc)
    tx = Transaction(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        verifier=secrets.token_urlsafe(64),
        next=safe_next(next_path),
    )
    with _client(oidc, redirect_uri) as client:
        url, _ = client.create_authorization_url(
            metadata["authorization_endpoint"],
            state=tx.state,
            code_verifier=tx.verifier,
            nonce=tx.nonce,
        )
    cookie = pyjwt.encode(
        {
            "aud": _TX_AUDIENCE,
            "exp": int(time.time()) + TRANSACTION_TTL_S,
            "state": tx.state,
            "nonce": tx.nonce,
            "verifier": tx.verifier,
            "next": tx.next,
        },
        secret_key,
        algorithm="HS256",
    )
    return url, cookie


def read_transaction(cookie: str | None, secret_key: bytes) -> Transaction:
    if not cookie:
        raise OidcError("no sign-in in progress in this browser (its cookie is missing)")
    try:
        claims = pyjwt.decode(cookie, secret_key, algorithms=["HS256"], audience=_TX_AUDIENCE)
        return Transaction(
            state=str(claims["state"]),
            nonce=str(claims["nonce"]),
            verifier=str(claims["verifier"]),
            next=safe_next(str(claims["next"])),
        )
    except (pyjwt.PyJWTError, KeyError) as error:
        raise OidcError(
            f"the sign-in cookie is invalid or expired ({type(error).__name__})"
        ) from error


def check_state(tx: Transaction, state: str | None) -> None:
    if not state or not secrets.compare_digest(state.encode(), tx.state.encode()):
        raise OidcError("the provider's answer does not carry this sign-in's state")


# ------------------------------------------------------------------ code → checked identity


def exchange(oidc: OidcSettings, tx: Transaction, code: str, redirect_uri: str) -> Identity:
    """The authorization code exchanged at the token endpoint (with the PKCE verifier), its
    id_token checked; the identity it names."""
    metadata = discover(oidc)
    with _client(oidc, redirect_uri) as client:
        try:
            token = client.fetch_token(
                metadata["token_endpoint"],
                grant_type="authorization_code",
                code=code,
                code_verifier=tx.verifier,
            )
        except Exception as error:  # authlib raises OAuthError, httpx HTTPError, ValueError
            raise OidcError(
                f"the token endpoint refused the code ({type(error).__name__}: "
                f"{getattr(error, 'error', '') or 'see the provider log'})"
            ) from error
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise OidcError("the token endpoint answered without an id_token")
    claims = verify_id_token(oidc, metadata, id_token, tx.nonce)
    return identity_of(oidc, claims)


def _algorithms(metadata: Mapping[str, Any]) -> list[str]:
    offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    allowed = [alg for alg in offered if alg in SIGNING_ALGORITHMS]
    if not allowed:
        raise OidcError(
            f"the provider signs id_tokens with {offered}; Data Hub accepts "
            f"{', '.join(SIGNING_ALGORITHMS)}",
            outcome="error",
        )
    return allowed


def _decode(id_token: str, metadata: dict[str, Any]) -> dict[str, Any]:
    algorithms = _algorithms(metadata)
    keys, fresh = _keys(metadata)
    for attempt in range(2):
        try:
            return dict(jose_jwt.decode(id_token, keys, algorithms=algorithms).claims)
        except (JoseError, ValueError) as error:
            if attempt == 0 and not fresh:
                keys, fresh = _keys(metadata, refresh=True)  # a rotated key?
                if fresh:
                    continue
            raise OidcError(
                f"the id_token's signature does not verify with the provider's keys "
                f"({type(error).__name__})"
            ) from error
    raise AssertionError("unreachable")


def verify_id_token(
    oidc: OidcSettings,
    metadata: dict[str, Any],
    id_token: str,
    nonce: str,
    now: int | None = None,
) -> dict[str, Any]:
    claims = _decode(id_token, metadata)
    if str(claims.get("iss", "")).rstrip("/") != oidc.issuer:
        raise OidcError(f"the id_token's issuer {claims.get('iss')!r} is not {oidc.issuer!r}")
    registry = jose_jwt.JWTClaimsRegistry(
        now=now,
        leeway=LEEWAY_S,
        aud={"essential": True, "value": oidc.client_id},
        exp={"essential": True},
        iat={"essential": True},
        sub={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except JoseError as error:
        raise OidcError(f"the id_token was refused: {error}") from error
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != oidc.client_id:
        raise OidcError("the id_token names several audiences and another authorized party")
    return claims


def identity_of(oidc: OidcSettings, claims: Mapping[str, Any]) -> Identity:
    username = next(
        (str(claims[c]) for c in USERNAME_CLAIMS if isinstance(claims.get(c), str) and claims[c]),
        "",
    )
    if not _USERNAME.match(username):
        raise OidcError(
            "the provider names the user with no usable name (preferred_username, email or "
            "sub: letters, digits and ._@+- up to 64 characters)"
        )
    return Identity(username, str(claims["sub"]), _groups(claims.get(oidc.groups_claim)))


def _groups(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(g for g in re.split(r"[\s,]+", value) if g)
    if isinstance(value, list):
        return tuple(str(g) for g in value if isinstance(g, str | int))
    return ()


# ------------------------------------------------------------------ user and grants


@dataclass(frozen=True)
class Entitlements:
    """What the mapping says about one user: roles on the apps it names, and the platform
    flags it names (None: the mapping does not speak about that flag)."""

    roles: Mapping[str, tuple[str, bool]]  # app -> (role, pii)
    managed_apps: frozenset[str]
    admin: bool | None
    operator: bool | None


def entitlements(groups: Iterable[str], mapping: Iterable[GroupGrant]) -> Entitlements:
    member = set(groups)
    rules = list(mapping)
    roles: dict[str, tuple[str, bool]] = {}
    flags: dict[str, bool | None] = {"admin": None, "operator": None}
    for rule in rules:
        if rule.app == "*":
            flags[rule.role] = bool(flags[rule.role]) or rule.group in member
            continue
        if rule.group not in member:
            continue
        held = roles.get(rule.app)
        if held is None or _ROLE_RANK[rule.role] > _ROLE_RANK[held[0]]:
            roles[rule.app] = (rule.role, rule.pii or bool(held and held[1]))
        elif rule.pii:
            roles[rule.app] = (held[0], True)
    managed = frozenset(r.app for r in rules if r.app != "*")
    return Entitlements(roles, managed, flags["admin"], flags["operator"])


def source_of(oidc: OidcSettings) -> str:
    return f"oidc:{oidc.issuer}"


def find_user(db: Session, oidc: OidcSettings, identity: Identity) -> User | None:
    """The user this identity signs in as (None: new); refuses a user of the same name that
    is local or of another provider."""
    user = db.scalar(select(User).where(User.username == identity.username))
    if user is not None and user.source != source_of(oidc):
        raise OidcError(
            f"a user named {identity.username!r} exists with source {user.source!r}: the "
            "identity provider may not sign in as them",
            username=identity.username,
        )
    return user


@dataclass(frozen=True)
class UserChange:
    """One change a sign-in made, for the audit log: action user.add | user.flag |
    user.grant | user.revoke; `what` e.g. "operator=true", "shop=editor"."""

    action: str
    what: str = ""
    app: str | None = None


def sync_user(db: Session, oidc: OidcSettings, identity: Identity) -> tuple[User, list[UserChange]]:
    """Create or update the user and set the grants the mapping gives (see the module
    docstring); returns the user and the changes made."""
    user = find_user(db, oidc, identity)
    changes: list[UserChange] = []
    if user is None:
        user = User(
            username=identity.username,
            password_hash=None,
            admin=False,
            operator=False,
            source=source_of(oidc),
            created_at=datetime.now(UTC),
        )
        db.add(user)
        db.flush()
        changes.append(UserChange("user.add"))
    wanted = entitlements(identity.groups, oidc.group_grants)
    for flag in ("admin", "operator"):
        value = getattr(wanted, flag)
        if value is not None and bool(getattr(user, flag)) != value:
            setattr(user, flag, value)
            changes.append(UserChange("user.flag", f"{flag}={str(value).lower()}"))
    current = {g.app: g for g in user.grants}
    for app in sorted(wanted.managed_apps):
        grant, role = current.get(app), wanted.roles.get(app)
        if role is None:
            if grant is not None:
                user.grants.remove(grant)
                changes.append(UserChange("user.revoke", app, app))
        elif grant is None or (grant.role, grant.pii) != role:
            if grant is None:
                user.grants.append(Grant(app=app, role=role[0], pii=role[1]))
            else:
                grant.role, grant.pii = role
            changes.append(
                UserChange("user.grant", f"{app}={role[0]}{'+pii' if role[1] else ''}", app)
            )
    db.flush()
    return user, changes
