from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth.session.models import LoginSession, RefreshToken


async def find_token(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    return await session.get(RefreshToken, token_hash)


async def find_session(session: AsyncSession, session_id: str) -> LoginSession | None:
    return await session.get(LoginSession, session_id)


async def spend_token(session: AsyncSession, token_hash: str, at: datetime) -> bool:
    """Marks the token used; False when it already was (a concurrent or replayed use)."""
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.token_hash == token_hash, RefreshToken.used_at.is_(None))
        .values(used_at=at)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def revoke_session(session: AsyncSession, session_id: str, at: datetime, reason: str) -> bool:
    """Revokes one family; False when it was already revoked."""
    result = await session.execute(
        update(LoginSession)
        .where(LoginSession.id == session_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=at, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


async def revoke_user_sessions(
    session: AsyncSession, user_id: str, at: datetime, reason: str
) -> int:
    result = await session.execute(
        update(LoginSession)
        .where(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=at, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))


async def is_session_live(session: AsyncSession, session_id: str) -> bool:
    query = select(LoginSession.id).where(
        LoginSession.id == session_id, LoginSession.revoked_at.is_(None)
    )
    return (await session.scalar(query)) is not None
