"""The Kubernetes manifests: valid for the API, safe by default, shaped per environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import AliasChoices

from core.config import Settings
from tests.deploy.conftest import K8S, OVERLAYS, find, pod_specs

# The oldest Kubernetes we claim (preStop `sleep` needs 1.30) and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.30", "1.37")
EXAMPLE_SECRET = K8S / "base" / "secret.example.yaml"


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_manifest_is_valid_kubernetes(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, version: str
) -> None:
    failures = []
    for doc in [*rendered[overlay], load(EXAMPLE_SECRET)]:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as e:
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {str(e).splitlines()[0]}")
    assert not failures, "\n".join(failures)


def test_validation_rejects_a_field_kubernetes_does_not_know() -> None:
    deployment = yaml.safe_load((K8S / "base" / "web-deployment.yaml").read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["path"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_dev_runs_one_small_web_pod_without_autoscaling(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    dev = rendered["dev"]
    assert find(dev, "Deployment", "careline-web")["spec"]["replicas"] == 1
    assert not [d for d in dev if d["kind"] == "HorizontalPodAutoscaler"]


def test_prod_keeps_three_or_more_web_pods_under_autoscaling_and_disruptions(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    prod = rendered["prod"]
    hpa = find(prod, "HorizontalPodAutoscaler", "careline-web")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "careline-web"
    assert hpa["spec"]["minReplicas"] >= 3
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    # The HPA owns the count: a fixed `replicas` would be reset on every apply.
    assert "replicas" not in find(prod, "Deployment", "careline-web")["spec"]
    pdb = find(prod, "PodDisruptionBudget", "careline-web")
    assert pdb["spec"]["minAvailable"] >= 2
    web_labels = find(prod, "Deployment", "careline-web")["spec"]["template"]["metadata"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= web_labels["labels"].items()
    assert find(prod, "Deployment", "careline-relay")["spec"]["replicas"] >= 2


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_as_non_root_on_a_read_only_root(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    for workload, spec in pod_specs(rendered[overlay]).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, workload
        assert spec["securityContext"]["runAsUser"] != 0, workload
        assert spec.get("automountServiceAccountToken") is False, workload
        empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, workload
            assert security["allowPrivilegeEscalation"] is False, workload
            assert security["capabilities"]["drop"] == ["ALL"], workload
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            tmp = "/tmp"  # noqa: S108 - the mount path checked, not a file used
            assert mounts.get(tmp) in empty_dirs, f"{workload}: /tmp is not writable"
            assert mounts.get("/var/lib/careline") in empty_dirs, f"{workload}: no data dir"
            assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), workload
            assert "memory" in container["resources"]["limits"], workload


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_web_is_ready_on_readyz_and_alive_on_healthz(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    for name in ("careline-web", "careline-relay"):
        container = find(rendered[overlay], "Deployment", name)["spec"]["template"]["spec"][
            "containers"
        ][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_takes_its_database_from_the_secret_and_never_sqlite(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    for workload, spec in pod_specs(docs).items():
        for container in spec["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            url = env.get("CARELINE_DATABASE_URL")
            assert url is not None, f"{workload} would fall back to the image's SQLite"
            assert url["valueFrom"]["secretKeyRef"]["name"] == "careline-secrets", workload
            assert url["valueFrom"]["secretKeyRef"].get("optional") is not True, workload
    assert "sqlite" not in yaml.safe_dump_all(docs).lower()
    url = load(EXAMPLE_SECRET)["stringData"]["CARELINE_DATABASE_URL"]
    assert url.startswith("postgresql+asyncpg://")


def careline_env_names() -> set[str]:
    """Every environment variable name core/config.py reads."""
    prefix = Settings.model_config.get("env_prefix", "")
    names = set()
    for field_name, info in Settings.model_fields.items():
        names.add(f"{prefix}{field_name}".upper())
        if isinstance(info.validation_alias, AliasChoices):
            names |= {str(choice).upper() for choice in info.validation_alias.choices}
        elif isinstance(info.validation_alias, str):
            names.add(info.validation_alias.upper())
    return names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_setting_the_manifests_give_is_one_careline_reads(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    known = careline_env_names()
    given = set(load(EXAMPLE_SECRET)["stringData"])
    for doc in rendered[overlay]:
        if doc["kind"] == "ConfigMap":
            given |= set(doc["data"])
    for spec in pod_specs(rendered[overlay]).values():
        for container in spec["containers"]:
            given |= {e["name"] for e in container.get("env", [])}
    assert given - known == set(), "settings core/config.py does not read"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workloads_refer_to_the_config_map_and_service_account_the_overlay_makes(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    config_maps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    for workload, spec in pod_specs(docs).items():
        assert spec["serviceAccountName"] in accounts, workload
        for container in spec["containers"]:
            refs = {s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s}
            assert refs and refs <= config_maps, f"{workload} refers to {refs}"
    namespaces = {d["metadata"].get("namespace") for d in docs}
    assert len(namespaces) == 1 and None not in namespaces, namespaces


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_admin_api_is_reachable_only_through_the_allow_listed_ingress(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    def paths(ingress: dict[str, Any]) -> set[str]:
        return {p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}

    public = paths(find(rendered[overlay], "Ingress", "careline-public"))
    assert {"/telegram", "/slack", "/chat"} <= public
    assert not {p for p in public if p in {"/", ""} or p.startswith(("/api", "/docs", "/metrics"))}
    admin = find(rendered[overlay], "Ingress", "careline-admin")
    assert "/api" in paths(admin)
    assert admin["metadata"]["annotations"]["nginx.ingress.kubernetes.io/whitelist-source-range"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_cover_every_workload(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    selectors = [
        d["spec"]["podSelector"]["matchLabels"] for d in docs if d["kind"] == "NetworkPolicy"
    ]
    for doc in docs:
        if doc["kind"] in {"Deployment", "Job"}:
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert any(s.items() <= labels.items() for s in selectors), doc["metadata"]["name"]
