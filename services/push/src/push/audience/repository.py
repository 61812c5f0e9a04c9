"""Who hears what: the SQL behind managers, favoriters and known deals."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from push.audience.models import KnownDeal, StoreFavorite, StoreManager
from push.db import insert_ignoring_conflicts


async def add_manager(session: AsyncSession, store_id: str, user_id: str) -> None:
    await session.execute(
        insert_ignoring_conflicts(session, StoreManager).values(store_id=store_id, user_id=user_id)
    )


async def set_favorite(session: AsyncSession, store_id: str, customer_id: str, on: bool) -> None:
    if on:
        await session.execute(
            insert_ignoring_conflicts(session, StoreFavorite).values(
                store_id=store_id, customer_id=customer_id
            )
        )
    else:
        await session.execute(
            delete(StoreFavorite).where(
                StoreFavorite.store_id == store_id, StoreFavorite.customer_id == customer_id
            )
        )


async def remember_deal(
    session: AsyncSession, deal_id: uuid.UUID, store_id: str, store_name: str, name: str
) -> None:
    await session.execute(
        insert_ignoring_conflicts(session, KnownDeal).values(
            deal_id=deal_id, store_id=store_id, store_name=store_name, name=name
        )
    )


async def known_deal(session: AsyncSession, deal_id: uuid.UUID) -> KnownDeal | None:
    return await session.get(KnownDeal, deal_id)


async def managers_of(session: AsyncSession, store_id: str) -> list[str]:
    rows = await session.scalars(
        select(StoreManager.user_id).where(StoreManager.store_id == store_id)
    )
    return list(rows)


async def favoriters_of(session: AsyncSession, store_id: str) -> list[str]:
    rows = await session.scalars(
        select(StoreFavorite.customer_id).where(StoreFavorite.store_id == store_id)
    )
    return list(rows)
