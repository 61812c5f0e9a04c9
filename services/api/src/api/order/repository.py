from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.deal.models import Deal
from api.order.models import ACTIVE_STATUSES, IdempotencyKey, Order, OrderChange
from contracts import OrderStatus


async def get_for_customer(
    session: AsyncSession, customer_id: str, order_id: uuid.UUID
) -> Order | None:
    query = select(Order).where(Order.id == order_id, Order.customer_id == customer_id)
    return (await session.scalars(query)).one_or_none()


async def get_in_store(session: AsyncSession, store_id: str, order_id: uuid.UUID) -> Order | None:
    query = select(Order).where(Order.id == order_id, Order.store_id == store_id)
    return (await session.scalars(query)).one_or_none()


async def history(session: AsyncSession, order_id: uuid.UUID) -> Sequence[OrderChange]:
    query = select(OrderChange).where(OrderChange.order_id == order_id).order_by(OrderChange.id)
    return (await session.scalars(query)).all()


async def list_for_customer(
    session: AsyncSession, customer_id: str, after: uuid.UUID | None, limit: int
) -> Sequence[Order]:
    query = select(Order).where(Order.customer_id == customer_id).order_by(Order.id).limit(limit)
    if after is not None:
        query = query.where(Order.id > after)
    return (await session.scalars(query)).all()


async def list_for_store(
    session: AsyncSession,
    store_id: str,
    status: OrderStatus | None,
    after: uuid.UUID | None,
    limit: int,
) -> Sequence[Order]:
    query = select(Order).where(Order.store_id == store_id).order_by(Order.id).limit(limit)
    if status is not None:
        query = query.where(Order.status == status)
    if after is not None:
        query = query.where(Order.id > after)
    return (await session.scalars(query)).all()


async def move(
    session: AsyncSession, order: Order, allowed_from: Sequence[OrderStatus], to: OrderStatus
) -> bool:
    """Moves the order to ``to`` only if it is still in one of ``allowed_from`` (a compare-and-set:
    a customer's cancel and a manager's accept cannot both win)."""
    result = await session.execute(
        update(Order)
        .where(Order.id == order.id, Order.status.in_(list(allowed_from)))
        .values(status=to)
        .returning(Order.id)
    )
    moved = result.scalar_one_or_none() is not None
    if moved:
        await session.refresh(order)
    return moved


async def expirable(session: AsyncSession, now: datetime, limit: int) -> Sequence[Order]:
    query = (
        select(Order)
        .join(Deal, Deal.id == Order.deal_id)
        .where(Order.status.in_(list(ACTIVE_STATUSES)), Deal.pickup_end_at <= now)
        .limit(limit)
        .with_for_update(of=Order, skip_locked=True)
    )
    return (await session.scalars(query)).all()


async def idempotency_key(
    session: AsyncSession, customer_id: str, key: str, *, lock: bool = False
) -> IdempotencyKey | None:
    query = select(IdempotencyKey).where(
        IdempotencyKey.customer_id == customer_id, IdempotencyKey.key == key
    )
    if lock:
        query = query.with_for_update()
    return (await session.scalars(query)).one_or_none()


async def insert_idempotency_key(
    session: AsyncSession, customer_id: str, key: str, digest: str, now: datetime
) -> bool:
    """Claims a new key in one statement; False when the key already exists."""
    values = {"customer_id": customer_id, "key": key, "request_hash": digest, "created_at": now}
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    result = await session.execute(
        insert(IdempotencyKey)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(IdempotencyKey.key)
    )
    return result.scalar_one_or_none() is not None
