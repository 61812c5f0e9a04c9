from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth.user.models import User


async def find_by_identity(session: AsyncSession, provider: str, subject: str) -> User | None:
    query = select(User).where(User.provider == provider, User.provider_user_id == subject)
    return (await session.scalars(query)).one_or_none()


async def upsert_identity(
    session: AsyncSession,
    provider: str,
    subject: str,
    *,
    nickname: str | None,
    email: str | None,
    roles: list[str] | None = None,
) -> User:
    """The user of this identity, created on first sight, profile fields refreshed after."""
    user = await find_by_identity(session, provider, subject)
    if user is None:
        user = User(provider=provider, provider_user_id=subject, roles=roles or ["customer"])
        session.add(user)
    user.nickname = nickname
    user.email = email
    await session.flush()
    return user
