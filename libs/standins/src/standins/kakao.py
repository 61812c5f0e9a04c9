"""A Kakao Login stand-in: kauth and kapi on one local port, with Kakao's paths and JSON.

What it answers (https://developers.kakao.com/docs/latest/en/kakaologin/rest-api):

- ``GET /oauth/authorize`` — 302 to ``redirect_uri`` with ``code`` and ``state`` for the user the
  "browser" is signed in as (``browser_user``), or ``error=access_denied`` when nobody is.
- ``POST /oauth/token`` — ``authorization_code`` and ``refresh_token`` grants; KOE error bodies
  (``{"error", "error_description", "error_code"}``); an ``id_token`` when ``openid`` was asked.
- ``GET|POST /v2/user/me``, ``GET /v1/user/access_token_info``, ``POST /v1/user/logout``,
  ``POST /v1/user/unlink`` (Bearer, or ``KakaoAK`` admin key with ``target_id``); kapi errors as
  ``{"msg", "code": -401}``.
- ``GET /.well-known/openid-configuration`` and ``/.well-known/jwks.json``; id_tokens are RS256.

Test control under ``/_standin/`` (or the ``FakeKakao`` methods when in the same process): add
users, choose the browser's user, get SDK tokens for our app or a foreign one, inject faults
(status, body, delay) per path, send the unlink callback.

Run: ``python -m standins.kakao --port 8011`` (``--help`` lists the app keys to configure).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

KAKAO_ISSUER = "https://kauth.kakao.com"
ACCESS_TTL_S = 21599
REFRESH_TTL_S = 5183999


@dataclass(frozen=True)
class KakaoApp:
    """One app registered on Kakao Developers: its id and keys."""

    app_id: int
    rest_api_key: str
    native_app_key: str
    admin_key: str
    client_secret: str | None = None
    redirect_uris: tuple[str, ...] = ()
    unlink_callback_url: str | None = None


OUR_APP = KakaoApp(
    app_id=1234567,
    rest_api_key="standin-rest-api-key",
    native_app_key="standin-native-app-key",
    admin_key="standin-admin-key",
    client_secret="standin-client-secret",  # noqa: S106 — a stand-in's fixed test value
)
FOREIGN_APP = KakaoApp(
    app_id=7654321,
    rest_api_key="foreign-rest-api-key",
    native_app_key="foreign-native-app-key",
    admin_key="foreign-admin-key",
)


@dataclass
class KakaoUser:
    id: int
    nickname: str | None = None
    email: str | None = None
    connected_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def me(self) -> dict[str, Any]:
        """The ``/v2/user/me`` body: fields the user did not agree to are absent, with flags."""
        account: dict[str, Any] = {
            "profile_nickname_needs_agreement": self.nickname is None,
            "has_email": self.email is not None,
            "email_needs_agreement": self.email is None,
        }
        if self.nickname is not None:
            account["profile"] = {"nickname": self.nickname, "is_default_nickname": False}
        if self.email is not None:
            account |= {"is_email_valid": True, "is_email_verified": True, "email": self.email}
        body: dict[str, Any] = {
            "id": self.id,
            "connected_at": self.connected_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "kakao_account": account,
        }
        if self.nickname is not None:
            body["properties"] = {"nickname": self.nickname}
        return body


@dataclass
class _Grant:
    user_id: int
    app: KakaoApp
    expires_at: float
    scope: str = "profile_nickname account_email"


@dataclass
class _Code:
    user_id: int
    app: KakaoApp
    redirect_uri: str
    scope: str
    nonce: str | None


@dataclass
class Fault:
    """The next ``times`` requests to ``path`` wait ``delay_s``, then answer ``status`` + body."""

    path: str
    status: int | None = None
    body: dict[str, Any] | None = None
    delay_s: float = 0.0
    times: int = 1


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _kapi_error(status: int, code: int, msg: str) -> JSONResponse:
    return JSONResponse({"msg": msg, "code": code}, status_code=status)


def _koe(status: int, error: str, description: str, koe: str) -> JSONResponse:
    body = {"error": error, "error_description": description, "error_code": koe}
    return JSONResponse(body, status_code=status)


class FakeKakao:
    """Kakao's state (apps, users, grants) and the ASGI app that serves it."""

    def __init__(
        self,
        apps: tuple[KakaoApp, ...] = (OUR_APP, FOREIGN_APP),
        *,
        issuer: str = KAKAO_ISSUER,
    ) -> None:
        self.apps = {a.app_id: a for a in apps}
        self.issuer = issuer
        self.users: dict[int, KakaoUser] = {}
        self.browser_user: int | None = None
        self.faults: list[Fault] = []
        self.requests: Counter[str] = Counter()
        self.callbacks: list[dict[str, Any]] = []
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}
        self._ids = itertools.count(4_100_000_000 + secrets.randbelow(10_000_000) * 10)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(8)
        self.app = self._build()

    # ---- state, usable directly by tests in the same process ----

    def add_user(
        self, nickname: str | None = "마감러", email: str | None = None, user_id: int | None = None
    ) -> KakaoUser:
        user = KakaoUser(id=user_id or next(self._ids), nickname=nickname, email=email)
        self.users[user.id] = user
        return user

    def app_for_key(self, key: str) -> KakaoApp | None:
        return next(
            (a for a in self.apps.values() if key in (a.rest_api_key, a.native_app_key)), None
        )

    def fail(
        self,
        path: str,
        status: int | None = None,
        *,
        body: dict[str, Any] | None = None,
        delay_s: float = 0.0,
        times: int = 1,
    ) -> None:
        self.faults.append(Fault(path, status, body, delay_s, times))

    def jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()
        jwk = {
            "kid": self.kid,
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "n": _b64url_uint(numbers.n),
            "e": _b64url_uint(numbers.e),
        }
        return {"keys": [jwk]}

    def id_token(self, user: KakaoUser, audience: str, nonce: str | None = None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "sub": str(user.id),
            "iat": now,
            "exp": now + ACCESS_TTL_S,
            "auth_time": now,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if user.nickname is not None:
            claims["nickname"] = user.nickname
        if user.email is not None:
            claims["email"] = user.email
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    def _grant(self, user_id: int, app: KakaoApp, scope: str) -> tuple[str, str]:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = time.time()
        self._access[access] = _Grant(user_id, app, now + ACCESS_TTL_S, scope)
        self._refresh[refresh] = _Grant(user_id, app, now + REFRESH_TTL_S, scope)
        return access, refresh

    def sdk_login(
        self, user: KakaoUser, app: KakaoApp = OUR_APP, nonce: str | None = None
    ) -> dict[str, Any]:
        """What the Kakao SDK in a mobile app receives after the user signs in."""
        access, refresh = self._grant(user.id, app, "openid profile_nickname account_email")
        return {
            "token_type": "bearer",
            "access_token": access,
            "expires_in": ACCESS_TTL_S,
            "refresh_token": refresh,
            "refresh_token_expires_in": REFRESH_TTL_S,
            "id_token": self.id_token(user, app.native_app_key, nonce),
        }

    def expire(self, access_token: str) -> None:
        self._access[access_token].expires_at = 0.0

    def unlink(self, user_id: int, app: KakaoApp) -> None:
        for grants in (self._access, self._refresh):
            for token in [t for t, g in grants.items() if g.user_id == user_id and g.app == app]:
                del grants[token]

    async def send_unlink_callback(
        self,
        user_id: int,
        *,
        url: str | None = None,
        app: KakaoApp = OUR_APP,
        referrer_type: str = "UNLINK_FROM_APPS",
        admin_key: str | None = None,
        method: str = "POST",
    ) -> httpx.Response:
        """Calls the app's unlink callback the way Kakao does (KakaoAK admin key, 3 s)."""
        target = url or app.unlink_callback_url
        if target is None:
            raise ValueError("no unlink callback URL: pass url= or register one on the app")
        params = {
            "app_id": str(app.app_id),
            "user_id": str(user_id),
            "referrer_type": referrer_type,
        }
        headers = {"Authorization": f"KakaoAK {admin_key or app.admin_key}"}
        async with httpx.AsyncClient(timeout=3.0) as client:
            if method == "GET":
                response = await client.get(target, params=params, headers=headers)
            else:
                response = await client.post(target, data=params, headers=headers)
        self.callbacks.append({"url": target, **params, "status": response.status_code})
        return response

    def _bearer_grant(self, request: Request) -> tuple[_Grant | None, JSONResponse | None]:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None, _kapi_error(401, -401, "no authentication key!")
        grant = self._access.get(token.strip())
        if grant is None:
            return None, _kapi_error(401, -401, "this access token does not exist")
        if grant.expires_at <= time.time():
            return None, _kapi_error(401, -401, "this access token is already expired")
        return grant, None

    # ---- the HTTP surface ----

    def _build(self) -> FastAPI:
        app = FastAPI(title="Kakao stand-in", docs_url="/_standin/docs", openapi_url=None)
        kakao = self

        class Faults(BaseHTTPMiddleware):
            async def dispatch(
                self, request: Request, call_next: RequestResponseEndpoint
            ) -> Response:
                path = request.url.path
                kakao.requests[path] += 1
                fault = next((f for f in kakao.faults if f.path == path and f.times > 0), None)
                if fault is not None:
                    fault.times -= 1
                    if fault.delay_s:
                        await asyncio.sleep(fault.delay_s)
                    if fault.status is not None:
                        body = fault.body or {"msg": "internal server error", "code": -1}
                        return JSONResponse(body, status_code=fault.status)
                return await call_next(request)

        app.add_middleware(Faults)

        @app.get("/oauth/authorize")
        async def authorize(request: Request) -> Response:
            q = request.query_params
            client = kakao.app_for_key(q.get("client_id", ""))
            redirect_uri = q.get("redirect_uri", "")
            if client is None:
                return _koe(400, "invalid_client", "Not exist client_id", "KOE101")
            if client.redirect_uris and redirect_uri not in client.redirect_uris:
                return _koe(400, "invalid_request", "Invalid redirect_uri", "KOE006")
            if q.get("response_type") != "code":
                return _koe(400, "invalid_request", "response_type must be code", "KOE010")
            back = httpx.URL(redirect_uri)
            extra = {"state": q["state"]} if "state" in q else {}
            if kakao.browser_user is None or kakao.browser_user not in kakao.users:
                denied = {"error": "access_denied", "error_description": "User denied access"}
                return RedirectResponse(str(back.copy_merge_params(denied | extra)), 302)
            code = secrets.token_urlsafe(24)
            kakao._codes[code] = _Code(
                kakao.browser_user,
                client,
                redirect_uri,
                q.get("scope", "profile_nickname account_email"),
                q.get("nonce"),
            )
            return RedirectResponse(str(back.copy_merge_params({"code": code} | extra)), 302)

        @app.post("/oauth/token")
        async def token(request: Request) -> Response:  # noqa: PLR0911 — one answer per KOE
            form = await request.form()
            client = kakao.app_for_key(str(form.get("client_id", "")))
            if client is None:
                return _koe(401, "invalid_client", "Not exist client_id", "KOE101")
            if client.client_secret and form.get("client_secret") != client.client_secret:
                return _koe(401, "invalid_client", "Bad client credentials", "KOE010")
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                code = str(form.get("code", ""))
                found = kakao._codes.pop(code, None)
                if found is None or found.app != client:
                    return _koe(
                        400,
                        "invalid_grant",
                        f"authorization code not found for code={code}",
                        "KOE320",
                    )
                if form.get("redirect_uri") != found.redirect_uri:
                    return _koe(400, "invalid_grant", "redirect_uri mismatch", "KOE303")
                access, refresh = kakao._grant(found.user_id, client, found.scope)
                body: dict[str, Any] = {
                    "token_type": "bearer",
                    "access_token": access,
                    "expires_in": ACCESS_TTL_S,
                    "refresh_token": refresh,
                    "refresh_token_expires_in": REFRESH_TTL_S,
                    "scope": found.scope,
                }
                if "openid" in found.scope.split():
                    user = kakao.users[found.user_id]
                    body["id_token"] = kakao.id_token(user, client.rest_api_key, found.nonce)
                return JSONResponse(body)
            if grant_type == "refresh_token":
                old = kakao._refresh.get(str(form.get("refresh_token", "")))
                if old is None or old.app != client or old.expires_at <= time.time():
                    return _koe(400, "invalid_grant", "Invalid refresh token", "KOE322")
                access = secrets.token_urlsafe(32)
                kakao._access[access] = _Grant(
                    old.user_id, client, time.time() + ACCESS_TTL_S, old.scope
                )
                return JSONResponse(
                    {"token_type": "bearer", "access_token": access, "expires_in": ACCESS_TTL_S}
                )
            return _koe(400, "unsupported_grant_type", f"grant_type={grant_type}", "KOE010")

        @app.api_route("/v2/user/me", methods=["GET", "POST"])
        async def me(request: Request) -> Response:
            grant, error = kakao._bearer_grant(request)
            if error is not None or grant is None:
                return error or _kapi_error(401, -401, "invalid token")
            return JSONResponse(kakao.users[grant.user_id].me())

        @app.get("/v1/user/access_token_info")
        async def token_info(request: Request) -> Response:
            grant, error = kakao._bearer_grant(request)
            if error is not None or grant is None:
                return error or _kapi_error(401, -401, "invalid token")
            return JSONResponse(
                {
                    "id": grant.user_id,
                    "expires_in": int(grant.expires_at - time.time()),
                    "app_id": grant.app.app_id,
                }
            )

        @app.post("/v1/user/logout")
        async def logout(request: Request) -> Response:
            grant, error = kakao._bearer_grant(request)
            if error is not None or grant is None:
                return error or _kapi_error(401, -401, "invalid token")
            for token_ in [t for t, g in kakao._access.items() if g is grant]:
                del kakao._access[token_]
            return JSONResponse({"id": grant.user_id})

        @app.post("/v1/user/unlink")
        async def unlink(request: Request) -> Response:
            scheme, _, key = request.headers.get("Authorization", "").partition(" ")
            if scheme == "KakaoAK":
                client = next((a for a in kakao.apps.values() if a.admin_key == key), None)
                if client is None:
                    return _kapi_error(401, -401, "wrong admin key")
                form = await request.form()
                user_id = int(str(form.get("target_id", "0")))
                if user_id not in kakao.users:
                    return _kapi_error(400, -101, "not registered user")
            else:
                grant, error = kakao._bearer_grant(request)
                if error is not None or grant is None:
                    return error or _kapi_error(401, -401, "invalid token")
                client, user_id = grant.app, grant.user_id
            kakao.unlink(user_id, client)
            if client.unlink_callback_url:
                asyncio.get_running_loop().create_task(
                    kakao.send_unlink_callback(user_id, app=client)
                )
            return JSONResponse({"id": user_id})

        @app.get("/.well-known/openid-configuration")
        async def discovery(request: Request) -> dict[str, Any]:
            base = str(request.base_url).rstrip("/")
            return {
                "issuer": kakao.issuer,
                "authorization_endpoint": f"{base}/oauth/authorize",
                "token_endpoint": f"{base}/oauth/token",
                "userinfo_endpoint": f"{base}/v1/oidc/userinfo",
                "jwks_uri": f"{base}/.well-known/jwks.json",
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "request_uri_parameter_supported": False,
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": [
                    "iss",
                    "aud",
                    "sub",
                    "auth_time",
                    "exp",
                    "iat",
                    "nonce",
                    "nickname",
                    "picture",
                    "email",
                ],
            }

        @app.get("/.well-known/jwks.json")
        async def jwks() -> dict[str, Any]:
            return kakao.jwks()

        # ---- test control ----

        @app.post("/_standin/users")
        async def add_user(body: dict[str, Any]) -> dict[str, Any]:
            user = kakao.add_user(body.get("nickname"), body.get("email"), body.get("id"))
            return user.me()

        @app.post("/_standin/browser")
        async def browser(body: dict[str, Any]) -> dict[str, Any]:
            kakao.browser_user = body.get("user_id")
            return {"user_id": kakao.browser_user}

        @app.post("/_standin/sdk-login")
        async def sdk_login(body: dict[str, Any]) -> dict[str, Any]:
            client = FOREIGN_APP if body.get("app") == "foreign" else OUR_APP
            return kakao.sdk_login(kakao.users[int(body["user_id"])], client, body.get("nonce"))

        @app.post("/_standin/faults")
        async def add_fault(body: dict[str, Any]) -> dict[str, Any]:
            kakao.fail(
                body["path"],
                body.get("status"),
                body=body.get("body"),
                delay_s=float(body.get("delay_s", 0)),
                times=int(body.get("times", 1)),
            )
            return {"faults": len(kakao.faults)}

        @app.delete("/_standin/faults")
        async def clear_faults() -> dict[str, Any]:
            kakao.faults.clear()
            return {"faults": 0}

        @app.post("/_standin/unlink-callback")
        async def unlink_callback(body: dict[str, Any]) -> dict[str, Any]:
            response = await kakao.send_unlink_callback(
                int(body["user_id"]),
                url=body.get("url"),
                referrer_type=body.get("referrer_type", "UNLINK_FROM_APPS"),
            )
            return {"status": response.status_code, "body": response.text}

        return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m standins.kakao",
        description="Serve a Kakao Login stand-in (kauth + kapi on one port) on 127.0.0.1.",
        epilog=(
            f"Configure auth with AUTH_KAKAO__AUTH_BASE_URL and AUTH_KAKAO__API_BASE_URL = "
            f"http://127.0.0.1:PORT, app_id {OUR_APP.app_id}, REST key {OUR_APP.rest_api_key!r}, "
            f"native key {OUR_APP.native_app_key!r}, client secret {OUR_APP.client_secret!r}, "
            f"admin key {OUR_APP.admin_key!r}. Add users with POST /_standin/users."
        ),
    )
    parser.add_argument("--port", type=int, default=8011, help="port to listen on (8011)")
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NICKNAME",
        help="seed a user the browser is signed in as (repeatable; the first signs in)",
    )
    args = parser.parse_args(argv)
    kakao = FakeKakao()
    for nickname in args.user or ["마감러"]:
        user = kakao.add_user(nickname)
        kakao.browser_user = kakao.browser_user or user.id
    print(f"Kakao stand-in on http://127.0.0.1:{args.port}, browser user {kakao.browser_user}")
    uvicorn.run(kakao.app, host="127.0.0.1", port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
