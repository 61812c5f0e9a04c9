"""A real service process on secrets from the real OpenBao: api starts with its database password
read from Vault (none in the environment), and refuses to start, naming the secret, without it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import hvac
import pytest
import requests

from conftest import REPO, Infra

pytestmark = pytest.mark.integration

BAO_ADDR = f"http://127.0.0.1:{os.environ.get('MAGAM_BAO_PORT', '8200')}"
BAO_TOKEN = os.environ.get("MAGAM_BAO_TOKEN", "magam-dev-root")


@pytest.fixture
def bao() -> hvac.Client:
    client = hvac.Client(url=BAO_ADDR, token=BAO_TOKEN, timeout=3)
    try:
        client.sys.read_health_status(method="GET")
    except requests.ConnectionError:
        pytest.fail(f"OpenBao is not reachable at {BAO_ADDR}: run `scripts/infra up`")
    return client


def api_env(infra: Infra, base: str, port: int) -> dict[str, str]:
    env = {
        **os.environ,
        **infra.pg_env("api"),
        "MAGAM_PROFILE": "prod",
        "MAGAM_ALLOW_DEV_SECRETS": "1",
        "MAGAM_CONFIG_REPO": str(REPO / "config-repo"),
        "API_HTTP__PORT": str(port),
        "API_OUTBOX__RELAY_ENABLED": "false",
        "API_VAULT__ENABLED": "true",
        "API_VAULT__ADDR": BAO_ADDR,
        "API_VAULT__PATH": f"{base}/{{service}}",
        "VAULT_TOKEN": BAO_TOKEN,
    }
    env.pop("API_DATABASE__PASSWORD")  # only Vault may supply it
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_api_starts_on_its_database_password_from_vault(
    infra: Infra, bao: hvac.Client, tmp_path: Path
) -> None:
    base = f"magam-test/{uuid.uuid4().hex}"
    bao.secrets.kv.v2.create_or_update_secret(
        path=f"{base}/api", secret={"database_password": infra.pg_password}, mount_point="secret"
    )
    port = free_port()
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "from api.main import serve; serve()"],
            env=api_env(infra, base, port),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=3)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert ready is not None, log.read_text()[-3000:]
        assert ready.status_code == 200, log.read_text()[-3000:]
        assert ready.json()["checks"]["database"] == "up"
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_api_refuses_to_start_without_its_secret_and_names_it(
    infra: Infra, bao: hvac.Client
) -> None:
    base = f"magam-test/{uuid.uuid4().hex}"  # nothing written there

    done = subprocess.run(
        [sys.executable, "-c", "from api.main import serve; serve()"],
        env=api_env(infra, base, free_port()),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode != 0
    assert f"missing secret secret/{base}/api#database_password (for database.password)" in (
        done.stdout + done.stderr
    )
