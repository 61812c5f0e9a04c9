"""What routers take from the app: keys, the Kakao adapter, rate limits, the caller's IP."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from auth.errors import KakaoNotConfigured
from auth.kakao.client import Kakao
from auth.ratelimit import RateLimiter
from auth.settings import AuthSettings
from auth.token.keys import KeyRing


def settings(request: Request) -> AuthSettings:
    value: AuthSettings = request.app.state.settings
    return value


def key_ring(request: Request) -> KeyRing:
    value: KeyRing = request.app.state.keys
    return value


def kakao(request: Request) -> Kakao:
    if not request.app.state.settings.kakao.configured:
        raise KakaoNotConfigured(
            "set AUTH_KAKAO__REST_API_KEY and AUTH_KAKAO__APP_ID to enable Kakao login"
        )
    value: Kakao = request.app.state.kakao
    return value


def limiter(request: Request) -> RateLimiter:
    value: RateLimiter = request.app.state.limiter
    return value


def client_ip(request: Request) -> str:
    # Behind the ingress uvicorn's proxy headers support sets client.host from X-Forwarded-For.
    return request.client.host if request.client else "unknown"


SettingsDep = Annotated[AuthSettings, Depends(settings)]
KeysDep = Annotated[KeyRing, Depends(key_ring)]
KakaoDep = Annotated[Kakao, Depends(kakao)]
LimiterDep = Annotated[RateLimiter, Depends(limiter)]
ClientIp = Annotated[str, Depends(client_ip)]
