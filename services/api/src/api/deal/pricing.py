"""The markdown schedule: a deal gets cheaper as its pickup end approaches.

A schedule is a list of steps ``(minutes_before_end, percent_off)``: from ``pickup_end -
minutes_before_end`` on (inclusive), the price is ``percent_off`` below the original price. Before
the first step the deal's own discounted price applies. Example: 30 % off as listed, then
``[(120, 50), (30, 70)]`` — 50 % from two hours before the end, 70 % in the last half hour.
Prices are whole won, rounded down to 10 won, and never rise as time passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class MarkdownStep:
    minutes_before_end: int
    percent_off: int


def discounted(original_price_krw: int, percent_off: int) -> int:
    """``original`` less ``percent_off`` %, rounded down to 10 won (integer arithmetic only)."""
    return original_price_krw * (100 - percent_off) // 100 // 10 * 10


def price_at(
    original_price_krw: int,
    base_price_krw: int,
    steps: Sequence[MarkdownStep],
    pickup_end_at: datetime,
    now: datetime,
) -> int:
    """The price shown and charged at ``now``."""
    price = base_price_krw
    for step in steps:
        if now >= pickup_end_at - timedelta(minutes=step.minutes_before_end):
            price = min(price, discounted(original_price_krw, step.percent_off))
    return price


def next_change_at(
    steps: Sequence[MarkdownStep], pickup_end_at: datetime, now: datetime
) -> datetime | None:
    """When the price next drops, if it does."""
    upcoming = [
        pickup_end_at - timedelta(minutes=s.minutes_before_end)
        for s in steps
        if now < pickup_end_at - timedelta(minutes=s.minutes_before_end)
    ]
    return min(upcoming, default=None)


def percent_off(original_price_krw: int, price_krw: int) -> int:
    return round(100 * (original_price_krw - price_krw) / original_price_krw)
