"""The deployment files: the production instance config against a real PostgreSQL, compose,
workspaces and Helm values that parse and point at each other."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import yaml
from dagster._core.instance.ref import InstanceRef

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
    assert env["CDR_WAREHOUSE_URL"].startswith("postgresql://")
    instance_env = yaml.safe_load((DOCKER / "dagster.yaml").read_text())[
        "run_launcher"]["config"]["env_vars"]
    assert set(instance_env) <= set(env), "runs must get every variable the services have"


def test_root_workspace_loads_the_definitions_module():
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["module_name"] == \
        "cdr_workflow.definitions"


def test_helm_values_use_the_k8s_run_launcher():
    values = yaml.safe_load((DOCKER / "helm-values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "cdr_workflow.definitions"]
