"""deploy/: what can be checked without a container engine or a cluster.

- the production instance (deploy/dagster.yaml) passes Dagster's own config validation and
  reads every connection field from the environment (the real PostgreSQL run is
  tests/e2e/test_postgres_instance.py);
- the compose file: `docker compose config` (or `docker-compose config`) parses it, and its
  wiring is checked here: every service a dependency names exists, every variable the
  instance, the contract and the Trino catalog read is set where it is read, every required
  credential is documented in .env.example, every copied or mounted file exists;
- the Dockerfiles: every COPY source exists and passes the .dockerignore, the Dagster pins
  are the versions the tests run, and (slow) their Python layers install in a fresh venv with
  the same pip commands;
- the Helm values: the keys we set exist in the chart's values schema (and, when the chart is
  on disk, the merged values validate against its values.schema.json), no secret is written;
- the front door (contract section 6): the compose `service` and `proxy`, the webserver
  published only through the proxy, the nginx image and its template's variables, and the
  `datahub-service` chart rendered by a small renderer of the Go-template subset it uses
  (no `helm` here): deployments, Secrets by name, the pipelines volume shared with the code
  location (the real nginx runs in tests/e2e/test_nginx_dagster.py);
- the Trino catalog: the properties name the SQL catalog pyiceberg writes.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
_VAR = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _env_example() -> dict[str, str]:
    pairs = [
        line.split("=", 1)
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    return {k.strip(): v.strip() for k, v in pairs}


def _interpolate(value: str, env: dict[str, str]) -> str:
    def sub(match: re.Match) -> str:
        name, op, arg = match.groups()
        if env.get(name):
            return env[name]
        if op and op.endswith("?"):
            raise AssertionError(f"${{{name}}} is required and not set")
        return arg or ""

    return _VAR.sub(sub, value)


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    return {k: str(v) for k, v in env.items()}


# ----------------------------------------------------------------------- dagster.yaml


def test_the_instance_reads_every_postgres_field_from_the_environment(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config
    from dagster_postgres.utils import pg_url_from_config
    from sqlalchemy.engine import make_url

    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    db = config["storage"]["postgres"]["postgres_db"]
    fields = {k: v for k, v in db.items() if k != "scheme"}
    assert fields == {
        "hostname": {"env": "DAGSTER_PG_HOST"},
        "port": {"env": "DAGSTER_PG_PORT"},
        "username": {"env": "DAGSTER_PG_USER"},
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "db_name": {"env": "DAGSTER_PG_DB"},
    }
    # SQLAlchemy 2.1's default postgresql driver is psycopg 3, under which dagster-postgres
    # cannot store an event (NOTIFY with a bound parameter): the driver is named
    assert db["scheme"] == "postgresql+psycopg2"

    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    validated, _ = dagster_instance_config(str(tmp_path))  # Dagster's own schema check
    password = "p@ss:w/rd'%#"
    for key, value in {
        "DAGSTER_PG_HOST": "db.internal",
        "DAGSTER_PG_PORT": "6543",
        "DAGSTER_PG_USER": "dagster",
        "DAGSTER_PG_PASSWORD": password,
        "DAGSTER_PG_DB": "dagster",
    }.items():
        monkeypatch.setenv(key, value)
    from dagster._config import process_config
    from dagster_postgres import DagsterPostgresStorage

    resolved = process_config(
        DagsterPostgresStorage.config_type(), validated["storage"]["postgres"]
    )
    assert resolved.success, resolved.errors
    assert resolved.value is not None
    url = make_url(pg_url_from_config(resolved.value))
    assert (url.drivername, url.host, url.port, url.username, url.password, url.database) == (
        "postgresql+psycopg2",
        "db.internal",
        6543,
        "dagster",
        password,
        "dagster",
    )


def test_the_production_instance_keeps_the_local_concurrency_rules():
    local = yaml.safe_load((REPO / "dagster.yaml").read_text())
    prod = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert (
        prod["concurrency"]["runs"]["tag_concurrency_limits"]
        == local["concurrency"]["runs"]["tag_concurrency_limits"]
    )
    assert prod["telemetry"] == {"enabled": False}


# ------------------------------------------------------------------------------ compose

SERVICES = {
    "postgres",
    "minio",
    "minio-init",
    "spark-master",
    "spark-worker",
    "spark-connect",
    "pipelines-init",
    "code",
    "service",
    "proxy",
    "webserver",
    "daemon",
    "trino",
}


def _compose_cli() -> list[str] | None:
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    found = shutil.which("docker-compose")
    return [found] if found else None


def test_docker_compose_parses_the_stack(tmp_path):
    cli = _compose_cli()
    if cli is None:
        pytest.skip(
            "neither `docker compose` nor `docker-compose` is installed here "
            "(scripts/ensure_system.sh installs docker-compose); the structure of "
            "deploy/compose.yaml is still checked by the tests below"
        )
    work = tmp_path / "deploy"
    shutil.copytree(DEPLOY, work)
    shutil.copy(work / ".env.example", work / ".env")
    shutil.copy(work / "app-secrets.env.example", work / "app-secrets.env")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "MINIO_"))}
    proc = subprocess.run(
        [*cli, "-f", "compose.yaml", "--profile", "sql", "config"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rendered = yaml.safe_load(proc.stdout)
    assert set(rendered["services"]) == SERVICES
    code_env = rendered["services"]["code"]["environment"]
    assert code_env["DATAHUB_CATALOG_URI"] == (
        "postgresql+psycopg://datahub:change-me@postgres:5432/datahub_catalog"
    )
    service_env = rendered["services"]["service"]["environment"]
    assert service_env["DATAHUB_STATE_URI"] == (
        "postgresql+psycopg://datahub:change-me@postgres:5432/datahub_state"
    )
    assert len(service_env["DATAHUB_SERVICE_SECRET"]) >= 32
    assert "ports" not in rendered["services"]["webserver"]

    # without the passwords the stack refuses to render instead of using a default
    (work / ".env").write_text("")
    proc = subprocess.run(
        [*cli, "-f", "compose.yaml", "config"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "POSTGRES_PASSWORD" in proc.stderr


def test_compose_services_and_their_dependencies_exist():
    compose = _compose()
    services = compose["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert "image" in service, f"{name}: no image"
        deps = service.get("depends_on") or []
        for dep in deps:
            assert dep in services, f"{name} depends on unknown service {dep}"
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in compose["volumes"], f"{name}: volume {source} not declared"
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()


def test_every_variable_is_set_where_it_is_read():
    compose = _compose()
    services = compose["services"]
    instance_vars = set(re.findall(r"\{env: (\w+)\}", (DEPLOY / "dagster.yaml").read_text()))
    assert instance_vars == {
        "DAGSTER_PG_HOST",
        "DAGSTER_PG_PORT",
        "DAGSTER_PG_USER",
        "DAGSTER_PG_PASSWORD",
        "DAGSTER_PG_DB",
    }
    for name in ("code", "webserver", "daemon"):  # the code location runs the runs
        assert instance_vars <= set(_environment(services[name])), name
    code = _environment(services["code"])
    assert code["DATAHUB_SPARK_REMOTE"] == "sc://spark-connect:15002"
    assert code["DATAHUB_WAREHOUSE"].startswith("s3://")
    assert services["spark-connect"]["environment"]["DATAHUB_SPARK_PORT"] == "15002"
    # the databases the stack uses are the ones postgres/init.sql creates
    created = set(
        re.findall(r"CREATE DATABASE (\w+)", (DEPLOY / "postgres" / "init.sql").read_text())
    )
    env = _env_example()
    catalog_uri = _interpolate(code["DATAHUB_CATALOG_URI"], env)
    assert catalog_uri.startswith("postgresql+psycopg://")
    state_uri = _interpolate(_environment(services["service"])["DATAHUB_STATE_URI"], env)
    assert state_uri.startswith("postgresql+psycopg://")
    assert {
        code["DAGSTER_PG_DB"],
        catalog_uri.rsplit("/", 1)[1],
        state_uri.rsplit("/", 1)[1],
    } == created
    # Trino reads the same catalog database and warehouse
    trino = _environment(services["trino"])
    properties = (DEPLOY / "trino" / "catalog" / "datahub.properties").read_text()
    assert set(re.findall(r"\$\{ENV:(\w+)\}", properties)) <= set(trino)
    jdbc = trino["DATAHUB_CATALOG_JDBC_URL"]
    assert jdbc == "jdbc:postgresql://" + catalog_uri.split("@", 1)[1]
    assert _interpolate(trino["DATAHUB_WAREHOUSE"], env) == _interpolate(
        code["DATAHUB_WAREHOUSE"], env
    )


def test_credentials_are_required_and_documented_never_defaulted():
    text = (DEPLOY / "compose.yaml").read_text()
    required = {m.group(1) for m in _VAR.finditer(text) if (m.group(2) or "").endswith("?")}
    assert required == {"POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "DATAHUB_SERVICE_SECRET"}
    assert required <= set(_env_example())
    for match in _VAR.finditer(text):
        if "PASSWORD" in match.group(1) or match.group(1) == "DATAHUB_SERVICE_SECRET":
            assert match.group(2) == ":?", f"{match.group(0)} must not have a default"
    # the example key is long enough for the service (it refuses fewer than 32 characters)
    from datahub_assets.service.settings import MIN_SECRET_CHARS

    assert len(_env_example()["DATAHUB_SERVICE_SECRET"]) >= MIN_SECRET_CHARS
    ignored = (DEPLOY / ".gitignore").read_text().split()
    assert {".env", "app-secrets.env"} <= set(ignored)


# --------------------------------------------------------------------------- Dockerfiles

DOCKERFILES = ["Dockerfile", "Dockerfile.dagster"]


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, current = [], ""
    for line in dockerfile.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip().removesuffix("\\") + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            word, _, rest = current.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
            current = ""
    return out


def _args(dockerfile: Path) -> dict[str, str]:
    return dict(arg.split("=", 1) for kind, arg in _instructions(dockerfile) if kind == "ARG")


@pytest.mark.parametrize("name", [*DOCKERFILES, "nginx/Dockerfile"])
def test_copied_files_exist_and_pass_the_dockerignore(name):
    dockerfile = DEPLOY / name
    allowed = [
        line[1:]
        for line in (DEPLOY / f"{name}.dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for kind, arg in _instructions(dockerfile):
        if kind != "COPY":
            continue
        *sources, _ = arg.split()
        for source in sources:
            assert (REPO / source).exists(), f"{name}: COPY {source}: no such file"
            assert any(source == a or source.startswith(a + "/") for a in allowed), (
                f"{name}: COPY {source} is excluded by {name}.dockerignore"
            )


def test_images_pin_the_dagster_the_tests_run():
    code, dagster = _args(DEPLOY / "Dockerfile"), _args(DEPLOY / "Dockerfile.dagster")
    assert code == dagster
    assert code["DAGSTER_VERSION"] == importlib.metadata.version("dagster")
    assert code["DAGSTER_LIBS_VERSION"] == importlib.metadata.version("dagster-postgres")
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    (location,) = workspace["load_from"]
    assert location["grpc_server"]["host"] in _compose()["services"]
    cmd = dict(_instructions(DEPLOY / "Dockerfile"))["CMD"]
    assert f'"-p", "{location["grpc_server"]["port"]}"' in cmd


def _pip_commands(dockerfile: Path) -> list[list[str]]:
    args = _args(dockerfile)
    commands = []
    for kind, arg in _instructions(dockerfile):
        if kind == "RUN" and arg.startswith("pip install"):
            text = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], arg)
            commands.append(shlex.split(text))
    return commands


@pytest.mark.slow
@pytest.mark.parametrize("name", DOCKERFILES)
def test_the_python_layer_installs_in_a_fresh_venv(name, tmp_path):
    """The image's `pip install` lines, run as written in a fresh venv of this Python (3.11,
    as the image's) from a copy of what the Dockerfile COPYs before them. One difference:
    `--no-cache-dir` (there only to keep the image layer small) is dropped, so pip's wheel
    cache serves pyspark's 450 MB wheel instead of a fresh download and build. Then the
    installed (not editable) package loads the example definitions, and the webserver and
    daemon commands start far enough to print their help."""
    dockerfile = DEPLOY / name
    workdir = tmp_path / "context"
    workdir.mkdir()
    for kind, arg in _instructions(dockerfile):
        if kind == "COPY":
            *sources, dest = arg.split()
            for source in sources:
                target = workdir / dest / (Path(source).name if dest.endswith("/") else "")
                if (REPO / source).is_dir():
                    shutil.copytree(
                        REPO / source,
                        target,
                        dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"),
                    )
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(REPO / source, target)
        if kind == "RUN" and arg.startswith("pip install"):
            break
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    commands = _pip_commands(dockerfile)
    assert commands, f"{name} has no pip install line"
    for command in commands:
        command = [str(venv / "bin" / "pip")] + [c for c in command[1:] if c != "--no-cache-dir"]
        proc = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    bin_ = venv / "bin"
    if name == "Dockerfile":
        env = os.environ | {
            "DATAHUB_PIPELINES_DIR": str(REPO / "pipelines_xml"),
            "DATAHUB_HOME": str(tmp_path / "home"),
        }
        probe = (
            "import datahub_assets, datahub_assets.definitions as d; "
            "assert 'site-packages' in datahub_assets.__file__; "
            "import dagster_k8s, dagster_postgres; "
            "print(len(d.defs.resolve_asset_graph().get_all_asset_keys()))"
        )
        proc = subprocess.run(
            [str(bin_ / "python"), "-c", probe],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert int(proc.stdout.split()[-1]) > 10
        assert (bin_ / "datahub").exists()
        assert (bin_ / "dagster").exists()
    else:
        for command in ("dagster-webserver", "dagster-daemon"):
            proc = subprocess.run(
                [str(bin_ / command), "--help"], capture_output=True, text=True, timeout=120
            )
            assert proc.returncode == 0, proc.stderr[-3000:]
        proc = subprocess.run(
            [
                str(bin_ / "python"),
                "-c",
                "import dagster_postgres, dagster_k8s, dagster_aws, psycopg2",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]


# ---------------------------------------------------------------------------------- Helm

# Keys of the dagster/dagster chart's values.schema.json (helm/dagster/values.schema.json of
# dagster-io/dagster, read for 1.13): the properties of each object our values set.
CHART_KEYS = {
    "": {
        "dagsterWebserver",
        "dagster-user-deployments",
        "postgresql",
        "generatePostgresqlPasswordSecret",
        "generateCeleryConfigSecret",
        "rabbitmq",
        "redis",
        "flower",
        "ingress",
        "imagePullSecrets",
        "computeLogManager",
        "scheduler",
        "runLauncher",
        "pythonLogs",
        "dagsterDaemon",
        "busybox",
        "migrate",
        "telemetry",
        "serviceAccount",
        "global",
        "retention",
        "additionalInstanceConfig",
    },
    "global": {
        "postgresqlSecretName",
        "dagsterHome",
        "serviceAccountName",
        "celeryConfigSecretName",
    },
    "postgresql": {
        "image",
        "enabled",
        "postgresqlHost",
        "postgresqlUsername",
        "postgresqlPassword",
        "postgresqlDatabase",
        "postgresqlParams",
        "postgresqlScheme",
        "service",
    },
    "image": {"repository", "tag", "pullPolicy"},
    "dagsterWebserver": {
        "replicaCount",
        "image",
        "nameOverride",
        "pathPrefix",
        "service",
        "workspace",
        "env",
        "envConfigMaps",
        "envSecrets",
        "deploymentLabels",
        "labels",
        "nodeSelector",
        "affinity",
        "tolerations",
        "podSecurityContext",
        "securityContext",
        "resources",
        "readinessProbe",
        "livenessProbe",
        "startupProbe",
        "annotations",
        "enableReadOnly",
        "dbStatementTimeout",
        "dbPoolRecycle",
        "logLevel",
        "schedulerName",
        "volumeMounts",
        "volumes",
        "initContainerResources",
    },
    "dagsterDaemon": {
        "enabled",
        "image",
        "runCoordinator",
        "heartbeatTolerance",
        "env",
        "envConfigMaps",
        "envSecrets",
        "deploymentLabels",
        "labels",
        "nodeSelector",
        "affinity",
        "tolerations",
        "podSecurityContext",
        "securityContext",
        "resources",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "annotations",
        "runMonitoring",
        "runRetries",
        "sensors",
        "schedules",
        "schedulerName",
        "volumeMounts",
        "volumes",
        "initContainerResources",
    },
    "runCoordinator": {"enabled", "type", "config"},
    "dagster-user-deployments": {"enabled", "enableSubchart", "imagePullSecrets", "deployments"},
    "deployment": {
        "name",
        "image",
        "dagsterApiGrpcArgs",
        "codeServerArgs",
        "includeConfigInLaunchedRuns",
        "deploymentNamespace",
        "port",
        "env",
        "envConfigMaps",
        "envSecrets",
        "annotations",
        "nodeSelector",
        "affinity",
        "tolerations",
        "podSecurityContext",
        "securityContext",
        "resources",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "labels",
        "volumeMounts",
        "volumes",
        "schedulerName",
        "initContainers",
        "sidecarContainers",
    },
    "runLauncher": {"type", "config"},
    "k8sRunLauncher": {
        "image",
        "imagePullPolicy",
        "jobNamespace",
        "loadInclusterConfig",
        "kubeconfigFile",
        "envConfigMaps",
        "envSecrets",
        "envVars",
        "volumeMounts",
        "volumes",
        "labels",
        "failPodOnRunFailure",
        "resources",
        "schedulerName",
        "securityContext",
        "runK8sConfig",
    },
    "runK8sConfig": {
        "containerConfig",
        "podSpecConfig",
        "podTemplateSpecMetadata",
        "jobSpecConfig",
        "jobMetadata",
    },
}
SECRETS = {"datahub-dagster-postgresql", "datahub-catalog", "datahub-s3", "datahub-app-secrets"}


def _values() -> dict:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


def _keys_within(section: str, value: dict) -> None:
    unknown = set(value) - CHART_KEYS[section]
    assert not unknown, f"{section or 'top level'}: {sorted(unknown)} not in the chart's schema"


def test_helm_values_use_only_keys_of_the_chart():
    values = _values()
    _keys_within("", values)
    _keys_within("global", values["global"])
    _keys_within("postgresql", values["postgresql"])
    for part in ("dagsterWebserver", "dagsterDaemon"):
        _keys_within(part, values[part])
        _keys_within("image", values[part]["image"])
    _keys_within("runCoordinator", values["dagsterDaemon"]["runCoordinator"])
    users = values["dagster-user-deployments"]
    _keys_within("dagster-user-deployments", users)
    for deployment in users["deployments"]:
        _keys_within("deployment", deployment)
        _keys_within("image", deployment["image"])
        assert all(set(s) == {"name"} for s in deployment["envSecrets"])
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    _keys_within("k8sRunLauncher", launcher)
    _keys_within("runK8sConfig", launcher["runK8sConfig"])


def test_helm_values_name_secrets_and_hold_none():
    values = _values()
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["postgresql"]["enabled"] is False
    assert "postgresqlPassword" not in values["postgresql"]
    assert (
        values["postgresql"]["postgresqlScheme"]
        == yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["storage"]["postgres"][
            "postgres_db"
        ]["scheme"]
    )
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    names = {values["global"]["postgresqlSecretName"]} | {
        s["name"] for s in deployment["envSecrets"]
    }
    assert names == SECRETS
    readme = (DEPLOY / "README.md").read_text()
    assert all(name in readme for name in SECRETS), "each Secret is described in the README"
    env = deployment["env"]
    assert env["DATAHUB_SPARK_REMOTE"].startswith("sc://")
    assert "DATAHUB_CATALOG_URI" not in env, "the catalog URI holds a password: a Secret"
    assert not any(re.search(r"://[^/@\s]+:[^/@\s]+@", str(v)) for v in env.values())
    assert deployment["codeServerArgs"] == ["-m", "datahub_assets.definitions"]
    assert deployment["image"]["tag"]
    assert (
        values["dagsterDaemon"]["image"]["tag"]
        == _args(DEPLOY / "Dockerfile.dagster")["DAGSTER_VERSION"]
    )


def test_the_instance_the_chart_renders_is_valid_and_limits_like_deploy(tmp_path):
    """The chart writes `run_coordinator` only when runCoordinator is enabled, then
    `additionalInstanceConfig` as is: Dagster must accept the result (it refuses a queued
    coordinator with limits beside a `concurrency` block), with deploy/dagster.yaml's limits."""
    from dagster._core.instance.config import dagster_instance_config

    values = _values()
    deploy = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    extra = values["additionalInstanceConfig"]
    assert extra["concurrency"] == deploy["concurrency"]
    assert values["dagsterDaemon"]["runCoordinator"]["enabled"] is False
    rendered = {"storage": deploy["storage"]} | extra  # run_coordinator: not rendered
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(rendered))
    dagster_instance_config(str(tmp_path))

    # what enabling the chart's coordinator beside it would do: refused
    rendered["run_coordinator"] = {
        "module": "dagster.core.run_coordinator",
        "class": "QueuedRunCoordinator",
        "config": {"max_concurrent_runs": 20},
    }
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(rendered))
    with pytest.raises(Exception, match="incompatible"):
        dagster_instance_config(str(tmp_path))


def _merge(base, override):
    """Helm's merge of user values into chart defaults: maps merge, anything else replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {k: _merge(base.get(k), v) if k in base else v for k, v in override.items()} | {
            k: v for k, v in base.items() if k not in override
        }
    return override


def _local_refs_only(schema):
    """The chart schema's Kubernetes `$ref`s point at kubernetesjsonschema.dev (no network
    here): those subschemas accept any value of the declared type."""
    if isinstance(schema, dict):
        out = {k: _local_refs_only(v) for k, v in schema.items()}
        if str(out.get("$ref", "")).startswith("http"):
            del out["$ref"]
        return out
    if isinstance(schema, list):
        return [_local_refs_only(v) for v in schema]
    return schema


def test_helm_values_validate_against_the_charts_schema():
    chart = Path(os.environ.get("DATAHUB_HELM_CHART_DIR", REPO / ".datahub" / "helm" / "dagster"))
    schema_file, defaults_file = chart / "values.schema.json", chart / "values.yaml"
    if not (schema_file.is_file() and defaults_file.is_file()):
        pytest.skip(
            f"the dagster Helm chart is not on this machine ({chart}): it is published "
            "on GitHub and a Helm repository, neither reachable from CI. Set "
            "DATAHUB_HELM_CHART_DIR to a copy of helm/dagster of dagster-io/dagster "
            "to validate; the keys are still checked against CHART_KEYS above"
        )
    import jsonschema

    schema: Any = _local_refs_only(json.loads(schema_file.read_text()))
    merged = _merge(yaml.safe_load(defaults_file.read_text()), _values())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(merged), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:20])


# ---------------------------------------------------------------- the front door (#21)

NGINX_VARIABLES = {"DATAHUB_PROXY_PORT", "DATAHUB_SERVICE_UPSTREAM", "DAGSTER_WEBSERVER_UPSTREAM"}


def _command_port(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_the_dagster_ui_is_published_only_through_the_proxy():
    services = _compose()["services"]
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert "webserver" not in published, "the Dagster UI must be reached through the proxy"
    assert "service" not in published, "the service is reached through the proxy"
    (proxy_port,) = published["proxy"]
    proxy_env = _environment(services["proxy"])
    assert proxy_port.startswith("127.0.0.1:")
    assert proxy_port.endswith(":" + proxy_env["DATAHUB_PROXY_PORT"])
    # the upstreams are the services, on the ports their commands listen on
    webserver, service = services["webserver"]["command"], services["service"]["command"]
    assert proxy_env["DAGSTER_WEBSERVER_UPSTREAM"] == "webserver:" + _command_port(webserver, "-p")
    assert service[:2] == ["datahub", "serve"]
    assert proxy_env["DATAHUB_SERVICE_UPSTREAM"] == "service:" + _command_port(service, "--port")
    assert set(proxy_env) == NGINX_VARIABLES
    # the service reloads the code location through the webserver, inside the network
    service_env = _environment(services["service"])
    assert service_env["DATAHUB_DAGSTER_URL"] == "http://webserver:" + _command_port(
        webserver, "-p"
    )
    # the service and the code location read and write one pipelines tree
    for name in ("service", "code"):
        env = _environment(services[name])
        mounts = dict(v.split(":", 1) for v in services[name]["volumes"])
        assert mounts["pipelines"] == env["DATAHUB_PIPELINES_DIR"], name
        assert services[name]["depends_on"]["pipelines-init"] == {
            "condition": "service_completed_successfully"
        }
    # every variable the service reads is one the platform declares
    from datahub_resources.settings import NAMES

    unknown = {k for k in service_env if k.startswith("DATAHUB_")} - NAMES
    assert not unknown, f"not declared in datahub_resources/settings.py VARIABLES: {unknown}"


def test_the_nginx_template_and_its_entrypoint_agree():
    conf = (DEPLOY / "nginx" / "datahub.conf").read_text()
    body = "\n".join(line for line in conf.splitlines() if not line.lstrip().startswith("#"))
    assert set(re.findall(r"\$\{(\w+)\}", body)) == NGINX_VARIABLES
    entrypoint = (DEPLOY / "nginx" / "entrypoint.sh").read_text()
    (listed,) = re.findall(r"envsubst '([^']+)'", entrypoint)
    assert set(re.findall(r"\$\{(\w+)\}", listed)) == NGINX_VARIABLES
    for required in ("auth_request /_auth;", "proxy_pass_request_body off;", "internal;"):
        assert required in body
    assert "proxy_pass http://datahub_service/auth/verify;" in body
    assert "return 302 /login?next=$request_uri;" in body
    dockerfile = dict(_instructions(DEPLOY / "nginx" / "Dockerfile"))
    assert dockerfile["FROM"].startswith("debian:")
    assert "nginx" in dockerfile["RUN"].split()


# A renderer of the Go-template subset the datahub-service chart uses: {{ .Values.a.b }},
# {{ .Release.Name }}, {{ .field }} / {{ $var }} in a range, `| quote`, `| toYaml | nindent N`,
# {{- if X }}..{{- end }}, {{- range $k, $v := X }} and {{- range X }}; `{{-` / `-}}` trim
# whitespace. Anything else fails the test, so the templates stay within what is checked.

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos, trim_next = 0, False
    for m in _ACTION.finditer(text):
        chunk = text[pos : m.start()]
        if trim_next:
            chunk = chunk.lstrip()
        if m.group(1):
            chunk = chunk.rstrip()
        out.append(("text", chunk))
        out.append(("action", m.group(2)))
        pos, trim_next = m.end(), bool(m.group(3))
    tail = text[pos:]
    out.append(("text", tail.lstrip() if trim_next else tail))
    return out


def _parse(tokens: list[tuple[str, str]], i: int = 0) -> tuple[list, int]:
    nodes: list = []
    while i < len(tokens):
        kind, value = tokens[i]
        i += 1
        if kind == "text":
            nodes.append(("text", value))
        elif value == "end":
            return nodes, i
        elif value.startswith(("if ", "range ")):
            word, _, expr = value.partition(" ")
            body, i = _parse(tokens, i)
            nodes.append((word, expr, body))
        elif value.startswith("/*"):
            continue
        else:
            nodes.append(("expr", value))
    return nodes, i


def _lookup(path: str, dot, scope: dict):
    if path.startswith("$"):
        return scope[path]
    value = dot
    for part in path.strip(".").split("."):
        assert isinstance(value, dict), f"template: {path}: {part} of a non-map"
        assert part in value, f"template: {path} is not set"
        value = value[part]
    return value


def _value(expr: str, dot, scope: dict) -> Any:
    """`X`, `X | f args`, `f X | g args` (Go templates pass the piped value last)."""
    head, *filters = [part.strip() for part in expr.split("|")]
    *call, operand = head.split()
    assert re.fullmatch(r"[.$][\w.]*", operand), f"template: unsupported expression {expr!r}"
    value = _lookup(operand, dot, scope)
    for f in [" ".join(call)] * bool(call) + filters:
        name, *args = f.split()
        if name == "quote":
            value = json.dumps(str(value))
        elif name == "toYaml":
            value = yaml.safe_dump(value, default_flow_style=False, sort_keys=False).rstrip()
        elif name == "nindent":
            pad = " " * int(args[0])
            value = "\n" + "\n".join(pad + line for line in str(value).splitlines())
        else:
            raise AssertionError(f"template: unsupported function {name!r}")
    return value


def _emit(nodes: list, dot, scope: dict) -> str:
    out = []
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "expr":
            value = _value(node[1], dot, scope)
            out.append(str(value).lower() if isinstance(value, bool) else str(value))
        elif node[0] == "if":
            if _value(node[1], dot, scope):
                out.append(_emit(node[2], dot, scope))
        else:  # range
            m = re.fullmatch(r"(?:(\$\w+),\s*(\$\w+)\s*:=\s*)?(\S+)", node[1])
            assert m, f"template: unsupported range {node[1]!r}"
            items = _value(m.group(3), dot, scope)
            if m.group(1):
                for key, value in (items or {}).items():
                    out.append(_emit(node[2], dot, scope | {m.group(1): key, m.group(2): value}))
            else:
                for item in items or []:
                    out.append(_emit(node[2], item, scope))
    return "".join(out)


def render_chart(chart: Path, release: str, overrides: dict | None = None) -> list[dict]:
    values = _merge(yaml.safe_load((chart / "values.yaml").read_text()), overrides or {})
    root = {"Values": values, "Release": {"Name": release}}
    documents = []
    for template in sorted((chart / "templates").glob("*.yaml")):
        nodes, _ = _parse(_tokens(template.read_text()))
        text = _emit(nodes, root, {})
        documents += [d for d in yaml.safe_load_all(text) if d]
    return documents


SERVICE_CHART = DEPLOY / "helm" / "datahub-service"


def _by_kind(documents: list[dict]) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


def test_the_service_chart_renders_the_service_and_the_proxy():
    chart = yaml.safe_load((SERVICE_CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "datahub-service"
    docs = _by_kind(render_chart(SERVICE_CHART, "datahub-service"))
    assert set(docs) == {
        ("Deployment", "datahub-service-service"),
        ("Service", "datahub-service-service"),
        ("Deployment", "datahub-service-proxy"),
        ("Service", "datahub-service-proxy"),
        ("PersistentVolumeClaim", "datahub-pipelines"),
    }
    values = yaml.safe_load((SERVICE_CHART / "values.yaml").read_text())
    service = docs[("Deployment", "datahub-service-service")]["spec"]["template"]["spec"]
    (container,) = service["containers"]
    assert container["command"][:2] == ["datahub", "serve"]
    port = int(_command_port(container["command"], "--port"))
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["DATAHUB_PIPELINES_DIR"] == values["pipelines"]["mountPath"]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {env["DATAHUB_PIPELINES_DIR"]}
    secrets = {s["secretRef"]["name"] for s in container["envFrom"]}
    assert secrets == {"datahub-service"} | SECRETS - {"datahub-dagster-postgresql"}
    # nothing secret in the values: the state URI, the key, the OIDC client secret are Secrets
    for name in ("DATAHUB_STATE_URI", "DATAHUB_SERVICE_SECRET", "DATAHUB_OIDC_CLIENT_SECRET"):
        assert name not in env
    assert not any(re.search(r"://[^/@\s]+:[^/@\s]+@", str(v)) for v in env.values())
    readme = (DEPLOY / "README.md").read_text()
    assert "`datahub-service`" in readme, "the service's Secret is described in the README"
    # the proxy: the service's Service and the dagster chart's webserver Service
    proxy = docs[("Deployment", "datahub-service-proxy")]["spec"]["template"]["spec"]
    (nginx,) = proxy["containers"]
    proxy_env = {e["name"]: e["value"] for e in nginx["env"]}
    assert set(proxy_env) == NGINX_VARIABLES
    assert proxy_env["DATAHUB_SERVICE_UPSTREAM"] == f"datahub-service-service:{port}"
    assert docs[("Service", "datahub-service-service")]["spec"]["ports"][0]["port"] == port
    # release `datahub` of dagster/dagster names its webserver Service datahub-dagster-webserver
    assert proxy_env["DAGSTER_WEBSERVER_UPSTREAM"] == "datahub-dagster-webserver:80"
    assert env["DATAHUB_DAGSTER_URL"] == "http://datahub-dagster-webserver:80"
    # the code location (deploy/helm/values.yaml) mounts the same claim at the same path
    (deployment,) = _values()["dagster-user-deployments"]["deployments"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in deployment["volumes"]}
    assert claims == {values["pipelines"]["claimName"]}
    assert deployment["env"]["DATAHUB_PIPELINES_DIR"] == values["pipelines"]["mountPath"]
    assert {m["mountPath"] for m in deployment["volumeMounts"]} == {
        values["pipelines"]["mountPath"]
    }
    # the Dagster chart exposes no ingress: the proxy is the only door
    assert "ingress" not in _values()


def test_the_service_chart_ingress_points_at_the_proxy():
    docs = _by_kind(
        render_chart(
            SERVICE_CHART,
            "door",
            {
                "ingress": {"enabled": True, "tlsSecretName": "door-tls"},
                "pipelines": {"create": False},
            },
        )
    )
    assert ("PersistentVolumeClaim", "datahub-pipelines") not in docs
    ingress = docs[("Ingress", "door")]["spec"]
    assert ingress["tls"][0]["secretName"] == "door-tls"
    (rule,) = ingress["rules"]
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"]["name"] == "door-proxy"


# --------------------------------------------------------------------------------- Trino


def _properties(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(("#", "!")):
            continue
        assert "=" in line, f"{path.name}:{n}: not key=value: {line!r}"
        key, value = (part.strip() for part in line.split("=", 1))
        assert key not in out, f"{path.name}:{n}: {key} set twice"
        out[key] = value
    return out


def test_the_trino_catalog_reads_the_sql_catalog_pyiceberg_writes():
    from pyiceberg.catalog.sql import IcebergNamespaceProperties, IcebergTables

    from datahub_resources.iceberg import CATALOG_NAME

    props = _properties(DEPLOY / "trino" / "catalog" / "datahub.properties")
    assert props["connector.name"] == "iceberg"
    assert props["iceberg.catalog.type"] == "jdbc"
    # Iceberg's JdbcCatalog (Trino's) and pyiceberg's SqlCatalog share these tables and key
    # their rows by catalog name
    assert IcebergTables.__tablename__ == "iceberg_tables"
    assert IcebergNamespaceProperties.__tablename__ == "iceberg_namespace_properties"
    assert props["iceberg.jdbc-catalog.catalog-name"] == CATALOG_NAME
    assert props["iceberg.jdbc-catalog.driver-class"] == "org.postgresql.Driver"
    assert props["iceberg.jdbc-catalog.connection-url"] == "${ENV:DATAHUB_CATALOG_JDBC_URL}"
    assert props["iceberg.jdbc-catalog.default-warehouse-dir"] == "${ENV:DATAHUB_WAREHOUSE}"
    assert props["iceberg.security"] == "read_only"
    assert props["fs.native-s3.enabled"] == "true"
    assert props["s3.path-style-access"] == "true"
    secrets = [k for k in props if "password" in k or "secret" in k or "access-key" in k]
    assert secrets
    assert all(props[k].startswith("${ENV:") for k in secrets)
