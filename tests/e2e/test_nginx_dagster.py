"""The Dagster UI behind the door (contract section 6), with every part real: `datahub serve`
(uvicorn, users made with the CLI), dagster-webserver over a small pipelines dir, and Debian's
nginx running deploy/nginx/datahub.conf rendered with envsubst as the proxy image renders it
(deploy/nginx/entrypoint.sh), each on a free loopback port.

Through the proxy: no session → 302 to the service's sign-in page (and back afterwards);
a forged session cookie → the same; a signed-in user without `operator` → 403; an operator →
the Dagster UI's HTML, its GraphQL over HTTP (`{ version }`) and its GraphQL websocket
upgrade; the service's sign-in page, API and static files at the same origin; /auth/verify
not reachable from outside."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlencode

import pytest

from datahub_assets.demo.local_servers import free_port
from tests.support.processes import stop_group

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NGINX = Path("/usr/sbin/nginx")
CONF = REPO / "deploy" / "nginx" / "datahub.conf"
VARIABLES = "${DATAHUB_PROXY_PORT} ${DATAHUB_SERVICE_UPSTREAM} ${DAGSTER_WEBSERVER_UPSTREAM}"
PASSWORDS = {"olga": "operator-pass-1234", "eddie": "editor-pass-1234"}
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]


# ------------------------------------------------------------------------- the processes


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f"{url}: the server exited:\n{log.read_text()[-4000:]}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer 200 in {timeout} s:\n{log.read_text()[-4000:]}")


LOCATION = """{ workspaceOrError { ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename } } } } }"""


def _post_graphql(base: str, query: str) -> dict:
    req = urllib.request.Request(
        base + "/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())["data"]


def _wait_loaded(base: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Until the webserver's code location has loaded (it starts in a subprocess)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f"dagster-webserver exited:\n{log.read_text()[-4000:]}"
        entries = _post_graphql(base, LOCATION)["workspaceOrError"]["locationEntries"]
        if entries and all(e["loadStatus"] == "LOADED" for e in entries):
            kinds = {e["locationOrLoadError"]["__typename"] for e in entries}
            assert kinds == {"RepositoryLocation"}, entries
            return
        time.sleep(1)
    raise AssertionError(f"the code location did not load in {timeout} s")


def _start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        env=env,
        cwd=REPO,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _datahub(*args: str, env: dict[str, str], stdin: str | None = None) -> None:
    proc = subprocess.run(
        [str(BIN / "datahub"), *args],
        env=env,
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"datahub {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"


def render_conf(proxy_port: int, service_port: int, dagster_port: int) -> str:
    """deploy/nginx/datahub.conf through envsubst with the entrypoint's variable list."""
    env = os.environ | {
        "DATAHUB_PROXY_PORT": f"127.0.0.1:{proxy_port}",
        "DATAHUB_SERVICE_UPSTREAM": f"127.0.0.1:{service_port}",
        "DAGSTER_WEBSERVER_UPSTREAM": f"127.0.0.1:{dagster_port}",
    }
    proc = subprocess.run(
        ["envsubst", VARIABLES], input=CONF.read_text(), env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "${" not in proc.stdout, "a variable of datahub.conf is not in the entrypoint's list"
    return proc.stdout


def _nginx_main(root: Path, site: Path) -> str:
    """A main configuration around the http-context file, everything under `root` (the
    Debian image uses the package's /etc/nginx/nginx.conf, which includes conf.d/*.conf)."""
    temps = (
        "\n".join(
            f"    {name}_temp_path {root / name};" for name in ("client_body", "proxy", "fastcgi")
        )
        + f"\n    uwsgi_temp_path {root / 'uwsgi'};\n    scgi_temp_path {root / 'scgi'};"
    )
    return f"""worker_processes 1;
events {{ worker_connections 256; }}
http {{
    access_log {root / "access.log"};
{temps}
    include {site};
}}
"""


@dataclass
class Stack:
    proxy: str
    service: str
    dagster: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    if not NGINX.exists() or shutil.which("envsubst") is None:
        pytest.fail("Debian's nginx and envsubst are needed (scripts/ensure_system.sh)")
    tmp = tmp_path_factory.mktemp("door")
    home, pipes = tmp / "home", tmp / "pipelines"
    (home / "dagster").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
    env = os.environ | {
        "DATAHUB_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "DATAHUB_DATA_DIR": str(tmp / "data"),
        "DATAHUB_PIPELINES_DIR": str(pipes),
        "DATAHUB_STATE_URI": f"sqlite:///{tmp / 'hub.db'}",
        "DATAHUB_SERVICE_SECRET": "nginx-test-secret-" + "k" * 32,
    }
    _datahub("new", "pipeline", "shop", "raw", "orders", "--source", "csv", env=env)
    _datahub(
        "users",
        "add",
        "olga",
        "--operator",
        "--password-stdin",
        env=env,
        stdin=PASSWORDS["olga"] + "\n",
    )
    _datahub("users", "add", "eddie", "--password-stdin", env=env, stdin=PASSWORDS["eddie"] + "\n")
    _datahub("users", "grant", "eddie", "--app", "shop", "--role", "editor", env=env)

    service_port, dagster_port, proxy_port = free_port(), free_port(), free_port()
    service_log, dagster_log = tmp / "service.log", tmp / "dagster.log"
    procs = [
        _start(
            [str(BIN / "datahub"), "serve", "--host", "127.0.0.1", "--port", str(service_port)],
            env,
            service_log,
        ),
        _start(
            [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(dagster_port)]
            + ["-m", "datahub_assets.definitions"],
            env,
            dagster_log,
        ),
    ]
    # nginx's workers run as nobody: a world-readable folder outside pytest's private tmp
    root = Path(tempfile.mkdtemp(prefix="datahub-nginx-"))
    root.chmod(0o755)
    try:
        site = root / "datahub.conf"
        site.write_text(render_conf(proxy_port, service_port, dagster_port))
        (root / "nginx.conf").write_text(_nginx_main(root, site))
        nginx_log = root / "nginx.log"
        procs.append(
            _start(
                [str(NGINX), "-p", str(root), "-c", str(root / "nginx.conf")]
                + ["-g", f"daemon off; pid {root / 'nginx.pid'}; error_log stderr;"],
                env,
                nginx_log,
            )
        )
        _wait_http(f"http://127.0.0.1:{service_port}/api/v1/health", procs[0], service_log, 120)
        _wait_http(f"http://127.0.0.1:{dagster_port}/server_info", procs[1], dagster_log, 300)
        _wait_loaded(f"http://127.0.0.1:{dagster_port}", procs[1], dagster_log, 300)
        _wait_http(f"http://127.0.0.1:{proxy_port}/api/v1/health", procs[2], nginx_log, 60)
        yield Stack(
            proxy=f"http://127.0.0.1:{proxy_port}",
            service=f"http://127.0.0.1:{service_port}",
            dagster=f"http://127.0.0.1:{dagster_port}",
            env=env,
        )
    finally:
        for proc in reversed(procs):
            stop_group(proc)
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------- a browser


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args, **_kwargs):  # every hop is asserted by the test
        return None


@dataclass
class Answer:
    status: int
    headers: Message  # case-insensitive, as sent
    body: bytes


class Browser:
    """urllib with a cookie jar that does not follow redirects (each hop is asserted)."""

    def __init__(self, base: str, cookie: str | None = None):
        self.base = base
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect()
        )
        if cookie:  # as a forger sends it: a header on every request
            self.opener.addheaders = [("Cookie", cookie)]

    def request(
        self,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        method: str | None = None,
    ) -> Answer:
        req = urllib.request.Request(
            self.base + path, data=data, headers=headers or {}, method=method
        )
        try:
            with self.opener.open(req, timeout=60) as resp:
                return Answer(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, error.headers, error.read())

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def graphql(self, query: str) -> Answer:
        return self.request(
            "/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
        )


def sign_in(stack: Stack, name: str) -> Browser:
    """Sign in through the proxy with the service's /login form (double-submit CSRF: the
    cookie `datahub_login_csrf` and the form's `login_csrf` field)."""
    browser = Browser(stack.proxy)
    page = browser.request("/login?next=/runs")
    assert page.status == 200, page.body[:500]
    token = browser.cookie("datahub_login_csrf")
    assert token, "the sign-in page set no CSRF cookie"
    assert f'name="login_csrf" value="{token}"'.encode() in page.body
    form = {"username": name, "password": PASSWORDS[name], "login_csrf": token, "next": "/runs"}
    answer = browser.request(
        "/login",
        data=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status == 303, (answer.status, answer.body[:500])
    assert answer.headers["Location"] == "/runs"
    assert browser.cookie("datahub_session"), "the sign-in set no session cookie"
    return browser


# ------------------------------------------------------------------------- the tests


def test_no_session_is_sent_to_the_sign_in_page_and_back(stack):
    browser = Browser(stack.proxy)
    for path in ("/", "/runs", "/assets/shop/raw/orders"):
        answer = browser.request(path)
        assert answer.status == 302, (path, answer.status)
        assert answer.headers["Location"] == f"/login?next={path}", answer.headers
    assert browser.graphql("{ version }").status == 302
    # the sign-in page itself is the service's, at the same origin
    page = browser.request("/login?next=/runs")
    assert page.status == 200
    assert b"<form" in page.body
    # the service's API and health through the proxy; its nginx check is not reachable
    assert browser.request("/api/v1/health").status == 200
    assert browser.request("/api/v1/me").status == 401
    assert browser.request("/auth/verify").status == 404


def test_a_forged_session_cookie_is_sent_to_sign_in(stack):
    browser = Browser(stack.proxy, cookie="datahub_session=forged-" + "A" * 40)
    answer = browser.request("/runs")
    assert answer.status == 302
    assert answer.headers["Location"].startswith("/login?next=")
    assert browser.graphql("{ version }").status == 302


def test_a_user_without_operator_gets_403(stack):
    browser = sign_in(stack, "eddie")
    assert browser.request("/runs").status == 403
    assert browser.request("/").status == 403
    assert browser.graphql("{ version }").status == 403
    # the portal is theirs all the same
    assert browser.request("/apps").status == 200


def test_an_operator_gets_the_dagster_ui_and_its_graphql(stack):
    browser = sign_in(stack, "olga")
    ui = browser.request("/runs")
    assert ui.status == 200, ui.body[:500]
    assert b"Dagster" in ui.body
    assert b'<div id="root"' in ui.body or b"id=root" in ui.body
    answer = browser.graphql("{ version }")
    assert answer.status == 200, answer.body[:500]
    version = json.loads(answer.body)["data"]["version"]
    assert version == _post_graphql(stack.dagster, "{ version }")["version"]
    # the assets of the pipelines dir, through the proxy
    nodes = json.loads(browser.graphql("{ assetNodes { assetKey { path } } }").body)
    keys = {"/".join(n["assetKey"]["path"]) for n in nodes["data"]["assetNodes"]}
    assert "shop/raw/orders" in keys
    # GraphQL subscriptions: the websocket upgrade reaches the webserver
    assert _websocket_upgrade(stack.proxy, browser.cookie("datahub_session") or "") == 101
    assert _websocket_upgrade(stack.proxy, "") == 302


def _websocket_upgrade(base: str, session: str) -> int:
    """The status line of a websocket handshake on /graphql (graphql-ws protocol, as the UI
    opens it)."""
    host, port = base.removeprefix("http://").split(":")
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        "GET /graphql HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: graphql-ws\r\n"
        + (f"Cookie: datahub_session={session}\r\n" if session else "")
        + "\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request.encode())
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    return int(status_line.split()[1])


def test_the_rendered_configuration_names_every_upstream():
    text = render_conf(8080, 8000, 3000)
    assert "auth_request /_auth;" in text
    assert "proxy_pass http://datahub_service/auth/verify;" in text
    assert "proxy_pass_request_body off;" in text
    assert 'proxy_set_header Content-Length "";' in text
    assert "server 127.0.0.1:8000;" in text
    assert "server 127.0.0.1:3000;" in text
    # nginx's own variables survive the substitution
    assert "$request_uri" in text
    assert "$http_upgrade" in text
