"""The device registry and subscription endpoints (local profile: SQLite, log sender)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from push.main import create_app
from push.settings import ConsumerSettings, PushSettings
from servicekit.config import DatabaseSettings
from servicekit.testing import TokenFactory

TOKENS = TokenFactory()


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("MAGAM_PROFILE", "local")
    settings = PushSettings(
        database=DatabaseSettings(name="push", sqlite_dir=tmp_path),
        consumer=ConsumerSettings(enabled=False),
    )
    app = create_app(settings)
    app.state.token_verifier = TOKENS.verifier()
    with TestClient(app) as test_client:
        yield test_client


def _as(user: str, *roles: str) -> dict[str, str]:
    return TOKENS.headers(user, list(roles or ["customer"]))


def test_a_user_registers_many_devices_and_a_known_target_moves_to_its_new_owner(
    client: TestClient,
) -> None:
    phone = {"target_kind": "token", "target": "fcm-token-aaaaaaaa", "platform": "android"}
    tablet = {"target_kind": "fid", "target": "fid-bbbbbbbb", "platform": "ios", "locale": "ko"}
    assert client.post("/devices", json=phone, headers=_as("u-1")).status_code == 201
    assert client.post("/devices", json=tablet, headers=_as("u-1")).status_code == 201
    mine = client.get("/devices", headers=_as("u-1")).json()
    assert sorted(d["target_kind"] for d in mine) == ["fid", "token"]
    assert "target" not in mine[0]  # the token is a secret of the device: never echoed back

    client.post("/devices", json=phone, headers=_as("u-2"))
    assert [d["target_kind"] for d in client.get("/devices", headers=_as("u-1")).json()] == ["fid"]
    assert len(client.get("/devices", headers=_as("u-2")).json()) == 1


def test_deleting_someone_elses_device_is_not_found_and_keeps_it(client: TestClient) -> None:
    body = {"target_kind": "token", "target": "fcm-token-cccccccc", "platform": "web"}
    device = client.post("/devices", json=body, headers=_as("u-3")).json()
    answer = client.delete(f"/devices/{device['id']}", headers=_as("u-4"))
    assert answer.status_code == 404
    assert answer.json()["code"] == "device_not_found"
    assert client.delete(f"/devices/{device['id']}", headers=_as("u-3")).status_code == 204
    assert client.get("/devices", headers=_as("u-3")).json() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"target_kind": "apns", "target": "fcm-token-dddd", "platform": "ios"}, "target_kind"),
        ({"target_kind": "token", "target": "short", "platform": "ios"}, "target"),
        ({"target_kind": "token", "target": "fcm-token-dddd", "platform": "tv"}, "platform"),
        (
            {"target_kind": "token", "target": "fcm-token-dddd", "platform": "ios", "x": 1},
            "x",
        ),
    ],
)
def test_bad_device_input_is_a_problem_naming_the_field(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    answer = client.post("/devices", json=body, headers=_as("u-5"))
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["field"] == field


def test_devices_need_a_signed_in_user(client: TestClient) -> None:
    answer = client.get("/devices")
    assert answer.status_code == 401
    assert answer.json()["code"] == "token_missing"


def test_geo_subscriptions_are_saved_moved_listed_and_forgotten(client: TestClient) -> None:
    home = {"lat": 37.5665, "lon": 126.978, "radius_m": 1000}
    assert client.put("/subscriptions/home", json=home, headers=_as("c-1")).status_code == 200
    moved = {**home, "radius_m": 1500}
    assert (
        client.put("/subscriptions/home", json=moved, headers=_as("c-1")).json()["radius_m"] == 1500
    )
    work = {"lat": 37.4979, "lon": 127.0276, "radius_m": 500}
    client.put("/subscriptions/work", json=work, headers=_as("c-1"))
    listed = client.get("/subscriptions", headers=_as("c-1")).json()
    assert [(s["label"], s["radius_m"]) for s in listed] == [("home", 1500), ("work", 500)]
    assert client.delete("/subscriptions/work", headers=_as("c-1")).status_code == 204
    gone = client.delete("/subscriptions/work", headers=_as("c-1"))
    assert gone.status_code == 404
    assert gone.json()["code"] == "subscription_not_found"
    assert client.get("/subscriptions", headers=_as("c-2")).json() == []


def test_subscriptions_reject_places_outside_korea_and_huge_radii(client: TestClient) -> None:
    far = client.put(
        "/subscriptions/home",
        json={"lat": 48.85, "lon": 2.35, "radius_m": 1000},
        headers=_as("c-3"),
    )
    assert far.status_code == 422
    assert far.json()["field"] == "lat"
    huge = client.put(
        "/subscriptions/home",
        json={"lat": 37.5, "lon": 127.0, "radius_m": 50_000},
        headers=_as("c-3"),
    )
    assert huge.status_code == 422
    assert huge.json()["field"] == "radius_m"
    nowhere = client.put(
        "/subscriptions/office",
        json={"lat": 37.5, "lon": 127.0, "radius_m": 500},
        headers=_as("c-3"),
    )
    assert nowhere.status_code == 422
    assert nowhere.json()["field"] == "path.label"


def test_preferences_take_quiet_hours_in_pairs_and_a_daily_cap(client: TestClient) -> None:
    assert client.get("/preferences", headers=_as("c-4")).json() == {
        "quiet_start": None,
        "quiet_end": None,
        "daily_cap": 10,
    }
    half = client.put("/preferences", json={"quiet_start": "22:00"}, headers=_as("c-4"))
    assert half.status_code == 422
    assert half.json()["code"] == "quiet_hours_incomplete"
    bad = client.put(
        "/preferences", json={"quiet_start": "25:00", "quiet_end": "07:00"}, headers=_as("c-4")
    )
    assert bad.status_code == 422
    assert bad.json()["field"] == "quiet_start"
    ok = client.put(
        "/preferences",
        json={"quiet_start": "22:30", "quiet_end": "07:00", "daily_cap": 3},
        headers=_as("c-4"),
    )
    assert ok.json() == {"quiet_start": "22:30", "quiet_end": "07:00", "daily_cap": 3}
