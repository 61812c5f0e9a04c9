"""The Kakao stand-in answers like Kakao: the code flow, token info, KOE errors, id_tokens."""

from collections.abc import Iterator

import httpx
import jwt
import pytest

from standins.kakao import FOREIGN_APP, OUR_APP, FakeKakao
from standins.server import serve_in_thread

REDIRECT = "http://127.0.0.1:1/callback"


@pytest.fixture
def kakao() -> Iterator[tuple[FakeKakao, str]]:
    fake = FakeKakao()
    with serve_in_thread(fake.app) as base:
        yield fake, base


def _code(client: httpx.Client, state: str = "s1", scope: str = "profile_nickname") -> str:
    answer = client.get(
        "/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": OUR_APP.rest_api_key,
            "redirect_uri": REDIRECT,
            "state": state,
            "scope": scope,
            "nonce": "n-1",
        },
    )
    assert answer.status_code == 302
    location = httpx.URL(answer.headers["location"])
    assert location.params["state"] == state
    return location.params["code"]


def _exchange(client: httpx.Client, code: str) -> httpx.Response:
    return client.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "client_id": OUR_APP.rest_api_key,
            "client_secret": OUR_APP.client_secret,
            "redirect_uri": REDIRECT,
            "code": code,
        },
    )


def test_code_flow_gives_tokens_and_the_user_and_a_code_works_once(
    kakao: tuple[FakeKakao, str],
) -> None:
    fake, base = kakao
    user = fake.add_user(nickname=None, email=None)
    fake.browser_user = user.id
    with httpx.Client(base_url=base) as client:
        code = _code(client, scope="openid profile_nickname")
        tokens = _exchange(client, code).json()
        me = client.get(
            "/v2/user/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        ).json()
        again = _exchange(client, code)

    assert me["id"] == user.id
    assert me["kakao_account"]["profile_nickname_needs_agreement"] is True
    assert "email" not in me["kakao_account"]
    claims = jwt.decode(
        tokens["id_token"],
        jwt.PyJWK(fake.jwks()["keys"][0]).key,
        algorithms=["RS256"],
        audience=OUR_APP.rest_api_key,
        issuer="https://kauth.kakao.com",
    )
    assert (claims["sub"], claims["nonce"]) == (str(user.id), "n-1")
    assert again.status_code == 400
    assert again.json()["error_code"] == "KOE320"


def test_token_info_names_the_app_the_token_was_issued_to(kakao: tuple[FakeKakao, str]) -> None:
    fake, base = kakao
    user = fake.add_user()
    ours, foreign = fake.sdk_login(user), fake.sdk_login(user, FOREIGN_APP)
    with httpx.Client(base_url=base) as client:
        infos = [
            client.get(
                "/v1/user/access_token_info",
                headers={"Authorization": f"Bearer {t['access_token']}"},
            ).json()
            for t in (ours, foreign)
        ]
        bad = client.get("/v1/user/access_token_info", headers={"Authorization": "Bearer x"})
    assert [i["app_id"] for i in infos] == [OUR_APP.app_id, FOREIGN_APP.app_id]
    assert bad.status_code == 401
    assert bad.json()["code"] == -401


def test_a_fault_answers_its_status_then_the_path_recovers(kakao: tuple[FakeKakao, str]) -> None:
    fake, base = kakao
    fake.fail("/.well-known/jwks.json", 503)
    with httpx.Client(base_url=base) as client:
        first = client.get("/.well-known/jwks.json")
        second = client.get("/.well-known/jwks.json")
    assert (first.status_code, second.status_code) == (503, 200)
    assert second.json()["keys"][0]["alg"] == "RS256"
