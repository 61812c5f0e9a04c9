"""The deployment as rendered: helm lint/template, kustomize build of every overlay, kubeconform
against the Kubernetes schemas, and the rules every rendered workload must follow."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO
from tests.deploy.conftest import Tools

CHART = REPO / "charts" / "magam"
OVERLAYS = sorted(p.name for p in (REPO / "kustomize" / "overlays").iterdir() if p.is_dir())
LOCAL_SCHEMAS = Path(__file__).parent / "schemas"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
#: Workloads allowed to run as root, and why. Nothing else may.
ROOT_ALLOWED = {
    "magam-fluentd": "reads the node's root-only /var/log; keeps only DAC_READ_SEARCH",
}


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def validate(tools: Tools, manifests: str, *extra: str) -> dict[str, Any]:
    """kubeconform over ``manifests`` (stdin); fails the test with every invalid resource."""
    args = [
        str(tools.bin_dir / "kubeconform"),
        "-strict",
        "-summary",
        "-output",
        "json",
        "-kubernetes-version",
        tools.kubernetes_version,
        "-schema-location",
        f"{tools.schemas}/{{{{ .NormalizedKubernetesVersion }}}}-local{{{{ .StrictSuffix }}}}"
        "/{{ .ResourceKind }}{{ .KindSuffix }}.json",
        "-schema-location",
        f"{LOCAL_SCHEMAS}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
        *extra,
    ]
    done = subprocess.run(args, input=manifests, capture_output=True, text=True, check=False)
    report: dict[str, Any] = json.loads(done.stdout)
    problems = [r for r in report.get("resources", []) if r["status"] != "statusValid"]
    assert not problems, json.dumps(problems, indent=1)[:4000]
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    return report


def helm_template(tools: Tools, *sets: str) -> str:
    args = ["helm", "template", "magam", str(CHART), "--kube-version", tools.kubernetes_version]
    for value in sets:
        args += ["--set", value]
    done = tools.run(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def chart_default(tools: Tools) -> str:
    return helm_template(tools)


@pytest.fixture(scope="module")
def chart_everything(tools: Tools) -> str:
    return helm_template(tools, "fluentd.enabled=true", "zipkin.enabled=true")


@pytest.fixture(scope="module")
def overlays(tools: Tools) -> dict[str, str]:
    rendered = {}
    for overlay in OVERLAYS:
        done = tools.run("kustomize", "build", "--enable-helm", f"kustomize/overlays/{overlay}")
        assert done.returncode == 0, done.stderr
        rendered[overlay] = done.stdout
    return rendered


def test_helm_lint_is_clean(tools: Tools) -> None:
    done = tools.run(
        "helm", "lint", "--strict", str(CHART), "--kube-version", tools.kubernetes_version
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "[ERROR]" not in done.stdout
    assert "[WARNING]" not in done.stdout


def test_the_chart_renders_valid_kubernetes_objects(
    tools: Tools, chart_default: str, chart_everything: str
) -> None:
    default = validate(tools, chart_default)
    everything = validate(tools, chart_everything)

    assert default["summary"]["valid"] == len(documents(chart_default))
    assert everything["summary"]["valid"] == len(documents(chart_everything))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_builds_valid_kubernetes_objects(
    tools: Tools, overlays: dict[str, str], overlay: str
) -> None:
    report = validate(tools, overlays[overlay])

    assert report["summary"]["valid"] == len(documents(overlays[overlay])) >= 17


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            spec = doc["spec"]
            if doc["kind"] == "CronJob":
                spec = spec["jobTemplate"]["spec"]
            yield doc["metadata"]["name"], spec["template"]["spec"]


def all_rendered(chart_everything: str, overlays: dict[str, str]) -> list[dict[str, Any]]:
    docs = documents(chart_everything)
    for text in overlays.values():
        docs += documents(text)
    return docs


def test_every_container_has_probes_resources_a_pinned_image_and_a_locked_down_context(
    chart_everything: str, overlays: dict[str, str]
) -> None:
    checked = 0
    for name, pod in pod_specs(all_rendered(chart_everything, overlays)):
        pod_context = pod.get("securityContext", {})
        assert pod_context.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        for container in pod["containers"]:
            where = f"{name}/{container['name']}"
            assert container["livenessProbe"]["httpGet"]["path"], where
            assert container["readinessProbe"]["httpGet"]["path"], where
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), where
            assert "memory" in resources["limits"], where
            image = container["image"]
            repository, _, tag = image.rpartition(":")
            assert repository, f"{where}: {image}"
            assert tag, f"{where}: {image} has no tag"
            assert "/" not in tag, f"{where}: {image} has no tag"
            assert tag != "latest", f"{where}: {image}"
            context = {**pod_context, **container.get("securityContext", {})}
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert "ALL" in context.get("capabilities", {}).get("drop", []), where
            if name in ROOT_ALLOWED:
                assert context.get("capabilities", {}).get("add") == ["DAC_READ_SEARCH"], where
            else:
                assert context.get("runAsNonRoot") is True, where
                assert context.get("runAsUser", 1) != 0, where
            checked += 1
    assert checked >= 3 * (1 + len(OVERLAYS)) + 2  # our three everywhere, + fluentd and zipkin


def test_our_services_probe_healthz_and_readyz_and_mount_config_repo(chart_default: str) -> None:
    deployments = {
        d["metadata"]["name"]: d for d in documents(chart_default) if d["kind"] == "Deployment"
    }

    assert set(deployments) == {"magam-api", "magam-auth", "magam-push"}
    for deployment in deployments.values():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["MAGAM_PROFILE"] == "prod"
        assert env["MAGAM_CONFIG_REPO"] == "/config-repo"
        mount = next(m for m in container["volumeMounts"] if m["name"] == "config-repo")
        assert "subPath" not in mount  # a subPath mount never sees ConfigMap updates


def test_replicas_autoscaling_and_disruption_budgets(chart_default: str) -> None:
    docs = documents(chart_default)
    hpa = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    pdb = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "PodDisruptionBudget"}

    assert {n: s["minReplicas"] for n, s in hpa.items()} == {
        "magam-api": 3,
        "magam-auth": 2,
        "magam-push": 2,
    }
    for name, spec in pdb.items():
        assert 1 <= spec["minAvailable"] < hpa[name]["minReplicas"], name
    for doc in docs:
        if doc["kind"] == "Deployment":
            assert "replicas" not in doc["spec"], "the HPA owns replicas"


def test_the_ingress_routes_auth_api_and_push_through_nginx(chart_default: str) -> None:
    ingresses = {
        d["metadata"]["name"]: d for d in documents(chart_default) if d["kind"] == "Ingress"
    }

    def routes(name: str) -> dict[str, tuple[str, str]]:
        spec = ingresses[name]["spec"]
        assert spec["ingressClassName"] == "nginx"
        return {
            p["path"]: (p["pathType"], p["backend"]["service"]["name"])
            for p in spec["rules"][0]["http"]["paths"]
        }

    # api and push serve from their root: /api/stores reaches api as /stores.
    assert routes("magam") == {
        "/api(/|$)(.*)": ("ImplementationSpecific", "magam-api"),
        "/push(/|$)(.*)": ("ImplementationSpecific", "magam-push"),
    }
    annotations = ingresses["magam"]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/rewrite-target"] == "/$2"
    # auth's routes already carry /auth (/auth/kakao/callback): passed through unchanged.
    assert routes("magam-passthrough") == {"/auth": ("Prefix", "magam-auth")}
    assert "annotations" not in ingresses["magam-passthrough"]["metadata"]


def test_the_config_repo_configmap_carries_every_config_repo_file(chart_default: str) -> None:
    (configmap,) = [
        d
        for d in documents(chart_default)
        if d["kind"] == "ConfigMap" and "config-repo" in d["metadata"]["name"]
    ]

    files = {p.name for p in (REPO / "config-repo").glob("*.yml")}
    assert set(configmap["data"]) == files
    assert yaml.safe_load(configmap["data"]["application.yml"]) == yaml.safe_load(
        (REPO / "config-repo" / "application.yml").read_text()
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_owns_the_image_tags(overlays: dict[str, str], overlay: str) -> None:
    kustomization = yaml.safe_load(
        (REPO / "kustomize" / "overlays" / overlay / "kustomization.yaml").read_text()
    )
    tags = {i["name"].removeprefix("magam/"): i["newTag"] for i in kustomization["images"]}

    images = {
        c["name"]: c["image"]
        for _, pod in pod_specs(documents(overlays[overlay]))
        for c in pod["containers"]
    }
    assert images == {s: f"magam/{s}:{tags[s]}" for s in ("api", "auth", "push")}


def test_the_values_schema_refuses_latest_and_secrets_in_values(tools: Tools) -> None:
    latest = tools.run(
        "helm", "template", "m", str(CHART), "--kube-version", tools.kubernetes_version,
        "--set", "image.tag=latest",
    )  # fmt: skip
    secret = tools.run(
        "helm", "template", "m", str(CHART), "--kube-version", tools.kubernetes_version,
        "--set", "services.api.env.API_DATABASE__PASSWORD=hunter2",
    )  # fmt: skip

    assert latest.returncode != 0
    assert "/image/tag" in latest.stderr
    assert secret.returncode != 0
    assert "API_DATABASE__PASSWORD" in secret.stderr


SECRET_WORDS = ("password", "secret", "token", "pem", "webhook", "private_key", "admin_key")


def secret_looking_values(node: Any, path: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            # ...Name keys name a Secret object (tlsSecretName); they hold no secret.
            secretish = any(w in str(key).lower() for w in SECRET_WORDS)
            secretish = secretish and not str(key).endswith("Name")
            if secretish and isinstance(value, str) and value:
                yield where
            yield from secret_looking_values(value, where)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from secret_looking_values(item, f"{path}[{index}]")


def test_no_secret_lives_in_config_repo_or_the_charts_defaults() -> None:
    # *-local.yml may hold the local stand-ins' fixed test values (the local profile talks to no
    # real Kakao, FCM or Slack); every other layer reaches real systems and gets secrets from Vault.
    config = [
        f for f in sorted((REPO / "config-repo").glob("*.yml")) if not f.stem.endswith("-local")
    ]
    files = [*config, CHART / "values.yaml"]
    files += sorted((REPO / "kustomize" / "overlays").glob("*/values.yaml"))

    found = [
        f"{f.name}: {p}"
        for f in files
        for p in secret_looking_values(yaml.safe_load(f.read_text()))
    ]

    assert found == []


def test_argocd_applications_sync_automatically_and_pin_third_party_charts(tools: Tools) -> None:
    docs = [d for f in sorted((REPO / "argocd").rglob("*.yaml")) for d in documents(f.read_text())]
    project = next(d for d in docs if d["kind"] == "AppProject")
    apps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Application"}

    assert {"magam-root", "magam-dev", "magam-prod", "platform"} <= set(apps)
    wanted = {"ingress-nginx", "strimzi", "cloudnative-pg", "zipkin", "elasticsearch", "fluentd"}
    assert wanted | {"kibana", "akhq", "openbao"} <= set(apps)
    for name, app in apps.items():
        spec = app["spec"]
        assert spec["project"] == "magam", name
        assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}, name
        source = spec["source"]
        assert source["repoURL"] in project["spec"]["sourceRepos"], name
        if "chart" in source:
            version = source["targetRevision"]
            assert version.count(".") == 2, (name, version)
            assert version.replace(".", "").isdigit(), (name, version)
            assert "valuesObject" in source["helm"], name
        else:
            assert (REPO / source["path"]).is_dir(), name
    ours = [d for d in docs if d["kind"] in {"Application", "AppProject", "ConfigMap"}]
    validate(tools, yaml.safe_dump_all(ours))
