"""Deployment files: Kubernetes manifests against the API schemas, Cloud Run settings,
the Dockerfile through hadolint, and a real build where a Docker engine is available."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

INFRA = Path(__file__).resolve().parent.parent / "infra"
K8S = sorted((INFRA / "k8s").glob("*.yaml"))
MANIFESTS = [p for p in K8S if p.name not in ("kustomization.yaml", "prometheus-adapter-rules.yaml")]


def load(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kind(name: str) -> dict:
    docs = [doc for path in MANIFESTS for doc in load(path) if doc["kind"] == name]
    assert len(docs) == 1, f"one {name} expected"
    return docs[0]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_against_the_kubernetes_schema(path):
    for doc in load(path):
        kubernetes_validate.validate(doc, kubernetes_validate.utils.latest_version(), strict=True)


def test_kustomization_lists_every_manifest():
    listed = set(load(INFRA / "k8s" / "kustomization.yaml")[0]["resources"])
    assert listed == {p.name for p in MANIFESTS}


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_deployment_drains_calls_and_probes_the_right_endpoints():
    spec = kind("Deployment")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    drain = float(env_of(container)["TELEPHONY_DRAIN_SECONDS"])
    assert spec["terminationGracePeriodSeconds"] >= drain + 15, "room for the drain and the goodbye"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert {"GEMINI_API_KEY", "TWILIO_AUTH_TOKEN"} <= set(kind("Secret")["stringData"])
    assert container["envFrom"][0]["secretRef"]["name"] == kind("Secret")["metadata"]["name"]


def test_ingress_keeps_websockets_open_for_a_whole_call():
    annotations = kind("Ingress")["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600


def test_autoscaler_scales_on_live_calls_with_cpu_as_fallback():
    metrics = kind("HorizontalPodAutoscaler")["spec"]["metrics"]
    assert metrics[0]["pods"]["metric"]["name"] == "telephony_active_calls"
    assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in metrics)
    assert kind("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_cloud_run_service_suits_websocket_calls():
    (service,) = load(INFRA / "cloudrun" / "service.yaml")
    template = service["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert template["spec"]["timeoutSeconds"] == 3600
    assert annotations["run.googleapis.com/sessionAffinity"] == "true"
    assert annotations["run.googleapis.com/cpu-throttling"] == "false"
    assert int(annotations["autoscaling.knative.dev/minScale"]) >= 1
    (container,) = template["spec"]["containers"]
    assert template["spec"]["containerConcurrency"] <= int(env_of(container)["TELEPHONY_MAX_CONCURRENT_CALLS"])
    assert float(env_of(container)["TELEPHONY_DRAIN_SECONDS"]) < 10, "Cloud Run kills 10 s after SIGTERM"


def test_compose_runs_the_server_against_the_emulator():
    compose = yaml.safe_load((INFRA / "compose.yaml").read_text())
    server, gemini = compose["services"]["telephony"], compose["services"]["gemini"]
    assert server["environment"]["TELEPHONY_GEMINI_BASE_URL"] == "https://gemini:9000"
    assert gemini["command"][:2] == ["emulate", "gemini"] and "--ca-out" in gemini["command"]


def test_dockerfile_passes_hadolint_and_has_the_runtime_essentials():
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(INFRA / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (INFRA / "Dockerfile").read_text()
    assert "USER 10001" in text and "STOPSIGNAL SIGTERM" in text and "/healthz" in text
    assert "[dev]" not in text, "no dev dependencies in the image"


def _docker_engine() -> str | None:
    if shutil.which("docker") is None:
        return "no docker command on this machine"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True)
    return None if probe.returncode == 0 else "no Docker engine is running here (docker info failed)"


@pytest.mark.skipif(_docker_engine() is not None, reason=str(_docker_engine()))
def test_image_builds_and_answers_healthz():  # pragma: no cover - needs a Docker engine
    root = INFRA.parent
    subprocess.run(["docker", "build", "-f", str(INFRA / "Dockerfile"), "-t", "telephony:test", str(root)], check=True)
    container = subprocess.run(
        ["docker", "run", "-d", "-e", "TELEPHONY_VALIDATE_SIGNATURES=false", "-e", "GEMINI_API_KEY=x", "-p", "18080:8080", "telephony:test"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    try:
        import time
        import urllib.request

        for _ in range(60):
            try:
                assert urllib.request.urlopen("http://127.0.0.1:18080/healthz", timeout=2).status == 200
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the container never answered /healthz")
    finally:
        subprocess.run(["docker", "rm", "-f", container], check=False)
