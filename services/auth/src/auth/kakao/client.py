"""Kakao Login over HTTP (kauth + kapi), behind the ``Kakao`` protocol the use cases see.

Every failure becomes an AppError that answers well: Kakao down, slow or answering 5xx → 503/502
with ``Retry-After``; a bad code or token → 401 with its own code; our credentials refused → 502.
Branches on Kakao's error codes (KOE…, −401, …), never on messages.
https://developers.kakao.com/docs/latest/en/kakaologin/rest-api
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import jwt

from auth.errors import (
    KakaoBadGateway,
    KakaoCodeInvalid,
    KakaoConsentRequired,
    KakaoIdTokenInvalid,
    KakaoNonceMismatch,
    KakaoRejectedUs,
    KakaoTokenForeignApp,
    KakaoTokenInvalid,
    KakaoUnavailable,
)
from auth.settings import KakaoSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KakaoProfile:
    """Who Kakao says the user is; ``kakao_id`` is the only field that is always there."""

    kakao_id: str
    nickname: str | None = None
    email: str | None = None


class Kakao(Protocol):
    async def exchange_code(self, code: str) -> str:
        """The Kakao access token for an authorization code."""
        ...

    async def profile(self, access_token: str) -> KakaoProfile: ...

    async def check_token_is_ours(self, access_token: str) -> str:
        """The Kakao user id of a token issued to our app; 401 for another app's token."""
        ...

    async def verify_id_token(self, id_token: str, nonce: str | None) -> KakaoProfile: ...


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise KakaoBadGateway(f"Kakao answered {response.status_code} without JSON") from exc
    if not isinstance(body, dict):
        raise KakaoBadGateway("Kakao answered JSON that is not an object")
    return body


class HttpKakao:
    def __init__(self, settings: KakaoSettings, client: httpx.AsyncClient) -> None:
        self._settings = settings
        self._client = client
        self._jwks: dict[str, jwt.PyJWK] = {}
        self._jwks_fetched_at: float | None = None
        self._jwks_lock = asyncio.Lock()

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise KakaoUnavailable(
                f"Kakao did not answer within {self._settings.timeout_s:g}s"
            ) from exc
        except httpx.TransportError as exc:
            raise KakaoUnavailable(f"Kakao cannot be reached: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            log.warning("kakao 5xx", extra={"url": url, "status": response.status_code})
            raise KakaoBadGateway(f"Kakao answered {response.status_code}")
        return response

    async def exchange_code(self, code: str) -> str:
        form = {
            "grant_type": "authorization_code",
            "client_id": self._settings.rest_api_key,
            "redirect_uri": self._settings.redirect_uri,
            "code": code,
        }
        secret = self._settings.client_secret.get_secret_value()
        if secret:
            form["client_secret"] = secret
        response = await self._send(
            "POST", f"{self._settings.auth_base_url}/oauth/token", data=form
        )
        body = _json(response)
        if response.status_code != 200:
            koe, error = body.get("error_code"), body.get("error")
            if error == "invalid_client" or koe in ("KOE101", "KOE010"):
                log.error("kakao rejected our client credentials", extra={"koe": koe})
                raise KakaoRejectedUs(f"Kakao refused our client credentials ({koe})")
            raise KakaoCodeInvalid(f"Kakao refused the code ({koe or error})", field="code")
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise KakaoBadGateway("Kakao's token answer has no access_token")
        return token

    def _kapi_error(self, response: httpx.Response) -> Exception:
        body = _json(response)
        code = body.get("code")
        if code == -401 or response.status_code == 401:
            return KakaoTokenInvalid(
                "Kakao does not accept this access token", field="access_token"
            )
        if code == -402:
            return KakaoConsentRequired("the user has not agreed to a required scope")
        if code in (-9798, -10):  # maintenance, quota: transient on Kakao's side
            return KakaoUnavailable(f"Kakao is temporarily refusing requests ({code})")
        return KakaoBadGateway(f"Kakao answered {response.status_code} ({code})")

    async def profile(self, access_token: str) -> KakaoProfile:
        response = await self._send(
            "GET",
            f"{self._settings.api_base_url}/v2/user/me",
            headers={"Authorization": f"Bearer {access_token}"},
        )
        if response.status_code != 200:
            raise self._kapi_error(response)
        body = _json(response)
        if not isinstance(body.get("id"), int):
            raise KakaoBadGateway("Kakao's user answer has no id")
        account = body.get("kakao_account") or {}
        profile = account.get("profile") or {}
        nickname = profile.get("nickname") or (body.get("properties") or {}).get("nickname")
        email = account.get("email") if account.get("is_email_valid", True) else None
        return KakaoProfile(str(body["id"]), _short(nickname, 100), _short(email, 320))

    async def check_token_is_ours(self, access_token: str) -> str:
        response = await self._send(
            "GET",
            f"{self._settings.api_base_url}/v1/user/access_token_info",
            headers={"Authorization": f"Bearer {access_token}"},
        )
        if response.status_code != 200:
            raise self._kapi_error(response)
        body = _json(response)
        if not isinstance(body.get("id"), int):
            raise KakaoBadGateway("Kakao's token info has no id")
        if body.get("app_id") != self._settings.app_id:
            raise KakaoTokenForeignApp(
                "this Kakao token was issued to another app", field="access_token"
            )
        return str(body["id"])

    async def _kakao_keys(self, kid: str) -> jwt.PyJWK:
        async with self._jwks_lock:
            now = time.monotonic()
            age = None if self._jwks_fetched_at is None else now - self._jwks_fetched_at
            stale = age is None or age >= self._settings.jwks_cache_s
            may_refetch = age is None or age >= self._settings.jwks_min_refetch_s
            if stale or (kid not in self._jwks and may_refetch):
                response = await self._send(
                    "GET", f"{self._settings.auth_base_url}/.well-known/jwks.json"
                )
                if response.status_code != 200:
                    raise KakaoBadGateway(f"Kakao's JWKS answered {response.status_code}")
                keys = _json(response).get("keys", [])
                self._jwks = {
                    k["kid"]: jwt.PyJWK(k)
                    for k in keys
                    if isinstance(k, dict) and k.get("kid") and k.get("alg") == "RS256"
                }
                self._jwks_fetched_at = now
        key = self._jwks.get(kid)
        if key is None:
            raise KakaoIdTokenInvalid(f"no Kakao key with kid {kid!r}", field="id_token")
        return key

    async def verify_id_token(self, id_token: str, nonce: str | None) -> KakaoProfile:
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.DecodeError as exc:
            raise KakaoIdTokenInvalid("the id_token is not a JWT", field="id_token") from exc
        if header.get("alg") != "RS256" or not isinstance(header.get("kid"), str):
            raise KakaoIdTokenInvalid("the id_token must be RS256 with a kid", field="id_token")
        key = await self._kakao_keys(header["kid"])
        audiences = [k for k in (self._settings.rest_api_key, self._settings.native_app_key) if k]
        try:
            claims = jwt.decode(
                id_token,
                key.key,
                algorithms=["RS256"],
                audience=audiences,
                issuer=self._settings.oidc_issuer,
                options={"require": ["iss", "aud", "sub", "exp", "iat"]},
            )
        except jwt.InvalidTokenError as exc:
            raise KakaoIdTokenInvalid(
                f"the id_token does not verify: {exc}", field="id_token"
            ) from exc
        if (nonce is not None or "nonce" in claims) and claims.get("nonce") != nonce:
            raise KakaoNonceMismatch("the id_token's nonce is not the one sent", field="nonce")
        return KakaoProfile(
            str(claims["sub"]),
            _short(claims.get("nickname"), 100),
            _short(claims.get("email"), 320),
        )


def _short(value: object, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None
