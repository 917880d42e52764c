"""`datahub users ...` and `datahub tokens ...`: the service's users, their grants and API
tokens, in DATAHUB_STATE_URI (migrated first). Passwords are read from stdin, never from the
command line; every change is audited with the actor `cli:<os user>`."""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from datahub_resources.settings import Settings

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class CliError(Exception):
    """A user error: printed as `error: ...`, exit code 1."""


def _say(text: str, out: TextIO | None = None) -> None:
    (out or sys.stdout).write(text + "\n")


def add_parser(sub) -> None:
    users = sub.add_parser("users", help="users of the service (datahub serve) and their roles")
    actions = users.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="create a user (the password is read from stdin)")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="platform admin: may do everything")
    add.add_argument("--operator", action="store_true", help="may use the Dagster UI")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    grant = actions.add_parser("grant", help="give a role on one app")
    grant.add_argument("name")
    grant.add_argument("--app", required=True)
    grant.add_argument("--role", required=True, choices=["viewer", "editor", "approver"])
    grant.add_argument("--pii", action="store_true", help="may see the app's unmasked PII")
    revoke = actions.add_parser("revoke", help="take a user's role on an app away")
    revoke.add_argument("name")
    revoke.add_argument("--app", required=True)
    actions.add_parser("list", help="users, their platform roles and grants")
    delete = actions.add_parser("delete", help="delete a user (their tokens and sessions end)")
    delete.add_argument("name")
    passwd = actions.add_parser("passwd", help="set a new password (read from stdin)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read it from stdin")

    toks = sub.add_parser("tokens", help="API tokens of the service's users")
    tactions = toks.add_subparsers(dest="action", required=True)
    create = tactions.add_parser("create", help="print a new API token (shown once)")
    create.add_argument("name")
    create.add_argument("--expires", default=None, help="e.g. 30d, 12h (default: never)")
    tlist = tactions.add_parser("list", help="a user's API tokens")
    tlist.add_argument("name")
    trevoke = tactions.add_parser("revoke", help="revoke an API token by its id")
    trevoke.add_argument("token_id")


def actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _read_password(args: argparse.Namespace, stdin: TextIO) -> str:
    from datahub_assets.service.auth.passwords import check_strength

    if not args.password_stdin:
        raise CliError(
            "pass --password-stdin and write the password to stdin "
            "(e.g. `printf '%s' \"$PW\" | datahub users add NAME --password-stdin`); "
            "passwords are never read from the command line"
        )
    tty = stdin.isatty()
    password = getpass.getpass("password: ") if tty else stdin.readline().rstrip("\r\n")
    if not password:
        raise CliError("no password on stdin")
    try:
        check_strength(password)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return password


def _user(db: Session, name: str):
    from datahub_assets.service.state.models import User

    user = db.scalar(select(User).where(User.username == name))
    if user is None:
        raise CliError(f"no user {name!r} (datahub users list)")
    return user


def _audit(db: Session, action: str, target: str, app: str | None = None, detail=None) -> None:
    from datahub_assets.service import audit

    audit.record(
        db, actor=actor(), action=action, target=target, outcome="ok", app=app, detail=detail
    )


def _add(db: Session, args: argparse.Namespace, stdin: TextIO) -> str:
    from datahub_assets.service.auth.passwords import hash_password
    from datahub_assets.service.state.db import utcnow
    from datahub_assets.service.state.models import User

    if not USERNAME.match(args.name):
        raise CliError(
            f"user name {args.name!r}: letters, digits and . _ @ - (at most 64, starting with "
            "a letter or digit)"
        )
    if db.scalar(select(User).where(User.username == args.name)) is not None:
        raise CliError(f"user {args.name!r} exists (datahub users passwd to change a password)")
    password = _read_password(args, stdin)
    db.add(
        User(
            username=args.name,
            password_hash=hash_password(password),
            admin=args.admin,
            operator=args.operator,
            created_at=utcnow(),
        )
    )
    _audit(db, "user.add", args.name, detail={"admin": args.admin, "operator": args.operator})
    roles = [r for r, on in (("admin", args.admin), ("operator", args.operator)) if on]
    return f"added user {args.name}" + (f" ({', '.join(roles)})" if roles else "")


def _grant(db: Session, args: argparse.Namespace) -> str:
    from datahub_assets.service.state.models import Grant

    user = _user(db, args.name)
    grant = next((g for g in user.grants if g.app == args.app), None)
    if grant is None:
        user.grants.append(Grant(app=args.app, role=args.role, pii=args.pii))
    else:
        grant.role, grant.pii = args.role, args.pii
    _audit(db, "user.grant", args.name, app=args.app, detail={"role": args.role, "pii": args.pii})
    return f"{args.name}: {args.role} on {args.app}" + (" (pii)" if args.pii else "")


def _revoke(db: Session, args: argparse.Namespace) -> str:
    user = _user(db, args.name)
    grant = next((g for g in user.grants if g.app == args.app), None)
    if grant is None:
        raise CliError(f"{args.name} has no role on {args.app}")
    user.grants.remove(grant)
    _audit(db, "user.revoke", args.name, app=args.app)
    return f"{args.name}: no role on {args.app} any more"


def _list(db: Session) -> str:
    from datahub_assets.service.state.models import User

    rows = [("user", "platform", "grants")]
    for user in db.scalars(select(User).order_by(User.username)):
        platform = ",".join(
            r for r, on in (("admin", user.admin), ("operator", user.operator)) if on
        )
        grants = " ".join(
            f"{g.app}:{g.role}" + (":pii" if g.pii else "")
            for g in sorted(user.grants, key=lambda g: g.app)
        )
        rows.append((user.username, platform or "-", grants or "-"))
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{r[0].ljust(width[0])}  {r[1].ljust(width[1])}  {r[2]}" for r in rows)


def _delete(db: Session, args: argparse.Namespace) -> str:
    user = _user(db, args.name)
    db.delete(user)
    _audit(db, "user.delete", args.name)
    return f"deleted user {args.name} (their tokens and sessions no longer work)"


def _passwd(db: Session, args: argparse.Namespace, stdin: TextIO) -> str:
    from datahub_assets.service.auth.passwords import hash_password
    from datahub_assets.service.auth.sessions import end_user_sessions

    user = _user(db, args.name)
    user.password_hash = hash_password(_read_password(args, stdin))
    end_user_sessions(db, user.id)
    _audit(db, "user.passwd", args.name)
    return f"{args.name}: new password (access tokens and sessions issued before it end)"


def _tokens(db: Session, args: argparse.Namespace) -> str:
    from datahub_assets.service.auth import tokens
    from datahub_assets.service.state.db import as_utc, utcnow
    from datahub_assets.service.state.models import ApiToken

    if args.action == "create":
        user = _user(db, args.name)
        try:
            expires = tokens.parse_duration(args.expires) if args.expires else None
        except ValueError as exc:
            raise CliError(f"--expires {exc}") from None
        text, row = tokens.create_api_token(db, user, expires)
        _audit(
            db, "token.create", args.name, detail={"token_id": row.key_id, "expires": args.expires}
        )
        return text
    if args.action == "list":
        user = _user(db, args.name)
        rows = [("id", "created", "expires", "state")]
        now = utcnow()
        for t in db.scalars(select(ApiToken).where(ApiToken.user_id == user.id)):
            expired = t.expires_at is not None and as_utc(t.expires_at) <= now
            state = "revoked" if t.revoked_at else "expired" if expired else "active"
            expiry = as_utc(t.expires_at).isoformat(timespec="seconds") if t.expires_at else "never"
            created = as_utc(t.created_at).isoformat(timespec="seconds")
            rows.append((t.key_id, created, expiry, state))
        width = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)).rstrip() for r in rows
        )
    key_id = args.token_id.removeprefix(tokens.API_PREFIX).split("_")[0]
    row = db.scalar(select(ApiToken).where(ApiToken.key_id == key_id))
    if row is None:
        raise CliError(f"no API token {key_id!r} (datahub tokens list NAME)")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    _audit(db, "token.revoke", key_id)
    return f"revoked token {key_id}"


def run(args: argparse.Namespace, _settings: Settings, stdin: TextIO | None = None) -> int:
    # imported for its session hooks: a change to users, grants or tokens committed here
    # signals the running servers on this host, whose token caches drop it at once
    from datahub_assets.service.auth import tokens  # noqa: F401
    from datahub_assets.service.settings import ServiceSettings
    from datahub_assets.service.state.db import State, migrate

    service = ServiceSettings.from_env()
    migrate(service.state_uri)
    state = State(service.state_uri)
    source: TextIO = stdin or sys.stdin
    try:
        with state.session() as db:
            if args.command == "tokens":
                out = _tokens(db, args)
            elif args.action == "add":
                out = _add(db, args, source)
            elif args.action == "grant":
                out = _grant(db, args)
            elif args.action == "revoke":
                out = _revoke(db, args)
            elif args.action == "delete":
                out = _delete(db, args)
            elif args.action == "passwd":
                out = _passwd(db, args, source)
            else:
                out = _list(db)
    except CliError as exc:
        _say(f"error: {exc}", sys.stderr)
        return 1
    finally:
        state.dispose()
    _say(out)
    return 0
