"""Roles from api's events (real Kafka), Kakao's unlink callback, rate limits, profiles."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from auth.main import create_app
from auth.settings import AuthSettings, RateLimitSettings
from contracts import ManagerApproved, ManagerApprovedData
from servicekit.bus import record_for
from servicekit.kafka import KafkaPublisher
from standins.server import serve_in_thread

pytestmark = pytest.mark.integration


def _roles(token: str) -> list[str]:
    roles: list[str] = jwt.decode(token, options={"verify_signature": False})["roles"]
    return roles


async def _mobile_login(client: httpx.AsyncClient, kakao: Any) -> dict[str, Any]:
    tokens = kakao.fake.sdk_login(kakao.fake.add_user())
    answer = await client.post("/auth/kakao/token", json={"access_token": tokens["access_token"]})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_an_approved_store_claim_makes_the_next_access_token_a_managers(
    kakao: Any, prod_settings: Callable[..., AuthSettings], client_for: Any
) -> None:
    settings = prod_settings(identity_consumer_group=f"auth-test-{uuid.uuid4().hex[:8]}")
    async with client_for(settings) as client:
        tokens = await _mobile_login(client, kakao)
        user_id = jwt.decode(tokens["access_token"], options={"verify_signature": False})["sub"]
        event = ManagerApproved(
            key="MA0101",
            data=ManagerApprovedData(
                claim_id=uuid.uuid4(), store_id="MA0101", user_id=user_id, approved_by="admin-1"
            ),
        )
        publisher = KafkaPublisher(settings.kafka.bootstrap_servers, client_id="auth-test")
        await publisher.start()
        try:
            await publisher.send(record_for(event))
            await publisher.send(record_for(event))  # redelivered: applied once
        finally:
            await publisher.stop()

        refresh = tokens["refresh_token"]
        roles: list[str] = []
        deadline = time.monotonic() + 60
        while "manager" not in roles and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            answer = (await client.post("/auth/refresh", json={"refresh_token": refresh})).json()
            refresh, roles = answer["refresh_token"], _roles(answer["access_token"])

    assert _roles(tokens["access_token"]) == ["customer"]
    assert roles == ["customer", "manager"]


async def test_kakaos_unlink_callback_deactivates_the_user_and_revokes_every_session(
    kakao: Any, prod_settings: Callable[..., AuthSettings]
) -> None:
    app = create_app(prod_settings())
    user = kakao.fake.add_user()
    with serve_in_thread(app, lifespan="on") as auth_url:
        async with httpx.AsyncClient(base_url=auth_url) as client:
            phone = kakao.fake.sdk_login(user)
            tablet = kakao.fake.sdk_login(user)
            sessions = [
                (
                    await client.post("/auth/kakao/token", json={"access_token": t["access_token"]})
                ).json()
                for t in (phone, tablet)
            ]
            forged = await kakao.fake.send_unlink_callback(
                user.id, url=f"{auth_url}/auth/kakao/unlink", admin_key="not-ours"
            )
            callback = await kakao.fake.send_unlink_callback(
                user.id, url=f"{auth_url}/auth/kakao/unlink"
            )
            refreshes = [
                await client.post("/auth/refresh", json={"refresh_token": s["refresh_token"]})
                for s in sessions
            ]
            me = await client.get(
                "/auth/me", headers={"Authorization": f"Bearer {sessions[0]['access_token']}"}
            )
            by_get = await kakao.fake.send_unlink_callback(
                user.id, url=f"{auth_url}/auth/kakao/unlink", method="GET"
            )

    assert (forged.status_code, forged.json()["code"]) == (401, "kakao_admin_key_invalid")
    assert callback.status_code == 200
    assert callback.json() == {"user_id": str(user.id), "known": True}
    assert [r.json()["code"] for r in refreshes] == ["refresh_token_revoked"] * 2
    assert (me.status_code, me.json()["code"]) == (401, "token_revoked")
    assert by_get.status_code == 200


async def test_login_and_refresh_are_rate_limited_with_retry_after(
    kakao: Any, prod_settings: Callable[..., AuthSettings], client_for: Any
) -> None:
    limits = RateLimitSettings(login_per_ip=3, refresh_per_ip=100, refresh_per_user=2)
    async with client_for(prod_settings(rate_limit=limits)) as client:
        tokens = await _mobile_login(client, kakao)
        refresh = tokens["refresh_token"]
        statuses = []
        for _ in range(3):
            answer = await client.post("/auth/refresh", json={"refresh_token": refresh})
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                refresh = answer.json()["refresh_token"]
        limited_refresh = answer
        # Had the refused rotation spent the token, presenting it again would be a reuse (401).
        again = await client.post("/auth/refresh", json={"refresh_token": refresh})
        logins = [
            (await client.post("/auth/kakao/token", json={"access_token": "x"})).status_code
            for _ in range(3)
        ]
        limited_login = await client.post("/auth/kakao/token", json={"access_token": "x"})

    assert statuses == [200, 200, 429]
    assert limited_refresh.json()["code"] == "rate_limited"
    assert int(limited_refresh.headers["Retry-After"]) >= 1
    assert again.status_code == 429
    assert logins == [401, 401, 429]  # the first login of the budget was the mobile login
    assert limited_login.status_code == 429
    assert int(limited_login.headers["Retry-After"]) >= 1


async def test_dev_login_exists_in_the_local_profile_only(
    prod_settings: Callable[..., AuthSettings],
    client_for: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with client_for(prod_settings()) as client:
        in_prod = await client.post("/auth/dev/login", json={"user": "customer"})
    monkeypatch.setenv("MAGAM_PROFILE", "local")
    local = AuthSettings(database={"sqlite_dir": tmp_path}, seed_demo_data=True)
    async with client_for(local) as client:
        answer = await client.post("/auth/dev/login", json={"user": "manager"})
        refreshed = await client.post(
            "/auth/refresh", json={"refresh_token": answer.json()["refresh_token"]}
        )
        jwks = (await client.get("/.well-known/jwks.json")).json()

    assert in_prod.status_code == 404
    assert answer.status_code == 200
    assert _roles(answer.json()["access_token"]) == ["customer", "manager"]
    assert refreshed.status_code == 200
    header = jwt.get_unverified_header(answer.json()["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["kid"] in {k["kid"] for k in jwks["keys"]}
