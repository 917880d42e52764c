"""Secret references (`*SecretRef` attributes): resolved from the environment, never logged."""

from __future__ import annotations

import os
import secrets as _secrets
from pathlib import Path


class SecretNotFound(KeyError):
    def __str__(self) -> str:  # the name only, never a value
        return (
            f"secret {self.args[0]!r} is not set: export an environment variable of that "
            "name (or configure the secrets backend in deploy/)"
        )


def resolve(name: str) -> str:
    """The secret's value from the environment variable `name`."""
    value = os.environ.get(name)
    if value is None or value == "":
        raise SecretNotFound(name)
    return value


def default_mask_key(home: Path) -> str:
    """Key for masking without a secretRef: DATAHUB_MASK_KEY, else a per-install key file.

    The file `$DATAHUB_HOME/secrets/mask.key` (mode 0600) is made on first use so a laptop
    run works; production sets DATAHUB_MASK_KEY or names a secretRef on the step.
    """
    env = os.environ.get("DATAHUB_MASK_KEY")
    if env:
        return env
    path = home / "secrets" / "mask.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(_secrets.token_hex(32))
    return path.read_text().strip()
