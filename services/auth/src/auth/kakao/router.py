"""Kakao login: the web flow (authorize → callback), the mobile flow, the unlink callback."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Form, Header, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from auth.db import SessionDep
from auth.deps import ClientIp, KakaoDep, KeysDep, LimiterDep, SettingsDep
from auth.errors import (
    KakaoAdminKeyInvalid,
    KakaoCodeInvalid,
    KakaoLoginDenied,
    KakaoTokenInvalid,
    LoginStateMismatch,
)
from auth.kakao.client import Kakao, KakaoProfile
from auth.kakao.service import unlink_kakao_user, upsert_kakao_user
from auth.ratelimit import RateLimiter
from auth.settings import AuthSettings
from auth.token.schemas import TokenResponse
from auth.token.service import sign_in
from servicekit.errors import AppError

router = APIRouter(prefix="/auth/kakao", tags=["kakao"])

STATE_COOKIE = "magam_kakao_login"
COOKIE_PATH = "/auth/kakao"

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The login state does not match this browser (`login_state_mismatch`)"},
    401: {"description": "Kakao refused the code or token (`kakao_*` codes)"},
    429: {"description": "Too many logins from this IP or for this user (`Retry-After`)"},
    502: {"description": "Kakao answered with an error (`Retry-After`)"},
    503: {"description": "Kakao did not answer or login is not configured (`Retry-After`)"},
}


_PRINTABLE_ASCII = r"^[\x21-\x7e]+$"


class KakaoTokenLogin(BaseModel):
    """What the app got from the Kakao SDK: its access token, and the id_token when it asked
    for the ``openid`` scope (with the nonce it sent)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"access_token": "kakao-access-token…"}]},
    )

    # Printable ASCII only: the token goes into an HTTP header towards Kakao.
    access_token: Annotated[str, Field(min_length=1, max_length=2048, pattern=_PRINTABLE_ASCII)]
    id_token: Annotated[
        str | None, Field(min_length=1, max_length=8192, pattern=_PRINTABLE_ASCII)
    ] = None
    nonce: Annotated[str | None, Field(min_length=1, max_length=256)] = None


class UnlinkAnswer(BaseModel):
    user_id: str
    known: bool


class BadUnlinkRequest(AppError):
    status, code, title = 400, "kakao_unlink_invalid", "Invalid unlink callback"


def _login_limits(limiter: RateLimiter, settings: AuthSettings, ip: str) -> None:
    limiter.hit(f"login-ip:{ip}", settings.rate_limit.login_per_ip)


async def _sign_in(
    session: SessionDep,
    profile: KakaoProfile,
    keys: KeysDep,
    settings: AuthSettings,
    limiter: RateLimiter,
) -> TokenResponse:
    limiter.hit(f"login-user:kakao:{profile.kakao_id}", settings.rate_limit.login_per_user)
    user = await upsert_kakao_user(session, profile)
    return await sign_in(session, user, keys.current, settings)


@router.get(
    "/login",
    status_code=302,
    summary="Start the web login: redirects to Kakao with a state bound to this browser",
    responses={302: {"description": "To Kakao's authorize page"}, **_PROBLEMS},
    response_class=RedirectResponse,
)
async def login(
    settings: SettingsDep,
    kakao: KakaoDep,
    limiter: LimiterDep,
    ip: ClientIp,
    mode: Annotated[
        Literal["web", "json"],
        Query(description="web: back to the app URL with tokens in the fragment; json: JSON"),
    ] = "web",
) -> RedirectResponse:
    del kakao  # only its configured check
    _login_limits(limiter, settings, ip)
    state = secrets.token_urlsafe(24)
    authorize = httpx.URL(
        f"{settings.kakao.auth_base_url}/oauth/authorize",
        params={
            "response_type": "code",
            "client_id": settings.kakao.rest_api_key,
            "redirect_uri": settings.kakao.redirect_uri,
            "state": state,
            "scope": settings.kakao.scope,
        },
    )
    response = RedirectResponse(str(authorize), status_code=302)
    response.set_cookie(
        STATE_COOKIE,
        f"{state}.{mode}",
        max_age=settings.web.state_ttl_s,
        path=COOKIE_PATH,
        secure=settings.web.cookie_secure,
        httponly=True,
        samesite="lax",  # sent on Kakao's top-level redirect back to us
    )
    return response


@router.get(
    "/callback",
    summary="Kakao sends the browser back here: exchange the code, sign the user in",
    responses={
        200: {"model": TokenResponse, "description": "Our tokens (mode json)"},
        302: {"description": "To the app URL with our tokens in the fragment (mode web)"},
        **_PROBLEMS,
    },
    response_model=None,
)
async def callback(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    keys: KeysDep,
    kakao: KakaoDep,
    limiter: LimiterDep,
    ip: ClientIp,
    code: Annotated[str | None, Query(max_length=1024)] = None,
    state: Annotated[str | None, Query(max_length=256)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
    error_description: Annotated[str | None, Query(max_length=1024)] = None,
) -> Response:
    _login_limits(limiter, settings, ip)
    expected, _, mode = request.cookies.get(STATE_COOKIE, "").partition(".")
    if not expected or state is None or not hmac.compare_digest(expected, state):
        raise LoginStateMismatch(
            "the state is not the one this browser started; start again at /auth/kakao/login",
            field="state",
        )
    if error is not None:
        raise KakaoLoginDenied(f"Kakao: {error} ({error_description or 'no description'})")
    if not code:
        raise KakaoCodeInvalid("Kakao sent no code", field="code")
    profile = await kakao.profile(await kakao.exchange_code(code))
    tokens = await _sign_in(session, profile, keys, settings, limiter)
    response: Response
    if mode == "web" and settings.web.app_redirect_url:
        fragment = urlencode(tokens.model_dump(mode="json"))
        response = RedirectResponse(f"{settings.web.app_redirect_url}#{fragment}", status_code=302)
    else:
        response = JSONResponse(tokens.model_dump(mode="json"))
    response.headers["Cache-Control"] = "no-store"
    response.delete_cookie(STATE_COOKIE, path=COOKIE_PATH)
    return response


@router.post(
    "/token",
    summary="Mobile login: trade the Kakao SDK's token (issued to our app) for our tokens",
    responses=_PROBLEMS,
)
async def mobile_login(
    body: KakaoTokenLogin,
    session: SessionDep,
    settings: SettingsDep,
    keys: KeysDep,
    kakao: KakaoDep,
    limiter: LimiterDep,
    ip: ClientIp,
) -> TokenResponse:
    _login_limits(limiter, settings, ip)
    profile = await _verified_profile(kakao, body)
    return await _sign_in(session, profile, keys, settings, limiter)


async def _verified_profile(kakao: Kakao, body: KakaoTokenLogin) -> KakaoProfile:
    """The id_token, when sent, must verify (our app as audience, the nonce); otherwise Kakao must
    say the access token was issued to our app — a token of another app could be replayed."""
    if body.id_token is not None:
        return await kakao.verify_id_token(body.id_token, body.nonce)
    kakao_id = await kakao.check_token_is_ours(body.access_token)
    profile = await kakao.profile(body.access_token)
    if profile.kakao_id != kakao_id:
        raise KakaoTokenInvalid("Kakao's answers disagree on the user", field="access_token")
    return profile


def _check_admin_key(settings: AuthSettings, authorization: str | None) -> None:
    scheme, _, key = (authorization or "").partition(" ")
    admin_key = settings.kakao.admin_key.get_secret_value()
    if scheme != "KakaoAK" or not admin_key or not hmac.compare_digest(key.strip(), admin_key):
        raise KakaoAdminKeyInvalid("send 'Authorization: KakaoAK <our admin key>'")


async def _unlink(
    session: SessionDep,
    settings: AuthSettings,
    authorization: str | None,
    user_id: str,
    app_id: str | None,
    referrer_type: str | None,
) -> UnlinkAnswer:
    _check_admin_key(settings, authorization)
    if not user_id.isdigit():
        raise BadUnlinkRequest("user_id must be a Kakao user id", field="user_id")
    if app_id is not None and app_id != str(settings.kakao.app_id):
        raise BadUnlinkRequest("the callback is for another Kakao app", field="app_id")
    known = await unlink_kakao_user(session, user_id, referrer_type or "unknown")
    return UnlinkAnswer(user_id=user_id, known=known)


_UNLINK_DOC = {
    "summary": "Kakao's unlink callback: deactivate the user, revoke every refresh token",
    "responses": {
        400: {"description": "No valid user_id, or another app's app_id"},
        401: {"description": "Not our KakaoAK admin key"},
    },
}


@router.post("/unlink", **_UNLINK_DOC)  # type: ignore[arg-type]
async def unlink_post(
    session: SessionDep,
    settings: SettingsDep,
    user_id: Annotated[str, Form(min_length=1, max_length=32)],
    app_id: Annotated[str | None, Form(max_length=32)] = None,
    referrer_type: Annotated[str | None, Form(max_length=64)] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> UnlinkAnswer:
    return await _unlink(session, settings, authorization, user_id, app_id, referrer_type)


@router.get("/unlink", **_UNLINK_DOC)  # type: ignore[arg-type]
async def unlink_get(
    session: SessionDep,
    settings: SettingsDep,
    user_id: Annotated[str, Query(min_length=1, max_length=32)],
    app_id: Annotated[str | None, Query(max_length=32)] = None,
    referrer_type: Annotated[str | None, Query(max_length=64)] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> UnlinkAnswer:
    return await _unlink(session, settings, authorization, user_id, app_id, referrer_type)
