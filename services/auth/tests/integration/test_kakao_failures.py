"""Kakao failing: 5xx, timeouts, refused connections, KOE errors — a 502/503 or 401 problem with a
retry hint where it helps; never a 500, never a half-created user."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from auth.settings import AuthSettings
from auth.user.models import User
from servicekit.db import build_engine, session_factory
from standins.server import free_port

pytestmark = pytest.mark.integration


async def _kakao_users(settings: AuthSettings, kakao_id: int) -> int:
    engine = build_engine(settings)
    try:
        async with session_factory(engine)() as session:
            query = select(User.id).where(
                User.provider == "kakao", User.provider_user_id == str(kakao_id)
            )
            return len((await session.scalars(query)).all())
    finally:
        await engine.dispose()


async def _callback_with_code(client: httpx.AsyncClient) -> httpx.Response:
    start = await client.get("/auth/kakao/login", params={"mode": "json"})
    async with httpx.AsyncClient() as browser:
        back = httpx.URL((await browser.get(start.headers["location"])).headers["location"])
    return await client.get("/auth/kakao/callback", params=dict(back.params))


@pytest.mark.parametrize(
    ("path", "fault", "status", "code"),
    [
        ("/v2/user/me", {"status": 500}, 502, "kakao_bad_gateway"),
        ("/v2/user/me", {"delay_s": 3.0}, 503, "kakao_unavailable"),
        ("/oauth/token", {"status": 503}, 502, "kakao_bad_gateway"),
        ("/oauth/token", {"delay_s": 3.0}, 503, "kakao_unavailable"),
        (
            "/oauth/token",
            {
                "status": 400,
                "body": {
                    "error": "invalid_grant",
                    "error_description": "authorization code not found",
                    "error_code": "KOE320",
                },
            },
            401,
            "kakao_code_invalid",
        ),
        (
            "/oauth/token",
            {
                "status": 401,
                "body": {
                    "error": "invalid_client",
                    "error_description": "Bad client credentials",
                    "error_code": "KOE010",
                },
            },
            502,
            "kakao_client_rejected",
        ),
        ("/v2/user/me", {"status": 200, "body": {"unexpected": True}}, 502, "kakao_bad_gateway"),
    ],
)
async def test_web_flow_when_kakao_fails_answers_a_problem_and_creates_no_user(
    kakao: Any,
    prod_settings: Callable[..., AuthSettings],
    client_for: Any,
    path: str,
    fault: dict[str, Any],
    status: int,
    code: str,
) -> None:
    user = kakao.fake.add_user()
    kakao.fake.browser_user = user.id
    kakao.fake.fail(
        path, fault.get("status"), body=fault.get("body"), delay_s=fault.get("delay_s", 0)
    )
    settings = prod_settings()
    async with client_for(settings) as client:
        answer = await _callback_with_code(client)

    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == code
    if status in (502, 503) and code != "kakao_client_rejected":
        assert int(answer.headers["Retry-After"]) > 0
    assert await _kakao_users(settings, user.id) == 0


async def test_a_code_used_twice_is_koe320_and_401(
    kakao: Any, prod_settings: Callable[..., AuthSettings], client_for: Any
) -> None:
    kakao.fake.browser_user = kakao.fake.add_user().id
    async with client_for(prod_settings()) as client:
        start = await client.get("/auth/kakao/login", params={"mode": "json"})
        async with httpx.AsyncClient() as browser:
            back = httpx.URL((await browser.get(start.headers["location"])).headers["location"])
        first = await client.get("/auth/kakao/callback", params=dict(back.params))
        client.cookies.set("magam_kakao_login", f"{back.params['state']}.json", path="/auth/kakao")
        replay = await client.get("/auth/kakao/callback", params=dict(back.params))
    assert first.status_code == 200
    assert (replay.status_code, replay.json()["code"]) == (401, "kakao_code_invalid")


@pytest.mark.parametrize(
    ("path", "fault", "status", "code"),
    [
        ("/v1/user/access_token_info", {"status": 502}, 502, "kakao_bad_gateway"),
        ("/v1/user/access_token_info", {"delay_s": 3.0}, 503, "kakao_unavailable"),
        (
            "/v1/user/access_token_info",
            {"status": 400, "body": {"msg": "system maintenance", "code": -9798}},
            503,
            "kakao_unavailable",
        ),
        ("/.well-known/jwks.json", {"status": 500}, 502, "kakao_bad_gateway"),
    ],
)
async def test_mobile_flow_when_kakao_fails(
    kakao: Any,
    prod_settings: Callable[..., AuthSettings],
    client_for: Any,
    path: str,
    fault: dict[str, Any],
    status: int,
    code: str,
) -> None:
    user = kakao.fake.add_user()
    tokens = kakao.fake.sdk_login(user)
    body: dict[str, Any] = {"access_token": tokens["access_token"]}
    if path == "/.well-known/jwks.json":
        body |= {"id_token": tokens["id_token"]}
    kakao.fake.fail(
        path, fault.get("status"), body=fault.get("body"), delay_s=fault.get("delay_s", 0)
    )
    settings = prod_settings()
    async with client_for(settings) as client:
        answer = await client.post("/auth/kakao/token", json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code
    assert "Retry-After" in answer.headers
    assert await _kakao_users(settings, user.id) == 0


async def test_kakao_unreachable_is_503_with_retry_after(
    prod_settings: Callable[..., AuthSettings], client_for: Any, kakao_config: Any
) -> None:
    settings = prod_settings(kakao=kakao_config(f"http://127.0.0.1:{free_port()}"))
    async with client_for(settings) as client:
        answer = await client.post("/auth/kakao/token", json={"access_token": "anything"})
    assert answer.status_code == 503
    assert answer.json()["code"] == "kakao_unavailable"
    assert answer.headers["Retry-After"] == "5"


async def test_the_kakao_id_token_keys_are_cached(
    kakao: Any, prod_settings: Callable[..., AuthSettings], client_for: Any
) -> None:
    user = kakao.fake.add_user()
    async with client_for(prod_settings()) as client:
        for _ in range(3):
            tokens = kakao.fake.sdk_login(user)
            answer = await client.post(
                "/auth/kakao/token",
                json={"access_token": tokens["access_token"], "id_token": tokens["id_token"]},
            )
            assert answer.status_code == 200
    assert kakao.fake.requests["/.well-known/jwks.json"] == 1
