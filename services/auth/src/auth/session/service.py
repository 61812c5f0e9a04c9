"""Refresh-token families (RFC 9700 §4.14.2): opaque tokens, stored hashed, rotated on every use;
a spent token presented again revokes its whole family."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from auth.errors import (
    RefreshTokenExpired,
    RefreshTokenInvalid,
    RefreshTokenReused,
    RefreshTokenRevoked,
    UserInactive,
)
from auth.events import add_event
from auth.session import repository
from auth.session.models import LoginSession, RefreshToken
from auth.user.models import User
from contracts import SessionRevoked, SessionRevokedData

RevokeReason = Literal["logout", "refresh_token_reused", "user_unlinked"]


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Rotation:
    user: User
    login_session: LoginSession
    refresh_token: str


async def _new_token(
    session: AsyncSession, login_session_id: str, now: datetime, ttl_s: int
) -> str:
    raw = secrets.token_urlsafe(32)
    session.add(
        RefreshToken(
            token_hash=hash_token(raw),
            session_id=login_session_id,
            issued_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )
    )
    await session.flush()
    return raw


async def start_session(
    session: AsyncSession, user: User, *, ttl_s: int, now: datetime | None = None
) -> tuple[LoginSession, str]:
    """A new family for a fresh sign-in, and its first refresh token."""
    now = now or datetime.now(UTC)
    login_session = LoginSession(user_id=user.id)
    session.add(login_session)
    await session.flush()
    return login_session, await _new_token(session, login_session.id, now, ttl_s)


def _revoked_event(
    user_id: str, session_id: str | None, reason: str, at: datetime
) -> SessionRevoked:
    return SessionRevoked(
        key=user_id,
        data=SessionRevokedData(
            user_id=user_id,
            session_id=session_id,
            reason=reason,
            revoked_at=at,
        ),
    )


async def rotate_refresh_token(
    session: AsyncSession, raw: str, *, ttl_s: int, now: datetime | None = None
) -> Rotation:
    """Spends ``raw`` and returns its successor in the same family; a replay revokes the family."""
    now = now or datetime.now(UTC)
    token = await repository.find_token(session, hash_token(raw))
    if token is None:
        raise RefreshTokenInvalid("this refresh token is unknown", field="refresh_token")
    login_session = await repository.find_session(session, token.session_id)
    if login_session is None or login_session.revoked_at is not None:
        raise RefreshTokenRevoked("this session was revoked", field="refresh_token")
    if not await repository.spend_token(session, token.token_hash, now):
        await revoke_family(session, login_session, "refresh_token_reused", now)
        raise RefreshTokenReused(
            "a refresh token was presented twice: every token of this session is revoked",
            field="refresh_token",
        )
    if aware(token.expires_at) <= now:
        raise RefreshTokenExpired("this refresh token has expired", field="refresh_token")
    user = await session.get(User, login_session.user_id)
    if user is None or not user.active:
        raise UserInactive("the account was deactivated", field="refresh_token")
    successor = await _new_token(session, login_session.id, now, ttl_s)
    return Rotation(user=user, login_session=login_session, refresh_token=successor)


async def revoke_family(
    session: AsyncSession,
    login_session: LoginSession,
    reason: RevokeReason,
    now: datetime | None = None,
) -> None:
    now = now or datetime.now(UTC)
    if await repository.revoke_session(session, login_session.id, now, reason):
        add_event(session, _revoked_event(login_session.user_id, login_session.id, reason, now))


async def end_session(session: AsyncSession, raw: str) -> None:
    """Logout: revokes the family of ``raw``; an unknown or spent token is not an error."""
    token = await repository.find_token(session, hash_token(raw))
    if token is None:
        return
    login_session = await repository.find_session(session, token.session_id)
    if login_session is not None:
        await revoke_family(session, login_session, "logout")


async def revoke_every_session(
    session: AsyncSession, user_id: str, reason: RevokeReason, now: datetime | None = None
) -> int:
    """Revokes all families of a user; verifiers deny every token issued up to now."""
    now = now or datetime.now(UTC)
    count = await repository.revoke_user_sessions(session, user_id, now, reason)
    add_event(session, _revoked_event(user_id, None, reason, now))
    return count


async def is_access_revoked(session: AsyncSession, user_id: str, session_id: str | None) -> bool:
    """auth's own check: the token's family was revoked or its user deactivated."""
    user = await session.get(User, user_id)
    if user is None or not user.active:
        return True
    return session_id is not None and not await repository.is_session_live(session, session_id)
