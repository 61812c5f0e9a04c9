"""Signing in with a Kakao identity, and Kakao telling us a user unlinked our app."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from auth.kakao.client import KakaoProfile
from auth.session.service import revoke_every_session
from auth.user import repository
from auth.user.models import User

log = logging.getLogger(__name__)

KAKAO: Final = "kakao"


async def upsert_kakao_user(session: AsyncSession, profile: KakaoProfile) -> User:
    """The user of this Kakao id, created on first sight; a returning user who unlinked is active
    again (signing in with Kakao is a fresh consent). Called only after Kakao answered."""
    user = await repository.upsert_identity(
        session, KAKAO, profile.kakao_id, nickname=profile.nickname, email=profile.email
    )
    if not user.active:
        user.active = True
        await session.flush()
    return user


async def unlink_kakao_user(session: AsyncSession, kakao_id: str, referrer: str) -> bool:
    """Deactivates the user and revokes every refresh token; False when we never knew them."""
    user = await repository.find_by_identity(session, KAKAO, kakao_id)
    if user is None:
        return False
    user.active = False
    revoked = await revoke_every_session(session, user.id, "user_unlinked", datetime.now(UTC))
    log.info(
        "kakao user unlinked",
        extra={"user_id": user.id, "referrer_type": referrer, "sessions_revoked": revoked},
    )
    return True
