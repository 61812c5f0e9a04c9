"""Kubernetes auth against the real OpenBao: the pod's service-account token is exchanged for a
Vault token. No cluster runs here, so the Kubernetes API's TokenReview endpoint (the one thing
OpenBao asks Kubernetes) is a protocol-true stand-in on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import hvac
import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import BaseModel, SecretStr
from pydantic_settings import SettingsConfigDict

from servicekit.config import ConfigError, ServiceSettings

pytestmark = pytest.mark.integration

BAO_ADDR = f"http://127.0.0.1:{os.environ.get('MAGAM_BAO_PORT', '8200')}"
BAO_TOKEN = os.environ.get("MAGAM_BAO_TOKEN", "magam-dev-root")
NAMESPACE = "magam"
SETUP_SCRIPT = Path(__file__).resolve().parents[3] / "deploy" / "vault" / "setup_kubernetes_auth.py"


class TokenSettings(BaseModel):
    signing_key_pem: SecretStr = SecretStr("")


class KubeDemoSettings(ServiceSettings):
    service_name: ClassVar[str] = "kubedemo"
    model_config = SettingsConfigDict(env_prefix="KUBEDEMO_")

    token: TokenSettings = TokenSettings()


def cluster_ca_pem() -> str:
    """A self-signed CA certificate: OpenBao insists on one (the stand-in speaks plain HTTP)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes-test-ca")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def service_account_jwt(name: str) -> str:
    """A projected service-account token as the kubelet mounts it (signature checked by the API)."""
    now = int(time.time())
    claims = {
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": f"system:serviceaccount:{NAMESPACE}:{name}",
        "aud": ["https://kubernetes.default.svc.cluster.local"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "kubernetes.io": {
            "namespace": NAMESPACE,
            "serviceaccount": {"name": name, "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, name))},
        },
    }
    return jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")


@dataclass
class KubernetesApi:
    url: str
    reviews: list[dict[str, Any]]
    known: dict[str, str]  # token → service-account name


@pytest.fixture
def kube_api() -> Iterator[KubernetesApi]:
    """Answers POST /apis/authentication.k8s.io/v1/tokenreviews like the API server."""
    reviews: list[dict[str, Any]] = []
    known: dict[str, str] = {}

    class Api(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path != "/apis/authentication.k8s.io/v1/tokenreviews":
                self.send_error(404)
                return
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            reviews.append(review)
            name = known.get(review["spec"]["token"])
            status: dict[str, Any] = {"authenticated": False, "error": "invalid bearer token"}
            if name is not None:
                status = {
                    "authenticated": True,
                    "user": {
                        "username": f"system:serviceaccount:{NAMESPACE}:{name}",
                        "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
                        "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}"],
                    },
                    "audiences": review["spec"].get("audiences") or [],
                }
            body = json.dumps(
                {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenReview",
                    "metadata": {"creationTimestamp": None},
                    "spec": review["spec"],
                    "status": status,
                }
            ).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield KubernetesApi(f"http://127.0.0.1:{server.server_address[1]}", reviews, known)
    server.shutdown()
    server.server_close()


@dataclass
class KubernetesAuth:
    mount: str
    role: str  # also the service account's name
    base_path: str


@pytest.fixture
def kubernetes_auth(kube_api: KubernetesApi, tmp_path: Path) -> Iterator[KubernetesAuth]:
    """deploy/vault/setup_kubernetes_auth.py run against the real OpenBao, with names unique to
    this test: an auth mount, a policy and a role for the service ``kubedemo``."""
    bao = hvac.Client(url=BAO_ADDR, token=BAO_TOKEN, timeout=3)
    try:
        bao.sys.read_health_status(method="GET")
    except requests.ConnectionError:
        pytest.fail(f"OpenBao is not reachable at {BAO_ADDR}: run `scripts/infra up`")
    suffix = uuid.uuid4().hex[:8]
    mount, prefix, base = f"k8s-test-{suffix}", f"t{suffix}-", f"magam-test/{suffix}"
    ca_file = tmp_path / "cluster-ca.crt"
    ca_file.write_text(cluster_ca_pem())
    setup = subprocess.run(
        [
            sys.executable,
            str(SETUP_SCRIPT),
            "--addr",
            BAO_ADDR,
            "--kubernetes-host",
            kube_api.url,
            "--kubernetes-ca-file",
            str(ca_file),
            "--namespace",
            NAMESPACE,
            "--mount",
            mount,
            "--path-prefix",
            base,
            "--role-prefix",
            prefix,
            "--services",
            "kubedemo",
            "--token-ttl",
            "2m",
        ],
        env={**os.environ, "VAULT_TOKEN": BAO_TOKEN},
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        assert setup.returncode == 0, setup.stderr
        bao.secrets.kv.v2.create_or_update_secret(
            path=f"{base}/kubedemo",
            secret={"database_password": "from-k8s-login", "token_signing_key_pem": "pem"},
            mount_point="secret",
        )
        yield KubernetesAuth(mount, f"{prefix}kubedemo", base)
    finally:
        bao.sys.disable_auth_method(mount)  # type: ignore[no-untyped-call]
        bao.sys.delete_policy(f"{prefix}kubedemo")  # type: ignore[no-untyped-call]


@pytest.fixture
def pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kubernetes_auth: KubernetesAuth) -> Path:
    """The environment the chart gives a pod: prod profile, Kubernetes auth, no Vault token."""
    (tmp_path / "application.yml").write_text(
        f"vault:\n  path: {kubernetes_auth.base_path}/{{service}}\n", encoding="utf-8"
    )
    token_file = tmp_path / "serviceaccount-token"
    monkeypatch.setenv("MAGAM_CONFIG_REPO", str(tmp_path))
    monkeypatch.setenv("MAGAM_PROFILE", "prod")
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    monkeypatch.setenv("KUBEDEMO_VAULT__ENABLED", "true")
    monkeypatch.setenv("KUBEDEMO_VAULT__ADDR", BAO_ADDR)
    monkeypatch.setenv("KUBEDEMO_VAULT__AUTH_METHOD", "kubernetes")
    monkeypatch.setenv("KUBEDEMO_VAULT__KUBERNETES_MOUNT", kubernetes_auth.mount)
    monkeypatch.setenv("KUBEDEMO_VAULT__KUBERNETES_ROLE", kubernetes_auth.role)
    monkeypatch.setenv("KUBEDEMO_VAULT__KUBERNETES_JWT_PATH", str(token_file))
    return token_file


def test_a_pod_logs_in_with_its_service_account_and_reads_its_secrets(
    pod: Path, kube_api: KubernetesApi, kubernetes_auth: KubernetesAuth
) -> None:
    token = service_account_jwt(kubernetes_auth.role)
    kube_api.known[token] = kubernetes_auth.role
    pod.write_text(token)

    settings = KubeDemoSettings()

    assert settings.database.password.get_secret_value() == "from-k8s-login"
    assert settings.token.signing_key_pem.get_secret_value() == "pem"
    assert [r["spec"]["token"] for r in kube_api.reviews] == [token]


def test_another_service_account_is_refused_at_login(
    pod: Path, kube_api: KubernetesApi, kubernetes_auth: KubernetesAuth
) -> None:
    token = service_account_jwt("magam-intruder")
    kube_api.known[token] = "magam-intruder"
    pod.write_text(token)

    with pytest.raises(ConfigError, match=f"kubernetes login as role '{kubernetes_auth.role}'"):
        KubeDemoSettings()


def test_a_token_the_cluster_does_not_recognise_is_refused(
    pod: Path, kube_api: KubernetesApi, kubernetes_auth: KubernetesAuth
) -> None:
    # The right name in its claims, but the cluster never issued it: TokenReview says no.
    pod.write_text(service_account_jwt(kubernetes_auth.role))

    with pytest.raises(ConfigError, match="kubernetes login"):
        KubeDemoSettings()
    assert len(kube_api.reviews) == 1
