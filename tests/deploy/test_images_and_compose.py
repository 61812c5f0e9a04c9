"""Dockerfiles, docker-compose.yml and the nginx ingress config, checked without a Docker engine:
structure by parsing, `docker compose config` (the client's plugin, else the standalone binary
scripts/tools installs) and `nginx -t` (where nginx is installed; scripts/tools installs it)."""

from __future__ import annotations

import ast
import re
import shutil
import socket
import subprocess
import threading
import time
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from api.settings import ApiSettings
from auth.settings import AuthSettings
from conftest import REPO
from push.settings import PushSettings
from servicekit.config import ServiceSettings
from servicekit.secrets import _secret_fields, secret_key
from tests.deploy.conftest import Tools

SERVICES = {"api": 8000, "auth": 8001, "push": 8002}
SETTINGS: dict[str, type[ServiceSettings]] = {
    "api": ApiSettings,
    "auth": AuthSettings,
    "push": PushSettings,
}
COMPOSE = REPO / "docker-compose.yml"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def workspace_members() -> list[str]:
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    members: list[str] = []
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        members += sorted(
            str(p.parent.relative_to(REPO)) for p in REPO.glob(f"{pattern}/pyproject.toml")
        )
    return members


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_each_dockerfile_is_multi_stage_non_root_with_a_healthcheck(service: str) -> None:
    text = (REPO / "services" / service / "Dockerfile").read_text()

    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert f"http://127.0.0.1:{SERVICES[service]}/healthz" in text
    assert re.search(r"^HEALTHCHECK ", text, re.M)
    assert f'ENTRYPOINT ["magam-{service}"]' in text
    assert f"uv sync --locked --no-dev --no-editable --package magam-{service}" in text
    assert ":latest" not in text
    # uv checks the whole workspace against uv.lock: every member's pyproject must be copied.
    for member in workspace_members():
        assert f"COPY {member}/pyproject.toml {member}/" in text, member


def test_dockerignore_keeps_secrets_and_tests_out_of_the_context() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())

    assert {".git", ".infra", ".local", "config-repo", "**/tests", "**/.venv"} <= ignored


def test_compose_starts_everything_health_gated() -> None:
    services = compose()["services"]

    assert {"postgis", "kafka", "akhq", "zipkin", "openbao", "auth", "api", "push", "nginx"} <= set(
        services
    )
    for name, service in services.items():
        image = service["image"]
        assert ":" in image, name
        assert not image.endswith(":latest"), name
        if service.get("restart") != "no":
            assert "healthcheck" in service or "build" in service, f"{name} has no health check"
    for name in SERVICES:
        service = services[name]
        assert service["read_only"] is True, name
        assert service["user"] == "10001:10001", name
        assert service["cap_drop"] == ["ALL"], name
        assert service["build"]["dockerfile"] == f"services/{name}/Dockerfile"
        conditions = {dep: c["condition"] for dep, c in service["depends_on"].items()}
        for infra in ("postgis", "kafka", "openbao"):
            assert conditions[infra] == "service_healthy", (name, infra)
        assert conditions["secrets-init"] == "service_completed_successfully"
    assert services["api"]["depends_on"]["auth"]["condition"] == "service_healthy"
    assert services["push"]["depends_on"]["auth"]["condition"] == "service_healthy"
    assert {d: c["condition"] for d, c in services["nginx"]["depends_on"].items()} == {
        "auth": "service_healthy",
        "api": "service_healthy",
        "push": "service_healthy",
    }


def seeded_keys() -> dict[str, set[str]]:
    """The keys deploy/compose/seed_secrets.py writes, per service (read from its source)."""
    tree = ast.parse((REPO / "deploy" / "compose" / "seed_secrets.py").read_text())
    wanted = next(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id == "wanted"
    )
    assert isinstance(wanted, ast.Dict)
    seeded: dict[str, set[str]] = {}
    for key, value in zip(wanted.keys, wanted.values, strict=True):
        assert isinstance(key, ast.Constant)
        assert isinstance(value, ast.Dict)
        seeded[str(key.value).removeprefix("magam/")] = {
            str(k.value) for k in value.keys if isinstance(k, ast.Constant)
        }
    return seeded


def vault_env(service: str, name: str) -> Any:
    raw = compose()["services"][service]["environment"].get(f"{service.upper()}_VAULT__{name}")
    return yaml.safe_load(raw) if raw else None


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_compose_seeds_exactly_the_secrets_each_service_requires(service: str) -> None:
    optional = set(vault_env(service, "OPTIONAL") or [])
    files = vault_env(service, "FILES") or {}
    required = {
        secret_key(f) for f in _secret_fields(SETTINGS[service]) if f not in optional
    } | set(files.values())

    assert seeded_keys()[service] == required


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_chart_and_compose_agree_on_optional_and_file_secrets(service: str) -> None:
    values = yaml.safe_load((REPO / "charts" / "magam" / "values.yaml").read_text())
    chart = values["services"][service]

    assert set(chart.get("vaultOptional", [])) == set(vault_env(service, "OPTIONAL") or [])
    assert chart.get("vaultFiles", {}) == (vault_env(service, "FILES") or {})
    for setting in chart.get("vaultOptional", []):
        assert setting in _secret_fields(SETTINGS[service]), setting


def test_docker_compose_config_accepts_the_file(tools: Tools, tmp_path: Path) -> None:
    """`docker compose config`: the plugin when the client has one, else scripts/tools' binary."""
    docker = shutil.which("docker")
    plugin = docker is not None and (
        subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode
        == 0
    )
    command = [docker, "compose"] if plugin and docker else [str(tools.bin_dir / "docker-compose")]
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        COMPOSE.read_text().replace("service_completed_successfully", "service_finished")
    )

    good = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    bad = subprocess.run(
        [*command, "-f", str(broken), "--project-directory", str(REPO), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert good.returncode == 0, good.stderr
    assert bad.returncode != 0
    assert "condition" in bad.stderr


def test_nginx_accepts_the_ingress_config(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None
    )
    if nginx is None:
        pytest.skip("nginx is not installed here (apt-get install nginx-light to check it)")
    conf = (REPO / "deploy" / "nginx" / "nginx.conf").read_text()
    # Docker's embedded DNS exists only inside a compose network.
    (tmp_path / "nginx.conf").write_text(conf.replace("127.0.0.11", "127.0.0.1"))

    done = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    stripped = re.search(r"\(\?<prefix>([a-z|]+)\)", conf)
    assert stripped is not None
    assert stripped.group(1).split("|") == ["api", "push"]
    assert "location /auth {" in conf


def test_the_compose_ingress_strips_api_and_push_and_passes_auth_through(tmp_path: Path) -> None:
    """nginx with the compose config, its upstreams pointed at local echo servers."""
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        pytest.skip("nginx is not installed here (apt-get install nginx-light to check it)")
    seen: list[tuple[str, str, str]] = []

    def echo(service: str) -> ThreadingHTTPServer:
        class Echo(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append((service, self.path, self.headers.get("X-Forwarded-Prefix", "")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    upstreams = {name: echo(name) for name in SERVICES}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = (REPO / "deploy" / "nginx" / "nginx.conf").read_text()
    conf = conf.replace("127.0.0.11", "127.0.0.1").replace("/tmp/", f"{tmp_path}/")  # noqa: S108
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    for name, server in upstreams.items():
        conf = conf.replace(
            f"http://{name}:{SERVICES[name]}", f"http://127.0.0.1:{server.server_address[1]}"
        )
    (tmp_path / "nginx.conf").write_text(conf)
    process = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{base}/nginx-health", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        statuses = [
            httpx.get(f"{base}{path}", timeout=5).status_code
            for path in ("/api/stores?page=2", "/push/devices", "/auth/kakao/callback?code=x")
        ]
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()
        for server in upstreams.values():
            server.shutdown()
            server.server_close()

    assert statuses == [200, 200, 200]
    assert seen == [
        ("api", "/stores?page=2", "/api"),
        ("push", "/devices", "/push"),
        ("auth", "/auth/kakao/callback?code=x", ""),
    ]
