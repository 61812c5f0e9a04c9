"""Kafka topic names and which event goes to which topic."""

from __future__ import annotations

from typing import Final

from contracts.events import (
    DealPublished,
    Event,
    FavoriteChanged,
    ManagerApproved,
    OrderPlaced,
    OrderStatusChanged,
    SessionRevoked,
    StockChanged,
)

TOPIC_ORDER: Final = "order"
TOPIC_STOCK: Final = "stock"  # deals, stock and favorites: what a store offers, keyed by store
#: Role changes decided in api that auth must reflect in the next access token, and sessions
#: auth revoked that every verifier must deny.
TOPIC_IDENTITY: Final = "identity"
TOPICS: Final = (TOPIC_ORDER, TOPIC_STOCK, TOPIC_IDENTITY)
#: Both topics are created with this many partitions; the key (store id) picks one.
PARTITIONS: Final = 2


def topic_for(event: Event) -> str:
    """The topic an event is published to."""
    match event:
        case OrderPlaced() | OrderStatusChanged():
            return TOPIC_ORDER
        case DealPublished() | StockChanged() | FavoriteChanged():
            return TOPIC_STOCK
        case ManagerApproved() | SessionRevoked():
            return TOPIC_IDENTITY
