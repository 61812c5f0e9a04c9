from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from auth.db import SessionDep
from auth.demo import DEV_PROVIDER
from auth.errors import UserNotFound
from auth.settings import AuthSettings
from auth.token.keys import SigningKey
from auth.token.schemas import DevLoginRequest, TokenResponse
from auth.token.service import issue_access_token
from auth.user import repository

router = APIRouter(tags=["tokens"])
dev_router = APIRouter(prefix="/auth/dev", tags=["local profile only"])


@router.get("/.well-known/jwks.json", summary="Public keys that verify our access tokens")
async def jwks(request: Request) -> dict[str, Any]:
    key: SigningKey = request.app.state.signing_key
    return {"keys": [key.public_jwk()]}


@dev_router.post(
    "/login",
    summary="Sign in as a seeded demo user (exists only in the local profile)",
    responses={404: {"description": "The demo user was not seeded"}},
)
async def dev_login(body: DevLoginRequest, request: Request, session: SessionDep) -> TokenResponse:
    settings: AuthSettings = request.app.state.settings
    user = await repository.find_by_identity(session, DEV_PROVIDER, f"demo-{body.user}")
    if user is None:
        raise UserNotFound(f"demo user {body.user!r} is not seeded", field="user")
    token, claims = issue_access_token(
        request.app.state.signing_key,
        issuer=settings.token.issuer,
        audience=settings.token.audience,
        subject=user.id,
        roles=user.roles,  # type: ignore[arg-type]
        ttl_s=settings.token.access_ttl_s,
    )
    return TokenResponse(access_token=token, expires_in=claims.exp - claims.iat)
