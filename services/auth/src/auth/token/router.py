from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from auth.db import SessionDep
from auth.demo import DEV_PROVIDER
from auth.deps import ClientIp, KeysDep, LimiterDep, SettingsDep
from auth.errors import UserNotFound
from auth.session.service import end_session, rotate_refresh_token
from auth.token.schemas import DevLoginRequest, MeResponse, RefreshRequest, TokenResponse
from auth.token.service import rotated, sign_in
from auth.user import repository
from auth.user.models import User
from servicekit.security import CurrentUser

router = APIRouter(tags=["tokens"])
dev_router = APIRouter(prefix="/auth/dev", tags=["local profile only"])


@router.get("/.well-known/jwks.json", summary="Public keys that verify our access tokens")
async def jwks(keys: KeysDep, response: Response) -> dict[str, Any]:
    """The current, next and previous keys: verifiers that cache this see a rotation coming."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return keys.jwks()


@router.post(
    "/auth/refresh",
    summary="Trade a refresh token for new tokens (the refresh token is rotated)",
    responses={
        401: {"description": "Unknown, expired, revoked or reused refresh token"},
        429: {"description": "Too many refreshes from this IP or for this user (`Retry-After`)"},
    },
)
async def refresh(
    body: RefreshRequest,
    session: SessionDep,
    settings: SettingsDep,
    keys: KeysDep,
    limiter: LimiterDep,
    ip: ClientIp,
) -> TokenResponse:
    limiter.hit(f"refresh-ip:{ip}", settings.rate_limit.refresh_per_ip)
    rotation = await rotate_refresh_token(
        session, body.refresh_token, ttl_s=settings.token.refresh_ttl_s
    )
    # Past the limit the rotation rolls back with the 429: the presented token stays usable.
    limiter.hit(f"refresh-user:{rotation.user.id}", settings.rate_limit.refresh_per_user)
    return rotated(rotation, keys.current, settings)


@router.post(
    "/auth/logout",
    status_code=204,
    summary="End the session of a refresh token: revokes its whole family",
)
async def logout(body: RefreshRequest, session: SessionDep) -> Response:
    await end_session(session, body.refresh_token)
    return Response(status_code=204)


@router.get(
    "/auth/me",
    summary="The signed-in user (verifies the access token, including revocation)",
    responses={401: {"description": "Missing, invalid or revoked access token"}},
)
async def me(principal: CurrentUser, session: SessionDep) -> MeResponse:
    user = await session.get(User, principal.user_id)
    if user is None:
        raise UserNotFound("the token's user does not exist")
    return MeResponse(
        id=user.id,
        roles=sorted(principal.roles),
        nickname=user.nickname,
        email=user.email,
        session_id=principal.session_id,
    )


@dev_router.post(
    "/login",
    summary="Sign in as a seeded demo user (exists only in the local profile)",
    responses={404: {"description": "The demo user was not seeded"}},
)
async def dev_login(
    body: DevLoginRequest, session: SessionDep, settings: SettingsDep, keys: KeysDep
) -> TokenResponse:
    user = await repository.find_by_identity(session, DEV_PROVIDER, f"demo-{body.user}")
    if user is None:
        raise UserNotFound(f"demo user {body.user!r} is not seeded", field="user")
    return await sign_in(session, user, keys.current, settings)
