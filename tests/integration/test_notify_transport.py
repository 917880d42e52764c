"""Notification transport for real (#19 findings 4 and 8): SMTP over TLS verifies the server's
certificate (a local aiosmtpd server with a self-signed certificate: refused without its CA,
accepted with DATAHUB_SMTP_CA_FILE), a webhook's redirect is not followed (two local HTTP
servers: the token never reaches the second), a secret URL to a plain-HTTP host and a token
outside the app's secrets are refused before anything is sent."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from datahub_assets.runtime.notify_delivery import deliver
from datahub_assets.spec.job_models import EmailNotification, SmtpServer, WebhookNotification
from tests.support.net import free_port

MAIL = EmailNotification.model_validate({"to": "ops@example.com"})


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and localhost: (cert file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class _Mailbox:
    def __init__(self):
        self.messages = []
        self.logins = []

    async def handle_DATA(self, _server, _session, envelope):  # noqa: N802 - aiosmtpd's hook
        self.messages.append(envelope.content.decode())
        return "250 OK"


def _authenticator(box):
    from aiosmtpd.smtp import AuthResult

    def check(_server, _session, _envelope, _mechanism, auth_data):
        box.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)

    return check


@pytest.fixture(params=["ssl", "starttls"])
def tls_smtp(request, certificate):
    """A local SMTP server speaking TLS with the self-signed certificate: SMTPS or STARTTLS."""
    cert_file, key_file = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    box = _Mailbox()
    port = free_port()
    kw: dict = {"authenticator": _authenticator(box)}
    if request.param == "ssl":  # TLS from the start: AUTH is offered on it
        kw |= {"ssl_context": server_tls, "auth_require_tls": False}
    else:
        kw |= {"tls_context": server_tls, "require_starttls": True, "auth_require_tls": True}
    controller = Controller(box, hostname="127.0.0.1", port=port, **kw)
    controller.start()
    smtp = SmtpServer.model_validate(
        {
            "host": "127.0.0.1",
            "port": port,
            "userSecretRef": "SHOP_SMTP",
            request.param: True,
        }
    )
    try:
        yield smtp, box
    finally:
        controller.stop()


def _deliver(targets, smtp=None, **kw) -> tuple[list[str], list[str]]:
    logs: list[str] = []
    failed = deliver(
        targets, smtp or SmtpServer(), {"text": "x"}, "subject", "body", logs.append,
        attempts=1, first_wait_s=0.01, **kw,
    )  # fmt: skip
    return failed, logs


def test_smtp_tls_refuses_an_unverified_server_and_accepts_it_with_its_ca(
    tls_smtp, certificate, monkeypatch
):
    smtp, box = tls_smtp
    monkeypatch.setenv("SHOP_SMTP", "mailer:pa55word")
    monkeypatch.delenv("DATAHUB_SMTP_CA_FILE", raising=False)
    failed, logs = _deliver([MAIL], smtp)
    assert failed == ["email to ops@example.com"]
    assert "CERTIFICATE_VERIFY_FAILED" in logs[-1]
    assert box.logins == []  # the password never went to the unverified server
    assert box.messages == []
    monkeypatch.setenv("DATAHUB_SMTP_CA_FILE", str(certificate[0]))  # the operator's CA
    failed, logs = _deliver([MAIL], smtp)
    assert failed == [], logs
    assert box.logins == [("mailer", "pa55word")]
    assert len(box.messages) == 1
    assert "Subject: subject" in box.messages[0]


def test_smtp_password_is_never_sent_without_tls(monkeypatch):
    monkeypatch.setenv("SHOP_SMTP", "mailer:pa55word")
    # a remote server without TLS (TEST-NET: nothing is contacted, the refusal comes first)
    smtp = SmtpServer(host="192.0.2.1", port=587, user_secret_ref="SHOP_SMTP")
    started = time.monotonic()
    failed, logs = _deliver([MAIL], smtp)
    assert failed == ["email to ops@example.com"]
    assert "starttls: true or ssl: true" in logs[-1]
    assert time.monotonic() - started < 2


class _Sink(BaseHTTPRequestHandler):
    """Records every request; `redirect_to` (class attribute) answers 302 to that URL."""

    requests: list
    redirect_to: str | None = None

    def _record(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.requests.append((self.command, self.path, dict(self.headers), body))
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _record  # noqa: N815 - http.server's hooks

    def log_message(self, *args):
        pass


def _server(redirect_to: str | None = None):
    handler = type("Sink", (_Sink,), {"requests": [], "redirect_to": redirect_to})
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler.requests


def test_a_webhook_redirect_is_not_followed_and_the_token_stays(monkeypatch):
    monkeypatch.setenv("SHOP_HOOK_TOKEN", "t0ken-secret")
    other, other_got = _server()
    # another host's address: localhost, not 127.0.0.1 (urllib would carry the header along)
    hook, hook_got = _server(redirect_to=f"http://localhost:{other.server_address[1]}/steal")
    try:
        url = f"http://127.0.0.1:{hook.server_address[1]}/hook"
        target = WebhookNotification(url=url, token_secret_ref="SHOP_HOOK_TOKEN")
        failed, logs = _deliver([target])
    finally:
        hook.shutdown()
        other.shutdown()
    assert [(m, p) for m, p, _, _ in hook_got] == [("POST", "/hook")]
    assert hook_got[0][2]["Authorization"] == "Bearer t0ken-secret"
    assert json.loads(hook_got[0][3]) == {"text": "x"}
    assert other_got == []  # neither the token nor anything else reached the other server
    assert failed == [f"webhook {url}"]
    assert "HTTP 302" in logs[-1]
    assert "redirects are not followed" in logs[-1]
    assert "t0ken-secret" not in "\n".join(logs)


def test_a_token_outside_the_apps_secrets_is_never_sent(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-value")
    monkeypatch.setenv("CRM_HOOK_TOKEN", "crm-value")
    sink, got = _server()
    try:
        url = f"http://127.0.0.1:{sink.server_address[1]}/hook"
        platform = WebhookNotification(url=url, token_secret_ref="AWS_SECRET_ACCESS_KEY")
        other_app = WebhookNotification(url=url, token_secret_ref="CRM_HOOK_TOKEN")
        failed, logs = _deliver([platform, other_app], app="shop")
    finally:
        sink.shutdown()
    assert got == []
    assert failed == [f"webhook {url}", f"webhook {url}"]
    assert "AWS_SECRET_ACCESS_KEY is one of the platform's own variables" in logs[0]
    assert "CRM_HOOK_TOKEN is outside app shop's secrets" in logs[1]
    assert "aws-value" not in "\n".join(logs)
    assert "crm-value" not in "\n".join(logs)


def test_a_secret_url_to_a_plain_http_host_is_refused_unnamed(monkeypatch):
    monkeypatch.setenv("SHOP_HOOK_URL", "http://192.0.2.1/services/T000/B000/XXXXsecret")
    monkeypatch.delenv("DATAHUB_WEBHOOK_ALLOW_HTTP", raising=False)
    target = WebhookNotification(url_secret_ref="SHOP_HOOK_URL")
    started = time.monotonic()
    failed, logs = _deliver([target], app="shop")
    assert failed == ["webhook urlSecretRef SHOP_HOOK_URL"]
    assert "urlSecretRef SHOP_HOOK_URL is plain HTTP" in logs[-1]
    assert "XXXXsecret" not in "\n".join(logs)
    assert time.monotonic() - started < 2  # refused before connecting
