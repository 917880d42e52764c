"""Deliver a notification: e-mail over SMTP, or a JSON POST to a webhook.

Delivery never raises: each target is tried `attempts` times with a doubling wait, and a
target that still fails is reported back (the sensor logs it); a run's outcome never depends
on it. Secrets (SMTP `user:password`, a webhook URL or bearer token given by `*SecretRef`)
are resolved here within the app's scope and never logged: a secret URL is shown as
`urlSecretRef <NAME>`.

Transport (the operator's settings, read at load): SMTP TLS (`ssl` / `starttls`) verifies the
server's certificate and name against the system CAs, or DATAHUB_SMTP_CA_FILE; a password is
never sent without TLS (a loopback server excepted). Webhooks verify TLS, refuse http:// to
another host unless DATAHUB_WEBHOOK_ALLOW_HTTP=1, and never follow a redirect (a POST would
not be re-sent, and the token must not reach another address).
"""

from __future__ import annotations

import contextlib
import json
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from email.message import EmailMessage
from urllib.parse import urlsplit

from datahub_assets.spec.job_models import (
    EmailNotification,
    Notification,
    SmtpServer,
    WebhookNotification,
)
from datahub_assets.spec.secrets_policy import plain_http_problem, smtp_cleartext_problem
from datahub_resources import secrets
from datahub_resources.settings import Settings

TIMEOUT_S = 10.0


def wants(target: Notification, outcome: str) -> bool:
    """Does `target` (on=failure|success|completion|sla) take an outcome
    (`failure`, `success` or `sla`)?"""
    if outcome == "sla":
        return target.on in ("sla", "failure", "completion")
    return target.on == outcome or target.on == "completion"


def describe(target: Notification) -> str:
    if isinstance(target, EmailNotification):
        return f"email to {', '.join(target.to)}"
    if target.url:
        return f"webhook {target.url}"
    return f"webhook urlSecretRef {target.url_secret_ref}"


class DeliveryRefused(OSError):
    """The platform would not send: the transport breaks the operator's policy."""


def smtp_tls_context(settings: Settings) -> ssl.SSLContext:
    """Certificate- and host-name-checked TLS: the system CAs, or DATAHUB_SMTP_CA_FILE."""
    ca = settings.smtp_ca_file
    return ssl.create_default_context(cafile=str(ca) if ca else None)


def send_email(
    smtp: SmtpServer,
    target: EmailNotification,
    subject: str,
    body: str,
    app: str | None = None,
    settings: Settings | None = None,
) -> None:
    settings = settings or Settings.from_env()
    problem = smtp_cleartext_problem(smtp)
    if problem:
        raise DeliveryRefused(problem)
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = subject, smtp.sender, ", ".join(target.to)
    msg.set_content(body)
    tls = smtp_tls_context(settings) if smtp.ssl or smtp.starttls else None
    if smtp.ssl:
        server = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=TIMEOUT_S, context=tls)
    else:
        server = smtplib.SMTP(smtp.host, smtp.port, timeout=TIMEOUT_S)
    with server:
        if smtp.starttls:
            server.starttls(context=tls)
        if smtp.user_secret_ref:
            user, _, password = secrets.resolve(smtp.user_secret_ref, app).partition(":")
            server.login(user, password)
        server.send_message(msg)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ARG002
        return None  # urllib raises the 3xx as an HTTPError


def post_webhook(
    target: WebhookNotification,
    payload: dict,
    app: str | None = None,
    settings: Settings | None = None,
) -> None:
    settings = settings or Settings.from_env()
    url = (target.url or secrets.resolve(target.url_secret_ref or "", app)).strip()
    shown = target.url or f"urlSecretRef {target.url_secret_ref}"
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise DeliveryRefused(f"{shown} is not an http(s) URL")
    problem = plain_http_problem(url, settings.webhook_allow_http)
    if problem:
        raise DeliveryRefused(f"{shown} {problem}")
    headers = {"Content-Type": "application/json", "User-Agent": "datahub-notify"}
    if target.token_secret_ref:
        headers["Authorization"] = f"Bearer {secrets.resolve(target.token_secret_ref, app)}"
    request = urllib.request.Request(
        url, data=json.dumps(payload, default=str).encode(), headers=headers, method="POST"
    )
    opener = urllib.request.build_opener(_NoRedirects())
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            if response.status >= 300:
                raise OSError(f"HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        exc.close()
        if 300 <= exc.code < 400:
            raise DeliveryRefused(
                f"HTTP {exc.code}: the webhook redirects, and redirects are not followed (the "
                "POST would not be re-sent, and the token must not reach another address); "
                "set the final address as the URL"
            ) from None
        raise


def deliver(
    targets: list[Notification],
    smtp: SmtpServer,
    payload: dict,
    subject: str,
    body: str,
    log: Callable[[str], None],
    attempts: int = 3,
    first_wait_s: float = 1.0,
    app: str | None = None,
    settings: Settings | None = None,
) -> list[str]:
    """Send to every target; returns the targets that still failed after `attempts`.
    `app`: whose secrets the targets name; `settings`: the transport policy (read at load)."""
    settings = settings or Settings.from_env()
    failed = []
    for target in targets:
        for attempt in range(1, attempts + 1):
            try:
                if isinstance(target, EmailNotification):
                    send_email(smtp, target, subject, body, app, settings)
                else:
                    post_webhook(target, payload, app, settings)
                log(f"notified {describe(target)}")
                break
            except Exception as exc:  # noqa: BLE001 - delivery must never fail the caller
                error = secrets_free(exc, target, app)
                if attempt == attempts:
                    log(
                        f"notification to {describe(target)} failed after {attempts} attempts: "
                        f"{error}"
                    )
                    failed.append(describe(target))
                else:
                    log(
                        f"notification to {describe(target)} failed (attempt {attempt}): "
                        f"{error}; retrying"
                    )
                    time.sleep(first_wait_s * 2 ** (attempt - 1))
    return failed


def secrets_free(exc: Exception, target: Notification, app: str | None = None) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(target, WebhookNotification) and target.url_secret_ref:
        with contextlib.suppress(KeyError):  # an unresolved secret cannot be in the text
            text = text.replace(secrets.resolve(target.url_secret_ref, app), "<urlSecretRef>")
    return text
