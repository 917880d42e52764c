"""The operator's policy over what definitions read and where they send it, checked at load.

- Every `*SecretRef` a definition names (sources, targets, masks, app.yaml connections, SMTP,
  webhooks) is within its app's secrets (DATAHUB_SECRETS_ALLOW, never the platform's own
  variables: `datahub_resources/secrets.py`). `${VAR}` in app.yaml is checked where it is
  expanded (`spec/yaml_reader.py`).
- A webhook is https://; http:// only to a loopback host, unless the operator sets
  DATAHUB_WEBHOOK_ALLOW_HTTP=1 (the payload and the bearer token would cross the network in
  clear). A URL held in a urlSecretRef is checked when it is sent (`runtime/notify_delivery.py`).
- An SMTP password (`userSecretRef`) never crosses the network in clear: it needs
  `starttls: true` or `ssl: true`, a loopback server excepted.

Each problem is a SpecError at the element's file:line (app.yaml notifications carry no line
of their own: the file's first, with the key path in the message).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from datahub_assets.spec.errors import SpecError
from datahub_assets.spec.job_models import JobPipeline, SmtpServer, WebhookNotification
from datahub_assets.spec.jobs import webhook_problem
from datahub_assets.spec.models import AppConfig, Loc
from datahub_resources.secrets import scope_problem
from datahub_resources.settings import Settings


def policy_errors(
    apps: Mapping[str, AppConfig],
    pipelines: Iterable[tuple[str, str, BaseModel]],
    jobs: Sequence[tuple[str, str, JobPipeline]],
    settings: Settings | None = None,
) -> list[SpecError]:
    """The policy problems of a project: `apps` (app -> app.yaml), `pipelines` and `jobs`
    as (app, file, definition)."""
    settings = settings or Settings.from_env()
    check = _Check(settings, frozenset(apps))
    for app, config in apps.items():
        file = config.loc.file if config.loc else f"{app}/app.yaml"
        check.secrets(app, file, config, in_app_yaml=True)
        notes = config.notifications
        if notes is not None:
            check.smtp(file, config.loc, notes.smtp)
            for i, target in enumerate(notes.targets):
                if isinstance(target, WebhookNotification):
                    check.webhook(file, target, config.loc, f"notifications.targets[{i}]")
    for app, file, node in [*pipelines, *jobs]:
        check.secrets(app, file, node, in_app_yaml=False)
    for _, file, job in jobs:
        for target in job.notifications:
            if isinstance(target, WebhookNotification):
                check.webhook(file, target, target.loc, "")
    return check.errors


def is_loopback(host: str | None) -> bool:
    """Is `host` this machine (localhost, 127.0.0.0/8, ::1)? Traffic to it stays here."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_problem(url: str, allow_http: bool) -> str | None:
    """Why `url` may not receive a webhook, or None: http:// needs a loopback host or
    DATAHUB_WEBHOOK_ALLOW_HTTP=1."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "http" or allow_http or is_loopback(parts.hostname):
        return None
    return (
        "is plain HTTP: the payload and any token would cross the network in clear; use "
        "https://, or the operator sets DATAHUB_WEBHOOK_ALLOW_HTTP=1 (http:// to a loopback "
        "host is always allowed)"
    )


def smtp_cleartext_problem(smtp: SmtpServer) -> str | None:
    """Why the SMTP password of `smtp` would cross the network in clear, or None."""
    if not smtp.user_secret_ref or smtp.starttls or smtp.ssl or is_loopback(smtp.host):
        return None
    return (
        f"userSecretRef on SMTP server {smtp.host}:{smtp.port} without TLS would send the "
        "password in clear; set starttls: true or ssl: true"
    )


class _Check:
    def __init__(self, settings: Settings, apps: frozenset[str]) -> None:
        self.settings = settings
        self.apps = apps
        self.errors: list[SpecError] = []

    def err(self, file: str, loc: Loc | None, message: str) -> None:
        line, column = (loc.line, loc.column) if loc else (0, 0)
        self.errors.append(SpecError(file, line, column, message))

    def secrets(self, app: str, file: str, node: BaseModel, in_app_yaml: bool) -> None:
        for path, name, loc in _secret_refs(node, None, ""):
            problem = scope_problem(name, app, self.settings.secrets_allow, self.apps)
            if problem:
                attr = path if in_app_yaml else path.rsplit(".", 1)[-1]
                self.err(file, loc, f'{attr}="{name}": {problem}')

    def smtp(self, file: str, loc: Loc | None, smtp: SmtpServer) -> None:
        problem = smtp_cleartext_problem(smtp)
        if problem:
            self.err(file, loc, f"notifications.smtp: {problem}")

    def webhook(self, file: str, target: WebhookNotification, loc: Loc | None, path: str) -> None:
        where = f"{path}: " if path else ""
        if path:  # app.yaml targets: the rules job targets get in spec/jobs.py
            webhook_problem(_Prefixed(self, where, loc), file, target)
        problem = plain_http_problem(target.url or "", self.settings.webhook_allow_http)
        if problem:
            self.err(file, loc, f'{where}url="{target.url}" on <webhook> {problem}')


class _Prefixed:
    """`webhook_problem`'s error sink for an app.yaml target: the key path, the file's line."""

    def __init__(self, check: _Check, prefix: str, loc: Loc | None) -> None:
        self.check, self.prefix, self.loc = check, prefix, loc

    def err(self, file: str, _node: Any, message: str) -> None:
        self.check.err(file, self.loc, self.prefix + message)


def _secret_refs(node: BaseModel, loc: Loc | None, path: str) -> Iterator[tuple[str, str, Any]]:
    """(key path, secret name, location) of every `*SecretRef` attribute under `node`; an
    element without a location of its own takes its parent's."""
    here = getattr(node, "loc", None) or loc
    for name, field in type(node).model_fields.items():
        value = getattr(node, name)
        key = field.alias or name
        if name.endswith("secret_ref"):
            if isinstance(value, str):
                yield f"{path}{key}", value, here
            continue
        for suffix, child in _children(value):
            yield from _secret_refs(child, here, f"{path}{key}{suffix}.")


def _children(value: Any) -> Iterator[tuple[str, BaseModel]]:
    if isinstance(value, BaseModel) and not isinstance(value, Loc):
        yield "", value
    elif isinstance(value, list | tuple):
        yield from ((f"[{i}]", v) for i, v in enumerate(value) if isinstance(v, BaseModel))
    elif isinstance(value, dict):
        yield from ((f".{k}", v) for k, v in value.items() if isinstance(v, BaseModel))
