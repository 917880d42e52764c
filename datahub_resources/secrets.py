"""Secret references (`*SecretRef` attributes, `${VAR}` in app.yaml): resolved from the
environment within the app's scope, never logged.

Scope: a definition names only the variables the operator allows for its app,
DATAHUB_SECRETS_ALLOW (fnmatch patterns; `{APP}` is the app's name in upper case; default
`{APP}_*,DATAHUB_SECRET_*`: the app's own secrets and those the operator shares with every
app). The platform's own variables (`DENIED`: cloud credentials, DATAHUB_* other than
DATAHUB_SECRET_*, DAGSTER_*, libpq's PG*, Spark's, ...) are never an app's secret, whatever
the allow-list says. The loader refuses an out-of-scope name with its file:line
(spec/secrets_policy.py); `resolve` checks again when the value is read.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets as _secrets
import tempfile
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from pathlib import Path

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DENIED = re.compile(
    r"""(?:AWS|AZURE|ARM|GOOGLE|GCP|GCLOUD|CLOUDSDK|DAGSTER|SPARK|PYSPARK|HADOOP|HIVE|JAVA|JDK
        |KUBERNETES|KUBECONFIG|SSH|GIT|GITHUB|GH|MYSQL|MARIADB|PYTHON|PIP|UV|LD|VIRTUAL)(?:_.*)?
      | DATAHUB_(?!SECRET_).*
      | PG[A-Z]*
      | HOME|PATH|USER|LOGNAME|SHELL|PWD|TMPDIR|HOSTNAME""",
    re.VERBOSE,
)
"""The platform's own variables: never a secret of an app."""


class SecretNotFound(KeyError):
    def __str__(self) -> str:  # the name only, never a value
        return (
            f"secret {self.args[0]!r} is not set: export an environment variable of that "
            "name (or configure the secrets backend in deploy/)"
        )


class SecretOutOfScope(KeyError):
    """A definition named a variable outside its app's secrets (the message: why)."""

    def __str__(self) -> str:
        return str(self.args[0])


def _allowed() -> tuple[str, ...]:
    from datahub_resources.settings import Settings

    return Settings.from_env().secrets_allow


def scope_problem(
    name: str,
    app: str | None,
    allow: Sequence[str] | None = None,
    apps: Iterable[str] = (),
) -> str | None:
    """Why app `app` may not name variable `name`, or None when it may. `allow`: the
    patterns (default DATAHUB_SECRETS_ALLOW); app None (a caller that does not know the
    app) matches `{APP}` with any name; `apps`: every app of the project, so that a name
    of a longer app (CRM_REPORTS_DB of crm_reports) is not taken by a shorter one (crm)."""
    if not _NAME.fullmatch(name):
        return f"{name!r} is not an environment variable name (letters, digits and _)"
    if DENIED.fullmatch(name):
        return (
            f"{name} is one of the platform's own variables, never a secret of an app; "
            f"name a variable of the app's own (e.g. {(app or 'APP').upper()}_...)"
        )
    allow = allow or _allowed()
    patterns = [p.replace("{APP}", app.upper() if app else "*") for p in allow]
    matched = [p for p, filled in zip(allow, patterns, strict=True) if fnmatchcase(name, filled)]
    if not matched:
        return (
            f"{name} is outside app {app or '?'}'s secrets (allowed: {', '.join(patterns)}); "
            "rename the variable, or the operator widens DATAHUB_SECRETS_ALLOW"
        )
    owner = max((a for a in apps if name.startswith(f"{a.upper()}_")), key=len, default=None)
    by_app_name_only = all("{APP}" in p for p in matched)
    if app and owner and len(owner) > len(app) and by_app_name_only:
        return f"{name} belongs to app {owner} (its name starts with {owner.upper()}_)"
    return None


def check(name: str, app: str | None = None) -> None:
    """Raise SecretOutOfScope when app `app` may not name `name`."""
    problem = scope_problem(name, app)
    if problem:
        raise SecretOutOfScope(problem)


def resolve(name: str, app: str | None = None) -> str:
    """The secret's value from the environment variable `name`, when app `app` may name it."""
    check(name, app)
    value = os.environ.get(name)
    if value is None or value == "":
        raise SecretNotFound(name)
    return value


def default_mask_key(home: Path) -> str:
    """Key for masking without a secretRef: DATAHUB_MASK_KEY, else a per-install key file.

    The file `$DATAHUB_HOME/secrets/mask.key` (mode 0600) is made on first use so a laptop
    run works; production sets DATAHUB_MASK_KEY or names a secretRef on the step. Concurrent
    first uses (several processes) all read the one key that won: each writes a complete
    key to a temp file and links it into place, which fails when the key is already there.
    """
    env = os.environ.get("DATAHUB_MASK_KEY")
    if env:
        return env
    path = home / "secrets" / "mask.key"
    if not path.exists():
        _create_key_file(path)
    key = path.read_text().strip()
    if not key:
        raise ValueError(
            f"{path}: mask.key is empty; delete it (a new key is made) or restore the key "
            "your masked data was made with, or set DATAHUB_MASK_KEY"
        )
    return key


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".mask.key.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(_secrets.token_hex(32))
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process's key won
            path.hardlink_to(tmp)
    finally:
        Path(tmp).unlink()
