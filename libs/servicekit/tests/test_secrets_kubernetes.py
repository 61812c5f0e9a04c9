"""Kubernetes auth against the real OpenBao: the pod's service-account token is exchanged for a
Vault token. No cluster runs here, so the Kubernetes API's TokenReview endpoint (the one thing
OpenBao asks Kubernetes) is a protocol-true stand-in on 127.0.0.1."""

from __future__ import annotations

import json
import os
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
    role: str
    secret_path: str
    base_path: str


@pytest.fixture
def kubernetes_auth(kube_api: KubernetesApi) -> Iterator[KubernetesAuth]:
    """A Kubernetes auth mount, policy and role unique to this test, on the real OpenBao."""
    bao = hvac.Client(url=BAO_ADDR, token=BAO_TOKEN, timeout=3)
    try:
        bao.sys.read_health_status(method="GET")
    except requests.ConnectionError:
        pytest.fail(f"OpenBao is not reachable at {BAO_ADDR}: run `scripts/infra up`")
    suffix = uuid.uuid4().hex[:8]
    mount, policy, role = f"k8s-test-{suffix}", f"magam-test-{suffix}", "magam-kubedemo"
    base = f"magam-test/{suffix}"
    bao.sys.enable_auth_method("kubernetes", path=mount)
    try:
        bao.auth.kubernetes.configure(
            kubernetes_host=kube_api.url,
            kubernetes_ca_cert=cluster_ca_pem(),
            disable_local_ca_jwt=True,
            mount_point=mount,
        )
        bao.sys.create_or_update_policy(
            policy, f'path "secret/data/{base}/*" {{ capabilities = ["read"] }}'
        )
        bao.auth.kubernetes.create_role(
            role,
            bound_service_account_names=["magam-kubedemo"],
            bound_service_account_namespaces=[NAMESPACE],
            policies=[policy],
            ttl="2m",
            mount_point=mount,
        )
        bao.secrets.kv.v2.create_or_update_secret(
            path=f"{base}/kubedemo",
            secret={"database_password": "from-k8s-login", "token_signing_key_pem": "pem"},
            mount_point="secret",
        )
        yield KubernetesAuth(mount, role, f"{base}/kubedemo", base)
    finally:
        bao.sys.disable_auth_method(mount)  # type: ignore[no-untyped-call]
        bao.sys.delete_policy(policy)  # type: ignore[no-untyped-call]


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
    pod: Path, kube_api: KubernetesApi
) -> None:
    token = service_account_jwt("magam-kubedemo")
    kube_api.known[token] = "magam-kubedemo"
    pod.write_text(token)

    settings = KubeDemoSettings()

    assert settings.database.password.get_secret_value() == "from-k8s-login"
    assert settings.token.signing_key_pem.get_secret_value() == "pem"
    assert [r["spec"]["token"] for r in kube_api.reviews] == [token]


def test_another_service_account_is_refused_at_login(pod: Path, kube_api: KubernetesApi) -> None:
    token = service_account_jwt("magam-intruder")
    kube_api.known[token] = "magam-intruder"
    pod.write_text(token)

    with pytest.raises(ConfigError, match="kubernetes login as role 'magam-kubedemo'"):
        KubeDemoSettings()


def test_a_token_the_cluster_does_not_recognise_is_refused(
    pod: Path, kube_api: KubernetesApi
) -> None:
    pod.write_text(service_account_jwt("magam-kubedemo"))  # never issued by the "cluster"

    with pytest.raises(ConfigError, match="kubernetes login"):
        KubeDemoSettings()
    assert len(kube_api.reviews) == 1
