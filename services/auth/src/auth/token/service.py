"""Issuing our tokens: RFC 9068 access tokens (ES256 JWT) and a refresh token of a family."""

from __future__ import annotations

import time
import uuid
from typing import cast

import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from auth.session.service import Rotation, start_session
from auth.settings import AuthSettings
from auth.token.keys import SigningKey
from auth.token.schemas import TokenResponse
from auth.user.models import User
from contracts import AccessTokenClaims, Role


def issue_access_token(
    key: SigningKey,
    *,
    issuer: str,
    audience: str,
    subject: str,
    roles: list[Role],
    ttl_s: int,
    session_id: str | None = None,
    now: int | None = None,
) -> tuple[str, AccessTokenClaims]:
    """A signed ES256 access token and its claims."""
    issued_at = int(time.time()) if now is None else now
    claims = AccessTokenClaims(
        iss=issuer,
        aud=audience,
        sub=subject,
        iat=issued_at,
        exp=issued_at + ttl_s,
        jti=str(uuid.uuid4()),
        roles=roles,
        sid=session_id,
    )
    token = jwt.encode(
        claims.model_dump(exclude_none=True),
        key.private_key,
        algorithm="ES256",
        headers={"kid": key.kid, "typ": "at+jwt"},
    )
    return token, claims


def roles_of(user: User, settings: AuthSettings) -> list[Role]:
    """The user's stored roles, plus admin when configured for this identity; read at every issue
    so a role change shows in the next access token."""
    roles = [r for r in user.roles if r in ("customer", "manager", "admin")]
    if f"{user.provider}:{user.provider_user_id}" in settings.admins and "admin" not in roles:
        roles.append("admin")
    return cast(list[Role], roles or ["customer"])


def _response(
    key: SigningKey, settings: AuthSettings, user: User, session_id: str, refresh_token: str
) -> TokenResponse:
    token, claims = issue_access_token(
        key,
        issuer=settings.token.issuer,
        audience=settings.token.audience,
        subject=user.id,
        roles=roles_of(user, settings),
        ttl_s=settings.token.access_ttl_s,
        session_id=session_id,
    )
    return TokenResponse(
        access_token=token,
        expires_in=claims.exp - claims.iat,
        refresh_token=refresh_token,
        refresh_expires_in=settings.token.refresh_ttl_s,
    )


async def sign_in(
    session: AsyncSession, user: User, key: SigningKey, settings: AuthSettings
) -> TokenResponse:
    """A new session (refresh family) for ``user`` and its first token pair."""
    login_session, refresh = await start_session(session, user, ttl_s=settings.token.refresh_ttl_s)
    return _response(key, settings, user, login_session.id, refresh)


def rotated(rotation: Rotation, key: SigningKey, settings: AuthSettings) -> TokenResponse:
    return _response(
        key, settings, rotation.user, rotation.login_session.id, rotation.refresh_token
    )
