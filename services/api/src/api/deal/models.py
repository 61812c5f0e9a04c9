from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base


class Deal(Base):
    """A discounted offer of a store: stock, a pickup window and an optional markdown schedule.

    ``quantity`` is what the manager listed; ``stock`` what can still be ordered. The difference
    is what orders hold. ``stock >= 0`` is a database constraint: oversell cannot be written.
    """

    __tablename__ = "deals"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    original_price_krw: Mapped[int] = mapped_column(Integer)
    price_krw: Mapped[int] = mapped_column(Integer, comment="The discounted price before markdowns")
    quantity: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer)
    pickup_start_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    pickup_end_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    allergens: Mapped[list[str]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    photo_url: Mapped[str | None] = mapped_column(String(500), default=None)
    markdown: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    return_stock_on_expiry: Mapped[bool] = mapped_column(Boolean, default=True)
    next_markdown_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True),
        default=None,
        comment="When the schedule next lowers the price; the sweeper announces it then",
    )
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("stock <= quantity", name="stock_within_quantity"),
        CheckConstraint("price_krw <= original_price_krw", name="price_is_a_discount"),
        Index("ix_deals_store_created", "store_id", "created_at"),
        Index("ix_deals_open_pickup_end", "pickup_end_at", postgresql_where="closed_at IS NULL"),
        Index("ix_deals_next_markdown", "next_markdown_at"),
    )
