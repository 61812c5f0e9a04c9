"""Our tokens: each forged or stale access token is a 401 with its own code; refresh rotation and
reuse; logout; key rotation that logs nobody out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr

from auth.main import create_app
from auth.settings import AuthSettings, TokenSettings
from auth.token.keys import SigningKey
from auth.token.service import issue_access_token
from servicekit.security import InvalidToken, StaticJwks, TokenVerifier
from standins.kakao import FOREIGN_APP

pytestmark = pytest.mark.integration


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def _mobile_login(client: httpx.AsyncClient, kakao: Any) -> dict[str, Any]:
    tokens = kakao.fake.sdk_login(kakao.fake.add_user())
    answer = await client.post("/auth/kakao/token", json={"access_token": tokens["access_token"]})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})


async def test_each_forged_or_stale_access_token_is_401_with_its_own_code(
    kakao: Any, prod_settings: Callable[..., AuthSettings], client_for: Any
) -> None:
    settings = prod_settings()
    key = SigningKey.from_pem(settings.token.signing_key_pem.get_secret_value())
    async with client_for(settings) as client:
        tokens = await _mobile_login(client, kakao)
        good = tokens["access_token"]
        claims = jwt.decode(good, options={"verify_signature": False})
        header = jwt.get_unverified_header(good)

        def sign(**changes: Any) -> str:
            token, _ = issue_access_token(
                changes.pop("key", key),
                issuer=changes.pop("issuer", settings.token.issuer),
                audience=changes.pop("audience", settings.token.audience),
                subject=claims["sub"],
                roles=claims["roles"],
                ttl_s=600,
                session_id=claims["sid"],
                **changes,
            )
            return token

        head, payload, signature = good.split(".")
        # The classic key-confusion attack: HS256 "signed" with our published public key.
        public_pem = key.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        hs_head = _b64(json.dumps({**header, "alg": "HS256"}).encode())
        hs_mac = hmac.new(public_pem, f"{hs_head}.{payload}".encode(), hashlib.sha256).digest()
        none_head = _b64(json.dumps({**header, "alg": "none"}).encode())
        evil = json.loads(base64.urlsafe_b64decode(payload + "=="))
        evil["roles"] = ["customer", "admin"]
        cases = {
            "token_expired": sign(now=int(time.time()) - 3600),
            "token_invalid_issuer": sign(issuer="https://evil.example"),
            "token_invalid_audience": sign(audience="someone-else"),
            "token_unknown_key": sign(key=SigningKey.generate()),
            "token_bad_algorithm": f"{none_head}.{payload}.",
            "token_bad_algorithm ": f"{hs_head}.{payload}.{_b64(hs_mac)}",
            "token_bad_signature": f"{head}.{_b64(json.dumps(evil).encode())}.{signature}",
        }
        answers = {name: await _me(client, token) for name, token in cases.items()}
        assert (await _me(client, good)).status_code == 200

        await client.post("/auth/logout", json={"refresh_token": tokens["refresh_token"]})
        revoked = await _me(client, good)

    for name, answer in answers.items():
        assert answer.status_code == 401, name
        assert answer.json()["code"] == name.strip(), name
    assert revoked.status_code == 401
    assert revoked.json()["code"] == "token_revoked"


async def test_a_kakao_token_of_another_app_is_401(
    kakao: Any, prod_settings: Callable[..., AuthSettings], client_for: Any
) -> None:
    foreign = kakao.fake.sdk_login(kakao.fake.add_user(), FOREIGN_APP)
    async with client_for(prod_settings()) as client:
        answer = await client.post(
            "/auth/kakao/token", json={"access_token": foreign["access_token"]}
        )
    assert answer.status_code == 401
    assert answer.json()["code"] == "kakao_token_foreign_app"


async def test_refresh_rotates_and_a_reused_token_revokes_its_whole_family(
    kakao: Any, prod_settings: Callable[..., AuthSettings], client_for: Any
) -> None:
    async with client_for(prod_settings()) as client:
        first = await _mobile_login(client, kakao)
        r1 = first["refresh_token"]
        second = (await client.post("/auth/refresh", json={"refresh_token": r1})).json()
        r2 = second["refresh_token"]
        reuse = await client.post("/auth/refresh", json={"refresh_token": r1})
        after = await client.post("/auth/refresh", json={"refresh_token": r2})
        access_after = await _me(client, second["access_token"])
        unknown = await client.post("/auth/refresh", json={"refresh_token": "never-issued"})

    assert r2 != r1
    sid = jwt.decode(second["access_token"], options={"verify_signature": False})["sid"]
    assert sid == jwt.decode(first["access_token"], options={"verify_signature": False})["sid"]
    assert (reuse.status_code, reuse.json()["code"]) == (401, "refresh_token_reused")
    assert (after.status_code, after.json()["code"]) == (401, "refresh_token_revoked")
    assert (access_after.status_code, access_after.json()["code"]) == (401, "token_revoked")
    assert (unknown.status_code, unknown.json()["code"]) == (401, "refresh_token_invalid")


async def test_logout_revokes_the_family(
    kakao: Any, prod_settings: Callable[..., AuthSettings], client_for: Any
) -> None:
    async with client_for(prod_settings()) as client:
        tokens = await _mobile_login(client, kakao)
        out = await client.post("/auth/logout", json={"refresh_token": tokens["refresh_token"]})
        again = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert out.status_code == 204
    assert (again.status_code, again.json()["code"]) == (401, "refresh_token_revoked")


async def _jwks_of(settings: AuthSettings) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://auth") as client:
        body: dict[str, Any] = (await client.get("/.well-known/jwks.json")).json()
        return body


async def test_rotating_keys_by_configuration_logs_nobody_out_until_the_old_key_retires(
    prod_settings: Callable[..., AuthSettings], pem: Callable[[], str]
) -> None:
    a, b, c = pem(), pem(), pem()

    def keys(current: str, next_: str = "", previous: str = "") -> TokenSettings:
        return TokenSettings(
            signing_key_pem=SecretStr(current),
            next_signing_key_pem=SecretStr(next_),
            previous_signing_key_pem=SecretStr(previous),
        )

    before = prod_settings(token=keys(a, next_=b))
    rotated = prod_settings(token=keys(b, next_=c, previous=a))
    retired = prod_settings(token=keys(b, next_=c))

    def token_by(pem_: str) -> str:
        token, _ = issue_access_token(
            SigningKey.from_pem(pem_),
            issuer=before.token.issuer,
            audience=before.token.audience,
            subject="u-rotation",
            roles=["customer"],
            ttl_s=600,
        )
        return token

    def verifier(document: dict[str, Any]) -> TokenVerifier:
        return TokenVerifier(
            StaticJwks(document), issuer=before.token.issuer, audience=before.token.audience
        )

    jwks_before, jwks_rotated = await _jwks_of(before), await _jwks_of(rotated)
    jwks_retired = await _jwks_of(retired)
    old_token, new_token = token_by(a), token_by(b)

    assert len(jwks_before["keys"]) == 2
    assert len(jwks_rotated["keys"]) == 3
    # A verifier still holding the JWKS from before the rotation accepts the new key's tokens.
    assert (await verifier(jwks_before).verify(new_token)).user_id == "u-rotation"
    # After the rotation, tokens signed with the previous key still verify.
    assert (await verifier(jwks_rotated).verify(old_token)).user_id == "u-rotation"
    with pytest.raises(InvalidToken) as err:
        await verifier(jwks_retired).verify(old_token)
    assert err.value.code == "token_unknown_key"
    assert (await verifier(jwks_retired).verify(new_token)).user_id == "u-rotation"
