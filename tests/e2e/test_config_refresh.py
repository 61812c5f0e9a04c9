"""Config refresh across replicas through the real Kafka: two api replicas and one push replica
run as separate processes (prod profile, real PostgreSQL + Kafka) on a temporary copy of
config-repo. One admin call to one replica changes the live settings of all three, no restart."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conftest import REPO, Infra
from servicekit.testing import (
    TEST_AUDIENCE,
    TEST_ISSUER,
    ServiceProcess,
    TokenFactory,
    jwks_server,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tokens() -> TokenFactory:
    return TokenFactory(kid=f"e2e-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def jwks_url(tokens: TokenFactory) -> Iterator[str]:
    """auth's JWKS endpoint, standing in for auth: the replicas trust the test's key."""
    with jwks_server(tokens) as url:
        yield url


@pytest.fixture
def config_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "config-repo"
    shutil.copytree(REPO / "config-repo", repo)
    return repo


@pytest.fixture
def replicas(
    infra: Infra, config_repo: Path, jwks_url: str, tmp_path: Path
) -> Iterator[list[ServiceProcess]]:
    started: list[ServiceProcess] = []
    base_env = {
        **os.environ,
        "MAGAM_PROFILE": "prod",
        "MAGAM_ALLOW_DEV_SECRETS": "1",
        "MAGAM_CONFIG_REPO": str(config_repo),
        # Keep these replicas off shared work: no outbox relay, no push consumer group.
        "API_OUTBOX__RELAY_ENABLED": "false",
        "PUSH_CONSUMER__ENABLED": "false",
        "PUSH_FCM__SENDER": "log",
    }
    for service in ("api", "push"):  # the environment would outrank config-repo
        base_env.pop(f"{service.upper()}_LOG__LEVEL", None)
    try:
        for index, service in enumerate(("api", "api", "push")):
            prefix = service.upper()
            env = {
                **base_env,
                **infra.pg_env(service),
                f"{prefix}_AUTH__JWKS_URL": jwks_url,
                f"{prefix}_AUTH__ISSUER": TEST_ISSUER,
                f"{prefix}_AUTH__AUDIENCE": TEST_AUDIENCE,
            }
            started.append(ServiceProcess.start(service, env, tmp_path / f"{service}-{index}.log"))
        yield started
    finally:
        for replica in started:
            replica.process.terminate()
        for replica in started:
            replica.stop(timeout_s=20)


def _get(url: str, headers: dict[str, str] | None = None) -> httpx.Response | None:
    try:
        return httpx.get(url, headers=headers, timeout=3)
    except httpx.TransportError:
        return None


def _wait_until(replica: ServiceProcess, what: str, check: Any, deadline_s: float = 60) -> Any:
    """Polls ``check()`` until it returns a truthy value; fails with the replica's log."""
    deadline = time.monotonic() + deadline_s
    while True:
        if replica.process.poll() is not None:
            pytest.fail(f"{replica.service}:{replica.port} exited:\n{replica.tail()}")
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{replica.service}:{replica.port} never {what}:\n{replica.tail()}")
        time.sleep(0.2)


def _live_config(replica: ServiceProcess, admin: dict[str, str]) -> dict[str, Any] | None:
    response = _get(f"{replica.url}/admin/config", admin)
    return response.json() if response is not None and response.status_code == 200 else None


def test_a_refresh_on_one_replica_reloads_every_replica_of_every_service_without_restart(
    replicas: list[ServiceProcess], config_repo: Path, tokens: TokenFactory
) -> None:
    admin = tokens.headers("e2e-admin", ["admin"])
    before: dict[int, dict[str, Any]] = {}
    for replica in replicas:
        _wait_until(
            replica,
            "became ready",
            lambda r=replica: (resp := _get(f"{r.url}/readyz")) is not None
            and resp.status_code == 200,
        )
        before[replica.port] = _wait_until(
            replica,
            "listened on the config bus",
            lambda r=replica: (body := _live_config(r, admin)) and body["listening"] and body,
        )
    flag = f"e2e_{uuid.uuid4().hex[:8]}"
    application = config_repo / "application.yml"
    layered = yaml.safe_load(application.read_text(encoding="utf-8"))
    layered.setdefault("features", {})[flag] = True
    layered.setdefault("rate_limits", {})["e2e_per_minute"] = 7
    application.write_text(yaml.safe_dump(layered, allow_unicode=True), encoding="utf-8")
    for service in ("api", "push"):  # the profile layer is where prod sets its log level
        profile_file = config_repo / f"{service}-prod.yml"
        profile = yaml.safe_load(profile_file.read_text(encoding="utf-8")) or {}
        profile["log"] = {"level": "DEBUG"}
        profile_file.write_text(yaml.safe_dump(profile, allow_unicode=True), encoding="utf-8")

    answer = httpx.post(f"{replicas[0].url}/admin/config/refresh", headers=admin, timeout=10)

    assert answer.status_code == 202, answer.text
    event_id = answer.json()["event_id"]
    for replica in replicas:
        after = _wait_until(
            replica,
            "applied the refresh",
            lambda r=replica: (body := _live_config(r, admin))
            and body["refreshable"]["features"].get(flag)
            and body,
            deadline_s=30,
        )
        assert after["refreshable"]["rate_limits"]["e2e_per_minute"] == 7
        assert after["effective_log_level"] == "DEBUG"
        assert after["version"] > before[replica.port]["version"]
        # Same process, same instance: applied live, not by a restart.
        assert after["instance"] == before[replica.port]["instance"]
        assert replica.process.poll() is None
    assert {r.service for r in replicas} == {"api", "push"}
    applied = [
        json.loads(line)
        for replica in replicas
        for line in replica.log.read_text().splitlines()
        if line.startswith("{") and event_id in line
    ]
    assert sum(1 for line in applied if line["message"] == "configuration refreshed") >= 3
