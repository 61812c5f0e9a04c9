from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, ForeignKey, Index, String, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base


class ClaimStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class StoreClaim(Base):
    """A user's request to manage a store, proven by its business registration number."""

    __tablename__ = "store_claims"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"))
    user_id: Mapped[str] = mapped_column(String(64))
    business_number: Mapped[str] = mapped_column(String(10), comment="사업자등록번호, digits only")
    status: Mapped[ClaimStatus] = mapped_column(String(10), default=ClaimStatus.PENDING)
    reason: Mapped[str | None] = mapped_column(String(500), default=None)
    decided_by: Mapped[str | None] = mapped_column(String(64), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_store_claims_status_created", "status", "created_at"),)


class StoreManager(Base):
    """Who manages which store (several managers per store, several stores per manager)."""

    __tablename__ = "store_managers"

    store_id: Mapped[str] = mapped_column(ForeignKey("stores.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
