from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, HttpUrl, model_validator

from api.deal.pricing import MarkdownStep, discounted
from api.examples import page_example

Krw = Annotated[int, Field(gt=0, le=10_000_000, description="Whole Korean won")]
Label = Annotated[str, Field(min_length=1, max_length=30)]

_EXAMPLE_STEPS: Any = [
    {"minutes_before_end": 120, "percent_off": 50},
    {"minutes_before_end": 30, "percent_off": 70},
]


class MarkdownStepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    minutes_before_end: int = Field(ge=1, le=24 * 60)
    percent_off: int = Field(ge=1, le=95)


def _check_schedule(steps: list[MarkdownStepIn], original: int, base_price: int) -> None:
    ordered = sorted(steps, key=lambda s: -s.minutes_before_end)
    if ordered != steps:
        raise ValueError("markdown steps must be ordered from the earliest to the latest")
    minutes = [s.minutes_before_end for s in steps]
    if len(set(minutes)) != len(minutes):
        raise ValueError("markdown steps must start at different times")
    previous = base_price
    for step in steps:
        price = discounted(original, step.percent_off)
        if price >= previous:
            raise ValueError(
                f"the step {step.minutes_before_end} min before the end must lower the price "
                f"(it gives {price} KRW after {previous} KRW)"
            )
        previous = price


class DealCreate(BaseModel):
    """A new deal: give either ``price_krw`` or ``discount_percent``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "제육 도시락",
                    "description": "오늘 점심에 만든 도시락, 저녁 9시까지",
                    "original_price_krw": 8000,
                    "discount_percent": 30,
                    "quantity": 10,
                    "pickup_start_at": "2026-11-25T20:00:00+09:00",
                    "pickup_end_at": "2026-11-25T22:00:00+09:00",
                    "allergens": ["돼지고기", "대두"],
                    "tags": ["도시락"],
                    "markdown": _EXAMPLE_STEPS,
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)
    original_price_krw: Krw
    price_krw: Krw | None = None
    discount_percent: int | None = Field(default=None, ge=1, le=95)
    quantity: int = Field(ge=1, le=1000)
    pickup_start_at: AwareDatetime
    pickup_end_at: AwareDatetime
    allergens: list[Label] = Field(default_factory=list, max_length=20)
    tags: list[Label] = Field(default_factory=list, max_length=10)
    photo_url: HttpUrl | None = None
    markdown: list[MarkdownStepIn] = Field(default_factory=list, max_length=5)
    return_stock_on_expiry: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.price_krw is None) == (self.discount_percent is None):
            raise ValueError("give exactly one of price_krw and discount_percent")
        if self.pickup_end_at <= self.pickup_start_at:
            raise ValueError("pickup_end_at must be after pickup_start_at")
        if self.pickup_end_at - self.pickup_start_at > timedelta(hours=24):
            raise ValueError("a pickup window is at most 24 hours")
        if self.base_price_krw > self.original_price_krw:
            raise ValueError("price_krw must not exceed original_price_krw")
        _check_schedule(self.markdown, self.original_price_krw, self.base_price_krw)
        return self

    @property
    def base_price_krw(self) -> int:
        if self.price_krw is not None:
            return self.price_krw
        return discounted(self.original_price_krw, self.discount_percent or 0)

    def steps(self) -> list[MarkdownStep]:
        return [MarkdownStep(s.minutes_before_end, s.percent_off) for s in self.markdown]


class DealFromMenu(BaseModel):
    """A deal started from a store's menu item: its name and regular price come from the menu."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "discount_percent": 40,
                    "quantity": 6,
                    "pickup_start_at": "2026-11-25T20:00:00+09:00",
                    "pickup_end_at": "2026-11-25T21:30:00+09:00",
                }
            ]
        },
    )

    original_price_krw: Krw | None = Field(
        default=None, description="Only when the menu has no price (시가/변동)"
    )
    price_krw: Krw | None = None
    discount_percent: int | None = Field(default=None, ge=1, le=95)
    quantity: int = Field(ge=1, le=1000)
    description: str = Field(default="", max_length=2000)
    pickup_start_at: AwareDatetime
    pickup_end_at: AwareDatetime
    markdown: list[MarkdownStepIn] = Field(default_factory=list, max_length=5)


class DealUpdate(BaseModel):
    """Fields a manager may change; ``quantity`` never below what orders already hold."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"quantity": 6, "description": "3개 남았어요"}]},
    )

    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=2000)
    quantity: int | None = Field(default=None, ge=0, le=1000)
    pickup_end_at: AwareDatetime | None = None
    allergens: list[Label] | None = Field(default=None, max_length=20)
    tags: list[Label] | None = Field(default=None, max_length=10)
    photo_url: HttpUrl | None = None
    markdown: list[MarkdownStepIn] | None = Field(default=None, max_length=5)


class Restock(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"quantity": 5}]})

    quantity: int = Field(ge=1, le=1000)


class DealStatus(StrEnum):
    LIVE = "live"
    SOLD_OUT = "sold_out"
    CLOSED = "closed"


class DealRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0b5f7a43-7f55-4c1e-9a0e-4f9c2e1d2a10",
                    "store_id": "DEMO0000000000000002",
                    "name": "제육 도시락",
                    "description": "오늘 점심에 만든 도시락, 저녁 9시까지",
                    "original_price_krw": 8000,
                    "price_krw": 4000,
                    "discount_percent": 50,
                    "next_price_change_at": "2026-11-25T21:30:00+09:00",
                    "quantity": 10,
                    "stock": 7,
                    "reserved": 3,
                    "status": "live",
                    "pickup_start_at": "2026-11-25T20:00:00+09:00",
                    "pickup_end_at": "2026-11-25T22:00:00+09:00",
                    "allergens": ["돼지고기", "대두"],
                    "tags": ["도시락"],
                    "photo_url": None,
                    "markdown": _EXAMPLE_STEPS,
                    "return_stock_on_expiry": True,
                }
            ]
        }
    )

    id: uuid.UUID
    store_id: str
    name: str
    description: str
    original_price_krw: int
    price_krw: int = Field(description="The price now, markdown schedule applied")
    discount_percent: int
    next_price_change_at: datetime | None
    quantity: int
    stock: int = Field(description="Units that can still be ordered")
    reserved: int = Field(description="Units held by orders")
    status: DealStatus
    pickup_start_at: datetime
    pickup_end_at: datetime
    allergens: list[str]
    tags: list[str]
    photo_url: str | None
    markdown: list[MarkdownStepIn]
    return_stock_on_expiry: bool


class DealPage(BaseModel):
    model_config = ConfigDict(json_schema_extra=page_example(DealRead))

    items: list[DealRead]
    next_cursor: str | None
