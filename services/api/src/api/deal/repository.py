from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.deal.models import Deal


async def get_in_store(session: AsyncSession, store_id: str, deal_id: uuid.UUID) -> Deal | None:
    query = select(Deal).where(Deal.id == deal_id, Deal.store_id == store_id)
    return (await session.scalars(query)).one_or_none()


async def get(session: AsyncSession, deal_id: uuid.UUID) -> Deal | None:
    return await session.get(Deal, deal_id)


async def lock_in_store(session: AsyncSession, store_id: str, deal_id: uuid.UUID) -> Deal | None:
    query = select(Deal).where(Deal.id == deal_id, Deal.store_id == store_id).with_for_update()
    return (await session.scalars(query)).one_or_none()


async def list_for_store(
    session: AsyncSession, store_id: str, after: uuid.UUID | None, limit: int
) -> Sequence[Deal]:
    query = select(Deal).where(Deal.store_id == store_id).order_by(Deal.id).limit(limit)
    if after is not None:
        query = query.where(Deal.id > after)
    return (await session.scalars(query)).all()


async def return_stock(session: AsyncSession, deal_id: uuid.UUID, quantity: int) -> int:
    result = await session.execute(
        update(Deal)
        .where(Deal.id == deal_id)
        .values(stock=Deal.stock + quantity)
        .returning(Deal.stock)
    )
    return int(result.scalar_one())


async def drop_units(session: AsyncSession, deal_id: uuid.UUID, quantity: int) -> None:
    """Removes units from the listing entirely and zeroes the stock (the store ran out)."""
    await session.execute(
        update(Deal)
        .where(Deal.id == deal_id)
        .values(quantity=Deal.quantity - Deal.stock - quantity, stock=0)
    )


async def open_deals_ending_before(
    session: AsyncSession, now: datetime, limit: int
) -> Sequence[Deal]:
    query = (
        select(Deal)
        .where(Deal.closed_at.is_(None), Deal.pickup_end_at <= now)
        .order_by(Deal.pickup_end_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(query)).all()


async def deals_due_for_markdown(
    session: AsyncSession, now: datetime, limit: int
) -> Sequence[Deal]:
    query = (
        select(Deal)
        .where(Deal.closed_at.is_(None), Deal.next_markdown_at <= now)
        .order_by(Deal.next_markdown_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(query)).all()
