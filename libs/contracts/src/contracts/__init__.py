"""What crosses a service boundary: events, topics and token claims."""

from contracts.claims import AccessTokenClaims, Role
from contracts.events import (
    DealPublished,
    DealPublishedData,
    Event,
    EventType,
    OrderPlaced,
    OrderPlacedData,
    OrderStatus,
    OrderStatusChanged,
    OrderStatusChangedData,
    StockChanged,
    StockChangedData,
    StockChangeReason,
    parse_event,
    serialize_event,
)
from contracts.topics import PARTITIONS, TOPIC_ORDER, TOPIC_STOCK, TOPICS, topic_for

__all__ = [
    "PARTITIONS",
    "TOPICS",
    "TOPIC_ORDER",
    "TOPIC_STOCK",
    "AccessTokenClaims",
    "DealPublished",
    "DealPublishedData",
    "Event",
    "EventType",
    "OrderPlaced",
    "OrderPlacedData",
    "OrderStatus",
    "OrderStatusChanged",
    "OrderStatusChangedData",
    "Role",
    "StockChangeReason",
    "StockChanged",
    "StockChangedData",
    "parse_event",
    "serialize_event",
    "topic_for",
]
