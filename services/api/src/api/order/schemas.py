from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from api.examples import page_example
from contracts import OrderStatus


class OrderCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "deal_id": "0b5f7a43-7f55-4c1e-9a0e-4f9c2e1d2a10",
                    "quantity": 2,
                    "expected_unit_price_krw": 4000,
                }
            ]
        },
    )

    deal_id: uuid.UUID
    quantity: int = Field(ge=1, le=100)
    expected_unit_price_krw: int | None = Field(
        default=None,
        ge=0,
        description="The price the customer saw; if it changed since, the order is refused (409)",
    )


class RejectReason(StrEnum):
    SOLD_OUT = "sold_out"
    CLOSING = "closing"
    OTHER = "other"


class OrderReject(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"reason": "sold_out", "note": "마지막 하나가 방금 팔렸어요"}]
        },
    )

    reason: RejectReason
    note: str | None = Field(default=None, max_length=500)


class PickupCheck(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"pickup_code": "428193"}]}
    )

    pickup_code: str = Field(pattern=r"^\d{6}$")


class OrderChangeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_status: OrderStatus | None
    to_status: OrderStatus
    actor_id: str
    reason: str | None
    at: datetime


class OrderRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a",
                    "deal_id": "0b5f7a43-7f55-4c1e-9a0e-4f9c2e1d2a10",
                    "store_id": "DEMO0000000000000002",
                    "customer_id": "c0ffee00-0000-4000-8000-000000000001",
                    "quantity": 2,
                    "unit_price_krw": 4000,
                    "total_krw": 8000,
                    "status": "placed",
                    "reason": None,
                    "note": None,
                    "pickup_code": "428193",
                    "created_at": "2026-11-25T12:10:00Z",
                    "updated_at": "2026-11-25T12:10:00Z",
                }
            ]
        },
    )

    id: uuid.UUID
    deal_id: uuid.UUID
    store_id: str
    customer_id: str
    quantity: int
    unit_price_krw: int
    total_krw: int
    status: OrderStatus
    reason: str | None
    note: str | None
    pickup_code: str | None = Field(description="Shown to the customer; managers check it")
    created_at: datetime
    updated_at: datetime


class OrderDetail(OrderRead):
    history: list[OrderChangeRead]


class OrderPage(BaseModel):
    model_config = ConfigDict(json_schema_extra=page_example(OrderRead))

    items: list[OrderRead]
    next_cursor: str | None
