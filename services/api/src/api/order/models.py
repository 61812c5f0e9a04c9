from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base
from contracts import OrderStatus


def _now() -> datetime:
    return datetime.now(UTC)


ACTIVE_STATUSES = (OrderStatus.PLACED, OrderStatus.ACCEPTED, OrderStatus.READY)


class Order(Base):
    """A customer's reservation of units of a deal, at the price locked when it was placed."""

    __tablename__ = "orders"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    deal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deals.id"))
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"))
    customer_id: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_krw: Mapped[int] = mapped_column(Integer)
    total_krw: Mapped[int] = mapped_column(Integer)
    status: Mapped[OrderStatus] = mapped_column(String(12), default=OrderStatus.PLACED)
    reason: Mapped[str | None] = mapped_column(String(20), default=None)
    note: Mapped[str | None] = mapped_column(String(500), default=None)
    pickup_code: Mapped[str] = mapped_column(String(6))
    # Set by the client, so a new order needs no read-back after its INSERT (hot path).
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=_now, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=_now, server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        Index("ix_orders_customer_created", "customer_id", "created_at"),
        Index("ix_orders_store_created", "store_id", "created_at"),
        Index("ix_orders_deal_status", "deal_id", "status"),
    )


class OrderChange(Base):
    """Every status change of an order: who, when, from what to what, and why."""

    __tablename__ = "order_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orders.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(12))
    to_status: Mapped[str] = mapped_column(String(12))
    actor_id: Mapped[str] = mapped_column(String(64), comment="user id, or 'system' for sweeps")
    reason: Mapped[str | None] = mapped_column(String(20), default=None)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IdempotencyKey(Base):
    """The first answer to an ``Idempotency-Key``, replayed for retries (Stripe's semantics)."""

    __tablename__ = "idempotency_keys"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(Integer, default=None)
    response_body: Mapped[dict[str, object] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
