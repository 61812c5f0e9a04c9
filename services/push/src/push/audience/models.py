"""What push learns from events about who hears what: managers, favoriters, known deals."""

from __future__ import annotations

import uuid

from sqlalchemy import String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from push.db import Base


class StoreManager(Base):
    """From ``store.manager_approved``: this user hears about new orders at this store."""

    __tablename__ = "store_managers"

    store_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class StoreFavorite(Base):
    """From ``favorite.changed``: this customer hears about this store's deals and restocks."""

    __tablename__ = "store_favorites"

    store_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class KnownDeal(Base):
    """From ``deal.published``: names for the texts of later ``stock.changed`` events."""

    __tablename__ = "known_deals"

    deal_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    store_id: Mapped[str] = mapped_column(String(40))
    store_name: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
