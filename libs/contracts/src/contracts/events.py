"""The event envelope and the event types that api publishes and push (and others) consume.

Every event is a frozen envelope with a literal ``type``; ``Event`` is the discriminated union that
both producer and consumer import, so a field renamed on one side fails the other's tests.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

StoreId = Annotated[str, Field(min_length=1, max_length=40)]
Krw = Annotated[int, Field(ge=0, description="An amount in integer Korean won")]


def _now() -> datetime:
    return datetime.now(UTC)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OrderStatus(StrEnum):
    PLACED = "placed"
    ACCEPTED = "accepted"
    READY = "ready"
    PICKED_UP = "picked_up"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class StockChangeReason(StrEnum):
    PUBLISHED = "published"
    ORDERED = "ordered"
    RESTOCKED = "restocked"
    EDITED = "edited"
    RETURNED = "returned"
    REPRICED = "repriced"
    SOLD_OUT = "sold_out"
    CLOSED = "closed"


class _Envelope(_Frozen):
    """Fields every event carries; ``key`` is the store id, the Kafka partition key."""

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: AwareDatetime = Field(default_factory=_now)
    key: StoreId
    traceparent: str | None = Field(
        default=None, description="W3C trace context of the request that caused the event"
    )


class OrderPlacedData(_Frozen):
    order_id: uuid.UUID
    deal_id: uuid.UUID
    store_id: StoreId
    store_name: str
    deal_name: str
    customer_id: str
    quantity: Annotated[int, Field(gt=0)]
    unit_price_krw: Krw
    total_krw: Krw
    pickup_end_at: AwareDatetime


class OrderPlaced(_Envelope):
    type: Literal["order.placed"] = "order.placed"
    data: OrderPlacedData


class OrderStatusChangedData(_Frozen):
    order_id: uuid.UUID
    deal_id: uuid.UUID
    store_id: StoreId
    store_name: str
    deal_name: str
    customer_id: str
    from_status: OrderStatus
    to_status: OrderStatus
    reason: str | None = None
    changed_by: str


class OrderStatusChanged(_Envelope):
    type: Literal["order.status_changed"] = "order.status_changed"
    data: OrderStatusChangedData


class DealPublishedData(_Frozen):
    deal_id: uuid.UUID
    store_id: StoreId
    store_name: str
    name: str
    original_price_krw: Krw
    price_krw: Krw
    quantity: Annotated[int, Field(ge=0)]
    pickup_start_at: AwareDatetime
    pickup_end_at: AwareDatetime
    lat: float
    lon: float


class DealPublished(_Envelope):
    type: Literal["deal.published"] = "deal.published"
    data: DealPublishedData


class StockChangedData(_Frozen):
    deal_id: uuid.UUID
    store_id: StoreId
    quantity_available: Annotated[int, Field(ge=0)]
    price_krw: Krw
    reason: StockChangeReason
    live: bool = Field(description="Whether the deal can still be ordered")
    lat: float
    lon: float


class StockChanged(_Envelope):
    type: Literal["stock.changed"] = "stock.changed"
    data: StockChangedData


class FavoriteChangedData(_Frozen):
    """A customer added or removed a store from their favorites (push notifies favoriters)."""

    store_id: StoreId
    customer_id: str
    favorite: bool


class FavoriteChanged(_Envelope):
    type: Literal["favorite.changed"] = "favorite.changed"
    data: FavoriteChangedData


class ManagerApprovedData(_Frozen):
    """An admin approved a user's claim on a store: auth grants the manager role."""

    claim_id: uuid.UUID
    store_id: StoreId
    user_id: str
    approved_by: str


class ManagerApproved(_Envelope):
    type: Literal["store.manager_approved"] = "store.manager_approved"
    data: ManagerApprovedData


class SessionRevokedData(_Frozen):
    """auth revoked a refresh-token family (or every family of a user, ``session_id`` None).

    Verifiers deny access tokens of that session (or of that user issued at or before
    ``revoked_at``) until the longest access-token lifetime has passed.
    """

    user_id: str
    session_id: str | None = None
    reason: Literal["logout", "refresh_token_reused", "user_unlinked"]
    revoked_at: AwareDatetime


class SessionRevoked(_Envelope):
    """Keyed by user id (the ``key`` field), so one user's revocations stay ordered."""

    type: Literal["session.revoked"] = "session.revoked"
    data: SessionRevokedData


Event = Annotated[
    OrderPlaced
    | OrderStatusChanged
    | DealPublished
    | StockChanged
    | FavoriteChanged
    | ManagerApproved
    | SessionRevoked,
    Field(discriminator="type"),
]
EventType = Literal[
    "order.placed",
    "order.status_changed",
    "deal.published",
    "stock.changed",
    "store.manager_approved",
    "session.revoked",
]

_EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(raw: bytes | str) -> Event:
    """Parse one event from its JSON wire form; raises pydantic.ValidationError when invalid."""
    return _EVENT_ADAPTER.validate_json(raw)


def serialize_event(event: Event) -> bytes:
    """The JSON wire form of an event."""
    return event.model_dump_json().encode()
