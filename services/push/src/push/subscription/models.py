from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Integer, String, UniqueConstraint, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from push.db import Base
from push.geo import GeoPoint, LonLat


class SavedPlace(Base):
    """A customer's saved place (home, work) and the radius they want deals from: a
    geo-subscription, the geofence turned around."""

    __tablename__ = "saved_places"
    __table_args__ = (UniqueConstraint("user_id", "label", name="uq_saved_places_user_label"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(16))
    location: Mapped[LonLat] = mapped_column(GeoPoint)
    radius_m: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class NotificationPreference(Base):
    """Per-user quiet hours (local wall-clock, may wrap midnight) and the daily cap on deals."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    quiet_start_minute: Mapped[int | None] = mapped_column(Integer)
    quiet_end_minute: Mapped[int | None] = mapped_column(Integer)
    daily_cap: Mapped[int | None] = mapped_column(Integer)
