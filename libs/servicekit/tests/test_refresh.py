"""Live config refresh over the in-process bus (the local profile's path through the same code)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic_settings import SettingsConfigDict

from servicekit.config import ServiceSettings
from servicekit.errors import install_error_handlers
from servicekit.refresh import (
    MarkdownDefaults,
    MarkdownStep,
    install_config_refresh,
    load_refreshable,
)
from servicekit.testing import TokenFactory


class DemoSettings(ServiceSettings):
    service_name: ClassVar[str] = "demo"
    model_config = SettingsConfigDict(env_prefix="DEMO_")


BASE = {
    "log": {"level": "INFO"},
    "features": {"geofence_push": False},
    "rate_limits": {"orders_per_minute": 30},
}


def write(repo: Path, name: str, data: dict[str, object]) -> None:
    (repo / name).write_text(yaml.safe_dump(data), encoding="utf-8")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MAGAM_PROFILE", "local")
    monkeypatch.setenv("MAGAM_CONFIG_REPO", str(tmp_path))
    write(tmp_path, "application.yml", BASE)
    write(tmp_path, "demo.yml", {"http": {"port": 8123}})
    return tmp_path


@pytest.fixture
def tokens() -> TokenFactory:
    return TokenFactory()


@pytest.fixture
def client(repo: Path, tokens: TokenFactory) -> Iterator[TestClient]:
    root_level = logging.getLogger().level
    app = FastAPI()
    app.state.token_verifier = tokens.verifier()
    install_error_handlers(app)
    install_config_refresh(app, DemoSettings())
    with TestClient(app) as test_client:
        yield test_client
    logging.getLogger().setLevel(root_level)


def admin(tokens: TokenFactory) -> dict[str, str]:
    return tokens.headers("op-1", ["admin"])


def wait_for_version(client: TestClient, tokens: TokenFactory, version: int) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        body: dict[str, Any] = client.get("/admin/config", headers=admin(tokens)).json()
        if body["version"] == version or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_refresh_applies_changed_config_repo_values_without_restart(
    client: TestClient, repo: Path, tokens: TokenFactory
) -> None:
    before = client.get("/admin/config", headers=admin(tokens)).json()
    assert before["refreshable"]["features"] == {"geofence_push": False}
    write(
        repo,
        "application.yml",
        {
            **BASE,
            "log": {"level": "DEBUG"},
            "features": {"geofence_push": True},
            "markdown": {"default_schedule": [{"minutes_before_end": 45, "percent_off": 50}]},
        },
    )

    answer = client.post("/admin/config/refresh", headers=admin(tokens))

    assert answer.status_code == 202
    after = wait_for_version(client, tokens, 1)
    assert after["last_event_id"] == answer.json()["event_id"]
    assert after["refreshable"]["features"] == {"geofence_push": True}
    assert after["refreshable"]["markdown"]["default_schedule"] == [
        {"minutes_before_end": 45, "percent_off": 50}
    ]
    assert after["effective_log_level"] == "DEBUG"
    assert after["restart_required"] == []
    holder = client.app.state.refreshable  # type: ignore[attr-defined]
    assert holder.current.feature("geofence_push") is True
    assert holder.current.markdown.default_schedule == (
        MarkdownStep(minutes_before_end=45, percent_off=50),
    )


def test_refresh_names_static_settings_that_need_a_restart(
    client: TestClient, repo: Path, tokens: TokenFactory
) -> None:
    write(repo, "demo.yml", {"http": {"port": 9999}})

    client.post("/admin/config/refresh", headers=admin(tokens))

    after = wait_for_version(client, tokens, 1)
    assert after["restart_required"] == ["http"]
    assert "http" in after["static_settings"]


def test_refresh_keeps_the_last_good_values_when_config_repo_is_invalid(
    client: TestClient, repo: Path, tokens: TokenFactory
) -> None:
    write(repo, "application.yml", {**BASE, "rate_limits": {"orders_per_minute": -5}})

    client.post("/admin/config/refresh", headers=admin(tokens))
    time.sleep(0.3)  # nothing to wait for: an invalid refresh changes nothing

    body = client.get("/admin/config", headers=admin(tokens)).json()
    assert body["version"] == 0
    assert body["refreshable"]["rate_limits"] == {"orders_per_minute": 30}


def test_refresh_survives_a_config_repo_file_that_is_not_yaml(
    client: TestClient, repo: Path, tokens: TokenFactory
) -> None:
    (repo / "application.yml").write_text("features: [unclosed\n", encoding="utf-8")

    client.post("/admin/config/refresh", headers=admin(tokens))
    time.sleep(0.3)  # nothing to wait for: a broken file changes nothing
    write(repo, "application.yml", {**BASE, "features": {"geofence_push": True}})
    client.post("/admin/config/refresh", headers=admin(tokens))

    body = wait_for_version(client, tokens, 1)
    assert body["refreshable"]["features"] == {"geofence_push": True}


def test_environment_still_outranks_config_repo_after_a_refresh(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_RATE_LIMITS__ORDERS_PER_MINUTE", "7")
    write(repo, "application.yml", {**BASE, "rate_limits": {"orders_per_minute": 99}})

    assert load_refreshable("demo").rate_limit("orders_per_minute", 0) == 7


def test_refresh_for_another_service_is_ignored(
    client: TestClient, repo: Path, tokens: TokenFactory
) -> None:
    write(repo, "application.yml", {**BASE, "features": {"geofence_push": True}})

    client.post("/admin/config/refresh?destination=push", headers=admin(tokens))
    time.sleep(0.3)  # nothing to wait for: the record is not for this service

    body = client.get("/admin/config", headers=admin(tokens)).json()
    assert body["version"] == 0
    assert body["refreshable"]["features"] == {"geofence_push": False}


def test_refresh_requires_the_admin_role(client: TestClient, tokens: TokenFactory) -> None:
    anonymous = client.post("/admin/config/refresh")
    customer = client.post("/admin/config/refresh", headers=tokens.headers("c-1", ["customer"]))

    assert anonymous.status_code == 401
    assert customer.status_code == 403
    assert customer.json()["code"] == "role_required"


def test_refresh_rejects_an_unknown_destination(client: TestClient, tokens: TokenFactory) -> None:
    answer = client.post("/admin/config/refresh?destination=billing", headers=admin(tokens))

    assert answer.status_code == 422
    assert answer.json()["code"] == "unknown_destination"
    assert answer.json()["field"] == "destination"


def test_the_replica_says_it_is_listening_on_the_config_bus(
    client: TestClient, tokens: TokenFactory
) -> None:
    body = client.get("/admin/config", headers=admin(tokens)).json()

    assert body["listening"] is True
    assert body["service"] == "demo"
    assert body["instance"].startswith("demo@")


def test_markdown_schedule_must_deepen_over_time() -> None:
    with pytest.raises(ValueError, match="discount less"):
        MarkdownDefaults.model_validate(
            {
                "default_schedule": [
                    {"minutes_before_end": 60, "percent_off": 40},
                    {"minutes_before_end": 30, "percent_off": 20},
                ]
            }
        )
