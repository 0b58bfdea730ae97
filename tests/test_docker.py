"""The deployment files: the production instance config against a real PostgreSQL, compose,
workspaces and Helm values that parse and point at each other."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import psycopg
import yaml
from dagster._core.instance.ref import InstanceRef

from cdr_workflow.settings import VARIABLES

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"


def test_production_dagster_yaml_loads_as_an_instance_on_postgres(
        fresh_postgres_url, tmp_path, monkeypatch):
    url = urlsplit(fresh_postgres_url)
    for name, value in {"DAGSTER_PG_HOST": url.hostname, "DAGSTER_PG_PORT": str(url.port),
                        "DAGSTER_PG_USER": url.username, "DAGSTER_PG_PASSWORD": "",
                        "DAGSTER_PG_DB": url.path.lstrip("/"),
                        "CDR_IMAGE": "cdr_workflow:test"}.items():
        monkeypatch.setenv(name, value)
    shutil.copy(DOCKER / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path))) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert type(instance.run_launcher).__name__ == "DockerRunLauncher"
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 4
        assert instance.get_runs() == []  # the schema was created on the real server
        # an event written and read back (SQLAlchemy 2.1 would pick psycopg 3 for a plain
        # postgresql:// URL, and dagster-postgres's NOTIFY fails on it)
        instance.report_runless_asset_event(dg.AssetMaterialization("probe"))
        assert instance.get_latest_materialization_event(dg.AssetKey("probe")) is not None


def test_compose_wires_postgres_minio_user_code_webserver_and_daemon():
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "minio", "user_code", "webserver", "daemon"} <= set(services)
    build = services["user_code"]["build"]
    assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKER / "Dockerfile"
    workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text())
    grpc = workspace["load_from"][0]["grpc_server"]
    assert grpc["host"] == "user_code" and str(grpc["port"]) in " ".join(
        (DOCKER / "Dockerfile").read_text().split())
    env = services["webserver"]["environment"]
    assert env["CDR_WAREHOUSE_URL"].startswith("${CDR_WAREHOUSE_URL:-postgresql://")


def test_every_setting_reaches_the_run_containers():
    """A setting added to settings.py but not passed on would be silently at its default in
    runs (a pseudonymisation key missing there stores plain numbers)."""
    compose_env = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())["x-cdr-env"]
    launcher_env = yaml.safe_load((DOCKER / "dagster.yaml").read_text())[
        "run_launcher"]["config"]["env_vars"]
    assert set(VARIABLES) <= set(compose_env), "the services must get every setting"
    assert set(VARIABLES) <= set(launcher_env), "the run launcher must pass every setting on"
    assert set(launcher_env) <= set(compose_env), "the launcher passes what the daemon has"
    values = yaml.safe_load((DOCKER / "helm-values.yaml").read_text())
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"], \
        "Kubernetes runs must start with the user deployment's env and secrets"


def test_every_setting_the_code_reads_is_declared_and_documented():
    read = set()
    for path in (ROOT / "cdr_workflow").rglob("*.py"):
        read |= set(re.findall(r'"(CDR_[A-Z0-9_]+)"', path.read_text()))
    assert read == set(VARIABLES)
    readme = (ROOT / "README.md").read_text()
    assert [name for name in VARIABLES if f"`{name}`" not in readme] == []


def test_root_workspace_loads_the_definitions_module():
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["module_name"] == \
        "cdr_workflow.definitions"


def test_helm_values_use_the_k8s_run_launcher():
    values = yaml.safe_load((DOCKER / "helm-values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "cdr_workflow.definitions"]


def test_compose_and_helm_offer_iceberg_with_parallel_days():
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    env = compose["x-cdr-env"]
    assert env["PYICEBERG_CATALOG__LAKE__WAREHOUSE"].startswith("s3://")
    assert "iceberg_catalog" in env["PYICEBERG_CATALOG__LAKE__URI"]
    assert "iceberg_catalog" in (DOCKER / "postgres-init.sql").read_text()
    launcher_env = yaml.safe_load((DOCKER / "dagster.yaml").read_text())[
        "run_launcher"]["config"]["env_vars"]
    assert {name for name in env if name.startswith("PYICEBERG_")} <= set(launcher_env)
    values = yaml.safe_load((DOCKER / "helm-values.yaml").read_text())
    assert values["concurrency"]["pools"]["defaultLimit"] > 1


def test_compose_postgres_settings_are_real_postgres_settings(fresh_postgres_url):
    """Each `-c name=value` the compose file gives PostgreSQL names a setting the server has,
    with a size it reads (a typo would stop the container from starting)."""
    command = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())[
        "services"]["postgres"]["command"]
    given = dict(re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", setting).split("=", 1)
                 for flag, setting in zip(command[1::2], command[2::2], strict=True)
                 if flag == "-c")
    assert {"shared_buffers", "max_wal_size"} <= set(given)
    with psycopg.connect(fresh_postgres_url) as con:
        for name, value in given.items():
            (unit,) = con.execute("SELECT unit FROM pg_settings WHERE name = %s",
                                  (name,)).fetchone()
            (size,) = con.execute("SELECT pg_size_bytes(%s)", (value,)).fetchone()
            assert unit in ("8kB", "MB") and size >= 2**30, (name, value)
