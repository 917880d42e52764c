"""The portal end to end in a real browser: a real `datahub serve` (uvicorn, fresh
DATAHUB_HOME, a pipelines tree with one app, users made with `datahub users add/grant`) and
Debian's Chromium driven headless by Selenium through Debian's chromedriver.

An editor signs in, creates a CSV pipeline through the wizard (a landing CSV is present),
waits for the validation typed into the form to say valid, previews it (the sample's rows and
the checks are shown), and submits it; an approver signs in (through /login?next=) and
approves; `dg list defs` on the pipelines folder then lists the new asset. No page logs an
error to the browser console (a probe page that does log one is seen first, so a capture
that sees nothing cannot pass by accident)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.net import free_port

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PASSWORD = "correct horse battery staple"
CSV = "id,status,amount\n1,new,10.5\n2,paid,20\n3,paid,7\n"
RAW_XML = """<pipeline id="ingest_orders" version="1.0.0" layer="raw">
  <metadata><owner>team-shop</owner><description>Orders</description></metadata>
  <sources><csv id="src" path="landing/orders/*.csv" header="true"/></sources>
  <targets><table table="orders" source="src" mode="append"/></targets>
</pipeline>
"""


def _env(tmp: Path) -> dict[str, str]:
    home = tmp / "home"
    (home / "dagster").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
    pipes = tmp / "pipes"
    (pipes / "shop" / "raw").mkdir(parents=True)
    (pipes / "shop" / "app.yaml").write_text("owner: team-shop\n")
    (pipes / "shop" / "raw" / "ingest_orders.xml").write_text(RAW_XML)
    landing = tmp / "data" / "shop" / "landing" / "payments"
    landing.mkdir(parents=True)
    (landing / "p1.csv").write_text(CSV)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAHUB_")}
    return env | {
        "DATAHUB_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "DATAHUB_DATA_DIR": str(tmp / "data"),
        "DATAHUB_PIPELINES_DIR": str(pipes),
        "DATAHUB_SPARK_STATE": os.environ.get("DATAHUB_SPARK_STATE", str(home / "spark")),
        "DATAHUB_ENGINE": "duckdb",
    }


def _datahub(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    proc = subprocess.run(
        [str(BIN / "datahub"), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, f"datahub {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture
def service(tmp_path):
    env = _env(tmp_path)
    _datahub(env, "users", "add", "ed", "--password-stdin", stdin=PASSWORD + "\n")
    _datahub(env, "users", "grant", "ed", "--app", "shop", "--role", "editor")
    _datahub(env, "users", "add", "ap", "--password-stdin", stdin=PASSWORD + "\n")
    _datahub(env, "users", "grant", "ap", "--app", "shop", "--role", "approver")
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "datahub"), "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-4000:]
            try:
                with urllib.request.urlopen(f"{url}/api/v1/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "datahub serve did not answer in 120 s"
            time.sleep(0.5)
        yield url, env, tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def browser(tmp_path):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (scripts/ensure_system.sh)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


class Console:
    """Console errors seen so far, per page (get_log drains the browser's buffer)."""

    def __init__(self, driver):
        self.driver = driver
        self.errors: list[str] = []

    def check(self, where: str) -> None:
        entries = self.driver.get_log("browser")
        self.errors += [f"{where}: {e['message']}" for e in entries if e["level"] == "SEVERE"]
        assert self.errors == [], self.errors


def _wait(driver, condition, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def _type(driver, name: str, text: str) -> None:
    from selenium.webdriver.common.by import By

    field = _wait(driver, lambda d: d.find_element(By.NAME, name))
    field.clear()
    field.send_keys(text)


def _sign_in(driver, console: Console, name: str) -> None:
    from selenium.webdriver.common.by import By

    _wait(driver, lambda d: d.find_element(By.ID, "sign-in"))
    console.check("login page")
    _type(driver, "username", name)
    _type(driver, "password", PASSWORD)
    driver.find_element(By.ID, "sign-in").click()
    _wait(driver, lambda d: "/login" not in d.current_url)
    assert driver.find_element(By.ID, "username").text == name


def _fill_wizard(driver, console: Console) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _type(driver, "pipeline.id", "ingest_payments")
    _type(driver, "title", "Add payments")
    _type(driver, "source.id", "src")
    _type(driver, "source.path", "landing/payments/*.csv")
    _type(driver, "target.table", "payments")
    _type(driver, "check.0.columns", "id")
    driver.find_element(By.ID, "add-check").click()
    kind = _wait(driver, lambda d: d.find_element(By.NAME, "check.1.kind"))
    Select(kind).select_by_value("acceptedValues")
    _type(driver, "check.1.column", "status")
    _type(driver, "check.1.values", "new,paid")
    console.check("wizard (typing)")


def test_an_editor_creates_a_pipeline_in_the_wizard_and_an_approver_merges_it(service, browser):
    from selenium.webdriver.common.by import By

    url, env, tmp_path = service
    driver = browser
    console = Console(driver)
    probe = tmp_path / "probe.html"
    probe.write_text('<html><body><script>console.error("probe-4711")</script></body></html>')
    driver.get(probe.as_uri())
    assert any("probe-4711" in e["message"] for e in driver.get_log("browser"))

    # the editor: sign in, my apps, the app, the wizard
    driver.get(f"{url}/apps")
    assert "/login?next=" in driver.current_url
    _sign_in(driver, console, "ed")
    assert driver.current_url.endswith("/apps")
    console.check("apps")
    driver.find_element(By.LINK_TEXT, "shop").click()
    _wait(driver, lambda d: d.find_element(By.ID, "new-pipeline"))
    console.check("app")
    driver.find_element(By.ID, "new-pipeline").click()
    _wait(driver, lambda d: d.find_element(By.ID, "wizard"))
    console.check("wizard")
    _fill_wizard(driver, console)

    # validation as typed: the XML shown, and valid
    def validated(d) -> bool:
        verdict = d.find_element(By.ID, "verdict").get_attribute("class") or ""
        return "ok" in verdict.split() and 'values="new,paid"' in d.find_element(By.ID, "xml").text

    _wait(driver, validated, 90)
    xml = driver.find_element(By.ID, "xml").text
    assert '<csv id="src" path="landing/payments/*.csv"/>' in xml
    assert '<acceptedValues column="status" values="new,paid"/>' in xml

    # preview: the sample's rows and each check's result
    driver.find_element(By.ID, "preview-button").click()
    result = _wait(driver, lambda d: d.find_element(By.ID, "preview-result"), 180)
    shown = driver.find_elements(By.CSS_SELECTOR, ".preview-rows")
    assert shown, result.text
    assert "paid" in shown[0].text
    checks = driver.find_element(By.ID, "preview-checks").text
    assert "passed" in checks
    console.check("wizard (preview)")

    # submit: a change, opened by the editor, who cannot approve it
    driver.find_element(By.ID, "submit-button").click()
    _wait(driver, lambda d: "/changes/" in d.current_url and d.find_elements(By.TAG_NAME, "h1"), 90)
    change_url = driver.current_url
    status = driver.find_elements(By.ID, "change-status")
    assert status, driver.page_source[:3000]
    assert status[0].text == "open"
    assert driver.find_elements(By.ID, "approve") == []
    console.check("change (author)")
    driver.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
    _wait(driver, lambda d: "/login" in d.current_url)

    # the approver: straight to the change, through the sign-in page
    driver.get(change_url)
    assert "/login?next=" in driver.current_url
    _sign_in(driver, console, "ap")
    assert driver.current_url == change_url
    assert "raw/ingest_payments.xml" in driver.find_element(By.ID, "diff").text
    console.check("change (approver)")
    driver.find_element(By.ID, "approve").click()
    _wait(driver, lambda d: d.find_element(By.ID, "change-status").text == "merged", 120)
    console.check("change (merged)")
    driver.get(f"{url}/apps/shop/pipelines/ingest_payments")
    assert "Add payments" in driver.find_element(By.TAG_NAME, "main").text
    console.check("pipeline")
    driver.get(f"{url}/audit")
    audit = driver.find_element(By.ID, "audit").text
    assert "change.approve" in audit
    assert "change.create" in audit
    console.check("audit")

    # the asset exists for Dagster
    proc = subprocess.run(
        [str(BIN / "dg"), "list", "defs", "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    keys = {a["asset_key"] for a in json.loads(proc.stdout)["assets"]}
    assert "shop/raw/payments" in keys
