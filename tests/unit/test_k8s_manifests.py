"""deploy/k8s: the Kubernetes manifests, checked offline.

Built-in kinds are validated against Kubernetes' own OpenAPI schemas, strict (unknown fields are
errors), as bundled with kubernetes-validate (no cluster, no network). The Strimzi Kafka,
KafkaNodePool and ServiceMonitor are custom resources whose schemas come with their operators,
not with Kubernetes: they are not schema-validated here, only checked for the fields TrackFlow
relies on. `kubectl kustomize` builds the kustomization where kubectl is installed.
"""

from __future__ import annotations

import copy
import functools
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.env import clear_trackflow_env
from trackflow_app import app
from trackflow_app.settings import Settings
from trackflow_app.shutdown import stop_limit_s

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
# The oldest Kubernetes whose schemas the manifests must pass, and the newest bundled.
VERSIONS = ("1.26.0", kubernetes_validate.utils.latest_version())
CUSTOM_KINDS = {"Kafka", "KafkaNodePool", "ServiceMonitor"}
CRD_FILES = {"kafka-strimzi.yaml", "servicemonitor.yaml"}


def load(name: str) -> list[dict[str, Any]]:
    text = (K8S / name).read_text(encoding="utf-8")
    return [doc for doc in yaml.safe_load_all(text) if doc]


@functools.cache
def manifests() -> dict[str, list[dict[str, Any]]]:
    return {path.name: load(path.name) for path in sorted(K8S.glob("*.yaml"))}


def one(kind: str) -> dict[str, Any]:
    [found] = [doc for docs in manifests().values() for doc in docs if doc["kind"] == kind]
    return found


def worker_container() -> dict[str, Any]:
    [container] = one("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def configured() -> dict[str, str]:
    """The TRACKFLOW_* environment a worker pod gets (ConfigMap, then Secret)."""
    return {**one("ConfigMap")["data"], **one("Secret")["stringData"]}


def built_in() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, doc)
        for name, docs in manifests().items()
        if name != "kustomization.yaml"
        for doc in docs
        if doc["kind"] not in CUSTOM_KINDS
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_built_in_manifest_validates_strictly(version: str) -> None:
    checked = built_in()
    kinds = {doc["kind"] for _, doc in checked}
    assert kinds == {
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    for name, doc in checked:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name} {doc['kind']}: {'.'.join(map(str, error.path))}: {error.message}")


def test_the_validator_refuses_a_misspelled_field() -> None:
    deployment = copy.deepcopy(one("Deployment"))
    spec = deployment["spec"]["template"]["spec"]
    spec["terminationGracePeriod"] = spec.pop("terminationGracePeriodSeconds")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_only_the_operator_resources_skip_schema_validation() -> None:
    custom = {name for name, docs in manifests().items() for d in docs if d["kind"] in CUSTOM_KINDS}
    assert custom == CRD_FILES
    for name in CRD_FILES:
        for doc in load(name):
            with pytest.raises(kubernetes_validate.utils.SchemaNotFoundError):
                kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_built_in_manifest() -> None:
    [kustomization] = load("kustomization.yaml")
    listed = kustomization["resources"]
    assert all((K8S / name).is_file() for name in listed)
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(listed) == files - CRD_FILES
    [image] = kustomization["images"]
    assert (image["name"], image["newName"], image["newTag"]) == (
        "trackflow",
        "trackflow",
        "latest",
    )
    assert worker_container()["image"] == image["name"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_builds_the_kustomization() -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    docs = [doc for doc in yaml.safe_load_all(built) if doc]
    assert sorted(doc["kind"] for doc in docs) == sorted(doc["kind"] for _, doc in built_in())
    [deployment] = [doc for doc in docs if doc["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "trackflow:latest"


def test_probes_point_at_paths_the_worker_serves() -> None:
    served = set(app.web.views)
    container = worker_container()
    probes = {name: container[name]["httpGet"] for name in ("startupProbe", "livenessProbe")}
    probes["readinessProbe"] = container["readinessProbe"]["httpGet"]
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    for probe in probes.values():
        assert probe["path"] in served
        assert probe["port"] == "http"
    [port] = container["ports"]
    assert port["name"] == "http"
    assert str(port["containerPort"]) == configured()["TRACKFLOW_WEB_PORT"]
    assert configured()["TRACKFLOW_WEB_BIND"] == "0.0.0.0"


def test_grace_period_outlasts_the_sink_flush_and_the_pre_stop_pause() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    command = worker_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pause = float(command[1])
    flush = float(configured()["TRACKFLOW_SINK_SHUTDOWN_FLUSH_S"])
    assert flush >= Settings.model_fields["sink_shutdown_flush_s"].default
    # The worker bounds its own stop at stop_limit_s(flush); the pod must not be killed first.
    assert pod["terminationGracePeriodSeconds"] > pause + stop_limit_s(flush)


def test_every_variable_is_a_trackflow_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    known = {f"TRACKFLOW_{name.upper()}" for name in Settings.model_fields}
    env = configured()
    assert set(env) <= known, set(env) - known
    container_env = {item["name"] for item in worker_container().get("env", [])}
    assert {name for name in container_env if name.startswith("TRACKFLOW_")} <= known
    # The pod's settings load as the worker loads them.
    clear_trackflow_env(monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.replication_factor == 3
    assert settings.datadir == "/var/lib/trackflow/faust"
    # Behind an ingress the client's address comes from X-Forwarded-For, or the per-IP rate
    # limit would count every client as the ingress controller.
    assert settings.trusted_proxy_networks
    assert settings.rate_limit_per_ip


def test_keys_and_the_store_url_are_secret() -> None:
    secret = one("Secret")["stringData"]
    config = one("ConfigMap")["data"]
    for name in ("TRACKFLOW_API_KEYS", "TRACKFLOW_READ_KEYS", "TRACKFLOW_CLICKHOUSE_URL"):
        assert name in secret
        assert name not in config
    refs = worker_container()["envFrom"]
    assert {"secretRef": {"name": one("Secret")["metadata"]["name"]}} in refs
    assert {"configMapRef": {"name": one("ConfigMap")["metadata"]["name"]}} in refs


def test_more_than_one_replica_needs_a_clickhouse_server() -> None:
    assert re.match(r"^https?://", configured()["TRACKFLOW_CLICKHOUSE_URL"])
    assert one("HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2


def test_autoscaler_stays_within_the_partitions() -> None:
    hpa = one("HorizontalPodAutoscaler")["spec"]
    env = configured()
    assert hpa["scaleTargetRef"]["name"] == one("Deployment")["metadata"]["name"]
    assert hpa["maxReplicas"] <= int(env["TRACKFLOW_RAW_PARTITIONS"])
    assert hpa["maxReplicas"] <= int(env["TRACKFLOW_PROCESSED_PARTITIONS"])
    assert worker_container()["resources"]["requests"]["cpu"]  # Utilization needs a request


def test_selectors_match_the_worker_pods() -> None:
    deployment = one("Deployment")["spec"]
    labels = deployment["template"]["metadata"]["labels"]
    selectors = [
        deployment["selector"]["matchLabels"],
        one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        one("Service")["spec"]["selector"],
    ]
    for selector in selectors:
        assert selector.items() <= labels.items()


def test_worker_runs_unprivileged_on_a_read_only_root() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    container = worker_container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    # Everything the worker writes is on an emptyDir: Faust's datadir and /tmp.
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    datadir = configured()["TRACKFLOW_DATADIR"]
    assert any(datadir.startswith(path + "/") and "emptyDir" in v for path, v in mounts.items())
    assert "emptyDir" in mounts["/tmp"]


def test_prometheus_scrapes_the_metrics_endpoint() -> None:
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics" and "/metrics" in app.web.views
    assert annotations["prometheus.io/port"] == configured()["TRACKFLOW_WEB_PORT"]
    monitor = one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service = one("Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}


def test_strimzi_kafka_replicates_three_times_with_two_in_sync() -> None:
    kafka, pool = one("Kafka"), one("KafkaNodePool")
    for doc in (kafka, pool):
        assert doc["apiVersion"] == "kafka.strimzi.io/v1"
        assert doc["metadata"]["name"] and doc["spec"]
    name = kafka["metadata"]["name"]
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == name
    assert pool["spec"]["replicas"] == 3
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}
    assert pool["spec"]["storage"]["type"] in {"jbod", "persistent-claim"}
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3
    assert config["min.insync.replicas"] == 2
    assert config["offsets.topic.replication.factor"] == 3
    [listener] = kafka["spec"]["kafka"]["listeners"]
    # The workers' bootstrap address is this cluster's bootstrap Service and listener port.
    bootstrap = f"kafka://{name}-kafka-bootstrap:{listener['port']}"
    assert configured()["TRACKFLOW_BROKER_URL"] == bootstrap
    assert int(configured()["TRACKFLOW_REPLICATION_FACTOR"]) == config["default.replication.factor"]
