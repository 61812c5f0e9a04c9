"""Every table of api, imported in one place so the metadata (and migrations) see them all."""

from __future__ import annotations

from api.claim.models import StoreClaim, StoreManager
from api.db import Base
from api.deal.models import Deal
from api.favorite.models import Favorite
from api.menu.models import MenuItem
from api.order.models import IdempotencyKey, Order, OrderChange
from api.outbox import OutboxEvent
from api.store.models import Store

__all__ = [
    "Base",
    "Deal",
    "Favorite",
    "IdempotencyKey",
    "MenuItem",
    "Order",
    "OrderChange",
    "OutboxEvent",
    "Store",
    "StoreClaim",
    "StoreManager",
]
