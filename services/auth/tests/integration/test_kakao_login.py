"""Both Kakao flows end to end, on the real PostgreSQL and the Kakao stand-in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from sqlalchemy import select

from auth.settings import AuthSettings, WebSettings
from auth.user.models import User
from servicekit.db import build_engine, session_factory
from standins.kakao import FOREIGN_APP

pytestmark = pytest.mark.integration

APP_URL = "https://app.magam.test/signed-in"


async def _web_login(client: httpx.AsyncClient, mode: str = "json") -> httpx.Response:
    """The browser's trip: our /login → Kakao's authorize → our /callback with the code."""
    start = await client.get("/auth/kakao/login", params={"mode": mode})
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as browser:  # the stand-in listens on a real socket
        kakao_answer = await browser.get(start.headers["location"])
    assert kakao_answer.status_code == 302
    back = httpx.URL(kakao_answer.headers["location"])
    assert back.path == "/auth/kakao/callback"
    return await client.get("/auth/kakao/callback", params=dict(back.params))


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def _users_with_kakao_id(settings: AuthSettings, kakao_id: int) -> list[User]:
    engine = build_engine(settings)
    try:
        async with session_factory(engine)() as session:
            query = select(User).where(
                User.provider == "kakao", User.provider_user_id == str(kakao_id)
            )
            return list((await session.scalars(query)).all())
    finally:
        await engine.dispose()


async def test_web_flow_twice_is_the_same_user_and_profile_without_email_is_fine(
    kakao: Any, prod_settings: Callable[..., AuthSettings], client_for: Any
) -> None:
    user = kakao.fake.add_user(nickname="지하철 손님", email=None)
    kakao.fake.browser_user = user.id
    settings = prod_settings()
    async with client_for(settings) as client:
        first = await _web_login(client)
        second = await _web_login(client)
        me = await client.get(
            "/auth/me", headers={"Authorization": f"Bearer {second.json()['access_token']}"}
        )

    assert first.status_code == 200, first.text
    assert second.status_code == 200
    a, b = _claims(first.json()["access_token"]), _claims(second.json()["access_token"])
    assert a["sub"] == b["sub"]
    assert a["sid"] != b["sid"]  # two sign-ins, two sessions
    assert a["roles"] == ["customer"]
    assert me.json()["nickname"] == "지하철 손님"
    assert me.json()["email"] is None
    assert len(await _users_with_kakao_id(settings, user.id)) == 1


async def test_web_flow_redirects_to_the_app_with_tokens_in_the_fragment(
    kakao: Any, prod_settings: Callable[..., AuthSettings], client_for: Any
) -> None:
    user = kakao.fake.add_user(nickname=None, email="손님@example.com")
    kakao.fake.browser_user = user.id
    settings = prod_settings(web=WebSettings(cookie_secure=False, app_redirect_url=APP_URL))
    async with client_for(settings) as client:
        answer = await _web_login(client, mode="web")

    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(APP_URL + "#")
    fragment = parse_qs(location.split("#", 1)[1])
    assert fragment["token_type"] == ["Bearer"]
    assert _claims(fragment["access_token"][0])["roles"] == ["customer"]
    assert fragment["refresh_token"][0]


async def test_a_callback_without_this_browsers_state_is_refused(
    kakao: Any, prod_settings: Callable[..., AuthSettings], client_for: Any
) -> None:
    kakao.fake.browser_user = kakao.fake.add_user().id
    async with client_for(prod_settings()) as client:
        start = await client.get("/auth/kakao/login")
        async with httpx.AsyncClient() as browser:
            back = httpx.URL((await browser.get(start.headers["location"])).headers["location"])
        client.cookies.clear()  # another browser: the attacker's code in the victim's session
        answer = await client.get("/auth/kakao/callback", params=dict(back.params))

    assert answer.status_code == 400
    assert answer.json()["code"] == "login_state_mismatch"
    assert answer.json()["field"] == "state"


async def test_a_denied_kakao_login_is_401(
    kakao: Any, prod_settings: Callable[..., AuthSettings], client_for: Any
) -> None:
    kakao.fake.browser_user = None  # the user pressed cancel on Kakao's page
    async with client_for(prod_settings()) as client:
        answer = await _web_login(client)
    assert answer.status_code == 401
    assert answer.json()["code"] == "kakao_login_denied"


async def test_mobile_flow_with_access_token_or_id_token_is_the_same_user(
    kakao: Any, prod_settings: Callable[..., AuthSettings], client_for: Any
) -> None:
    user = kakao.fake.add_user(nickname="빵집 손님", email="bread@example.com")
    by_token = kakao.fake.sdk_login(user)
    by_id_token = kakao.fake.sdk_login(user, nonce="n-42")
    async with client_for(prod_settings()) as client:
        first = await client.post(
            "/auth/kakao/token", json={"access_token": by_token["access_token"]}
        )
        second = await client.post(
            "/auth/kakao/token",
            json={
                "access_token": by_id_token["access_token"],
                "id_token": by_id_token["id_token"],
                "nonce": "n-42",
            },
        )
    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert (
        _claims(first.json()["access_token"])["sub"]
        == _claims(second.json()["access_token"])["sub"]
    )


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("foreign_access_token", "kakao_token_foreign_app"),
        ("foreign_id_token", "kakao_id_token_invalid"),
        ("wrong_nonce", "kakao_nonce_mismatch"),
        ("unknown_access_token", "kakao_token_invalid"),
        ("expired_access_token", "kakao_token_invalid"),
    ],
)
async def test_mobile_flow_rejects_tokens_not_meant_for_us(
    kakao: Any,
    prod_settings: Callable[..., AuthSettings],
    client_for: Any,
    case: str,
    code: str,
) -> None:
    user = kakao.fake.add_user()
    ours, foreign = kakao.fake.sdk_login(user, nonce="n-1"), kakao.fake.sdk_login(user, FOREIGN_APP)
    body = {
        "foreign_access_token": {"access_token": foreign["access_token"]},
        "foreign_id_token": {"access_token": "x", "id_token": foreign["id_token"]},
        "wrong_nonce": {"access_token": "x", "id_token": ours["id_token"], "nonce": "n-2"},
        "unknown_access_token": {"access_token": "no-such-token"},
        "expired_access_token": {"access_token": ours["access_token"]},
    }[case]
    if case == "expired_access_token":
        kakao.fake.expire(ours["access_token"])
    settings = prod_settings()
    async with client_for(settings) as client:
        answer = await client.post("/auth/kakao/token", json=body)

    assert answer.status_code == 401
    assert answer.json()["code"] == code
    assert await _users_with_kakao_id(settings, user.id) == []
