from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, String, UniqueConstraint, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from push.db import Base


class Device(Base):
    """A phone (or browser) that can receive notifications for one user."""

    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("target_kind", "target", name="uq_devices_target"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    #: "token" (FCM registration token) or "fid" (Firebase installation id).
    target_kind: Mapped[str] = mapped_column(String(8))
    target: Mapped[str] = mapped_column(String(4096))
    platform: Mapped[str] = mapped_column(String(16))
    locale: Mapped[str] = mapped_column(String(35))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
