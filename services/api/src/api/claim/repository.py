from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.claim.models import ClaimStatus, StoreClaim, StoreManager


async def is_manager(session: AsyncSession, store_id: str, user_id: str) -> bool:
    row = await session.get(StoreManager, (store_id, user_id))
    return row is not None


async def managed_store_ids(session: AsyncSession, user_id: str) -> Sequence[str]:
    query = select(StoreManager.store_id).where(StoreManager.user_id == user_id)
    return (await session.scalars(query)).all()


async def pending_claim(session: AsyncSession, store_id: str, user_id: str) -> StoreClaim | None:
    query = select(StoreClaim).where(
        StoreClaim.store_id == store_id,
        StoreClaim.user_id == user_id,
        StoreClaim.status == ClaimStatus.PENDING,
    )
    return (await session.scalars(query)).first()


async def get_for_update(session: AsyncSession, claim_id: uuid.UUID) -> StoreClaim | None:
    query = select(StoreClaim).where(StoreClaim.id == claim_id).with_for_update()
    return (await session.scalars(query)).one_or_none()


async def list_claims(
    session: AsyncSession, status: ClaimStatus | None, after: uuid.UUID | None, limit: int
) -> Sequence[StoreClaim]:
    query = select(StoreClaim).order_by(StoreClaim.id).limit(limit)
    if status is not None:
        query = query.where(StoreClaim.status == status)
    if after is not None:
        query = query.where(StoreClaim.id > after)
    return (await session.scalars(query)).all()


async def list_for_user(session: AsyncSession, user_id: str) -> Sequence[StoreClaim]:
    query = select(StoreClaim).where(StoreClaim.user_id == user_id).order_by(StoreClaim.created_at)
    return (await session.scalars(query)).all()
