"""Deliver a notification: e-mail over SMTP, or a JSON POST to a webhook.

Delivery never raises: each target is tried `attempts` times with a doubling wait, and a
target that still fails is reported back (the sensor logs it); a run's outcome never depends
on it. Secrets (SMTP `user:password`, a webhook URL or bearer token given by `*SecretRef`)
are resolved here and never logged: a secret URL is shown as `urlSecretRef <NAME>`.
"""

from __future__ import annotations

import contextlib
import json
import smtplib
import time
import urllib.request
from collections.abc import Callable
from email.message import EmailMessage

from datahub_assets.spec.job_models import (
    EmailNotification,
    Notification,
    SmtpServer,
    WebhookNotification,
)
from datahub_resources import secrets

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


def send_email(smtp: SmtpServer, target: EmailNotification, subject: str, body: str) -> None:
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = subject, smtp.sender, ", ".join(target.to)
    msg.set_content(body)
    cls = smtplib.SMTP_SSL if smtp.ssl else smtplib.SMTP
    with cls(smtp.host, smtp.port, timeout=TIMEOUT_S) as server:
        if smtp.starttls:
            server.starttls()
        if smtp.user_secret_ref:
            user, _, password = secrets.resolve(smtp.user_secret_ref).partition(":")
            server.login(user, password)
        server.send_message(msg)


def post_webhook(target: WebhookNotification, payload: dict) -> None:
    url = target.url or secrets.resolve(target.url_secret_ref or "")
    headers = {"Content-Type": "application/json", "User-Agent": "datahub-notify"}
    if target.token_secret_ref:
        headers["Authorization"] = f"Bearer {secrets.resolve(target.token_secret_ref)}"
    request = urllib.request.Request(
        url, data=json.dumps(payload, default=str).encode(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
        if response.status >= 300:
            raise OSError(f"HTTP {response.status}")


def deliver(
    targets: list[Notification],
    smtp: SmtpServer,
    payload: dict,
    subject: str,
    body: str,
    log: Callable[[str], None],
    attempts: int = 3,
    first_wait_s: float = 1.0,
) -> list[str]:
    """Send to every target; returns the targets that still failed after `attempts`."""
    failed = []
    for target in targets:
        for attempt in range(1, attempts + 1):
            try:
                if isinstance(target, EmailNotification):
                    send_email(smtp, target, subject, body)
                else:
                    post_webhook(target, payload)
                log(f"notified {describe(target)}")
                break
            except Exception as exc:  # noqa: BLE001 - delivery must never fail the caller
                error = secrets_free(exc, target)
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


def secrets_free(exc: Exception, target: Notification) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(target, WebhookNotification) and target.url_secret_ref:
        with contextlib.suppress(KeyError):  # an unresolved secret cannot be in the text
            text = text.replace(secrets.resolve(target.url_secret_ref), "<urlSecretRef>")
    return text
