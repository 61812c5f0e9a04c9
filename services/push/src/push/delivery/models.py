from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from push.db import Base


class ProcessedEvent(Base):
    """An event push has planned: the idempotency claim that makes redelivery harmless."""

    __tablename__ = "processed_events"

    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    topic: Mapped[str] = mapped_column(String(100))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class DeliveryStatus:
    PENDING = "pending"  # planned, not yet accepted by FCM
    SENT = "sent"  # FCM accepted it
    HELD = "held"  # quiet hours: not sent
    CAPPED = "capped"  # over the user's daily cap: not sent
    DROPPED = "dropped"  # the device is gone (FCM said so, or the user removed it)
    FAILED = "failed"  # FCM refused the message for good (our bug: see error)
    DEAD_LETTERED = "dead_lettered"  # retries exhausted; the event went to the DLQ
    EXPIRED = "expired"  # held through quiet hours, no longer relevant when they ended


class Delivery(Base):
    """One (event, device) notification: planned once, sent at most once unless a crash falls
    between FCM accepting it and this row saying so."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("event_id", "device_id", name="uq_deliveries_event_device"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    device_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    target_kind: Mapped[str] = mapped_column(String(8))
    target: Mapped[str] = mapped_column(String(4096))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, str]] = mapped_column(JSON)
    #: Deals and restocks: subject to quiet hours and the daily cap (order news is not).
    promotional: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))
    fcm_name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class HeldDelivery(Base):
    """A delivery held back by quiet hours, waiting for them to end (its own table, so the
    deliveries table needs no migration).

    The release claims rows with ``FOR UPDATE SKIP LOCKED`` and stamps ``released_at`` in the
    same transaction that makes the delivery pending; a replica that dies before recording the
    send leaves a pending delivery whose stamp grows old, and the next release sends it.
    """

    __tablename__ = "held_deliveries"

    delivery_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    #: The deal it is about, so a deal that sells out or closes drops what is held for it.
    deal_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    #: After this the notification is stale (the deal's pickup window has ended).
    relevant_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    held_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
