from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.store.models import Store


async def get(session: AsyncSession, store_id: str) -> Store | None:
    return await session.get(Store, store_id)


async def list_open(session: AsyncSession, after_id: str | None, limit: int) -> Sequence[Store]:
    query = select(Store).where(Store.closed_at.is_(None)).order_by(Store.id).limit(limit)
    if after_id is not None:
        query = query.where(Store.id > after_id)
    return (await session.scalars(query)).all()


async def count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Store)) or 0)
