from datetime import UTC, datetime, timedelta

import pytest

from api.deal.pricing import MarkdownStep, discounted, next_change_at, price_at

END = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)  # 22:00 in Seoul
STEPS = [
    MarkdownStep(120, 50),
    MarkdownStep(30, 70),
]  # 30 % as listed, 50 % at -2 h, 70 % at -30 min


def _price(minutes_before_end: float) -> int:
    return price_at(
        8000, discounted(8000, 30), STEPS, END, END - timedelta(minutes=minutes_before_end)
    )


@pytest.mark.parametrize(
    ("minutes_before_end", "expected"),
    [
        (300, 5600),  # listed price: 30 % off
        (120.001, 5600),  # a moment before the first step
        (120, 4000),  # the first step starts exactly at -2 h
        (45, 4000),
        (30.001, 4000),
        (30, 2400),  # the last step starts exactly at -30 min
        (0.5, 2400),
    ],
)
def test_price_follows_each_step_and_each_boundary(
    minutes_before_end: float, expected: int
) -> None:
    assert _price(minutes_before_end) == expected


def test_discounts_round_down_to_ten_won_in_integer_arithmetic() -> None:
    assert discounted(8990, 33) == 6020  # 6023.3 → 6020
    assert discounted(1000, 95) == 50
    assert discounted(10, 1) == 0  # 9.9 won is not a price: it rounds to 0, never up


def test_the_next_change_is_the_nearest_future_step() -> None:
    assert next_change_at(STEPS, END, END - timedelta(hours=3)) == END - timedelta(minutes=120)
    assert next_change_at(STEPS, END, END - timedelta(minutes=120)) == END - timedelta(minutes=30)
    assert next_change_at(STEPS, END, END - timedelta(minutes=10)) is None


def test_a_schedule_never_raises_the_price() -> None:
    steps = [MarkdownStep(120, 10)]  # a step weaker than the listed 30 % is ignored, not applied
    assert price_at(8000, 5600, steps, END, END - timedelta(minutes=60)) == 5600
