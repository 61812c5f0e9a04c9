"""`make run`'s launcher: the three services on the local profile, no servers needed."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import REPO

PORTS = {"api": 18000, "auth": 18001, "push": 18002}


@pytest.fixture
def local_stack(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    env = {
        **os.environ,
        "MAGAM_PROFILE": "local",
        "MAGAM_CONFIG_REPO": str(REPO / "config-repo"),
        **{f"{svc.upper()}_HTTP__PORT": str(port) for svc, port in PORTS.items()},
        **{f"{svc.upper()}_DATABASE__SQLITE_DIR": str(tmp_path) for svc in PORTS},
    }
    with (tmp_path / "run_local.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "run_local.py")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            proc.wait(timeout=20)


def _wait_ready(url: str, deadline_s: float = 30) -> httpx.Response:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200 or time.monotonic() > deadline:
                return response
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def test_local_profile_serves_docs_and_is_ready_on_all_three_ports(
    local_stack: subprocess.Popen[str],
) -> None:
    for service, port in PORTS.items():
        ready = _wait_ready(f"http://127.0.0.1:{port}/readyz")
        assert ready.status_code == 200, (service, ready.text)
        assert ready.json()["service"] == service
        docs = httpx.get(f"http://127.0.0.1:{port}/docs")
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert metrics.status_code == 200
        assert f'magam_http_requests_total{{method="GET",route="/readyz",service="{service}"' in (
            metrics.text
        )


def test_local_profile_seeds_demo_stores_and_signs_in_demo_users(
    local_stack: subprocess.Popen[str],
) -> None:
    _wait_ready(f"http://127.0.0.1:{PORTS['api']}/readyz")
    stores = httpx.get(f"http://127.0.0.1:{PORTS['api']}/stores").json()["items"]
    assert len(stores) >= 3
    assert all(37.4 < s["lat"] < 37.7 and 126.7 < s["lon"] < 127.2 for s in stores)

    login = httpx.post(f"http://127.0.0.1:{PORTS['auth']}/auth/dev/login", json={"user": "manager"})
    assert login.status_code == 200
    assert login.json()["token_type"] == "Bearer"


def test_local_launcher_stops_cleanly_on_ctrl_c(local_stack: subprocess.Popen[str]) -> None:
    _wait_ready(f"http://127.0.0.1:{PORTS['push']}/readyz")
    local_stack.send_signal(signal.SIGINT)
    assert local_stack.wait(timeout=20) == 0
