"""Pure rules: notification texts, quiet hours, backoff."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from contracts import (
    DealPublished,
    DealPublishedData,
    OrderStatus,
    OrderStatusChanged,
    OrderStatusChangedData,
)
from push.delivery import messages
from push.delivery.pipeline import RetryPolicy, sampled
from push.subscription.models import NotificationPreference
from push.subscription.service import in_quiet_hours


def _deal() -> DealPublished:
    return DealPublished(
        key="S-1",
        data=DealPublishedData(
            deal_id=uuid.uuid4(),
            store_id="S-1",
            store_name="마감빵집",
            name="소금빵 3개",
            original_price_krw=10_000,
            price_krw=6_000,
            quantity=4,
            pickup_start_at=datetime(2026, 11, 25, 11, 0, tzinfo=UTC),
            pickup_end_at=datetime(2026, 11, 25, 12, 30, tzinfo=UTC),
            lat=37.5665,
            lon=126.978,
        ),
    )


def test_deal_text_names_store_deal_price_discount_and_korean_pickup_time() -> None:
    event = _deal()
    text = messages.new_deal(event)
    assert text.title == "마감빵집 마감 할인 40%"
    assert text.body == "소금빵 3개 6,000원 (정가 10,000원) · 4개 남음 · 21:30까지 픽업"
    assert text.data["route"] == f"magam://deals/{event.data.deal_id}"
    assert text.data["event_id"] == str(event.event_id)
    assert all(isinstance(v, str) for v in text.data.values())


def test_order_status_text_tells_the_customer_and_skips_placed() -> None:
    def changed(to: OrderStatus, reason: str | None = None) -> OrderStatusChanged:
        return OrderStatusChanged(
            key="S-1",
            data=OrderStatusChangedData(
                order_id=uuid.uuid4(),
                deal_id=uuid.uuid4(),
                store_id="S-1",
                store_name="마감빵집",
                deal_name="소금빵 3개",
                customer_id="c-1",
                from_status=OrderStatus.PLACED,
                to_status=to,
                reason=reason,
                changed_by="m-1",
            ),
        )

    ready = messages.order_status(changed(OrderStatus.READY))
    assert ready is not None
    assert ready.title == "마감빵집"
    assert "준비 완료" in ready.body
    assert ready.data["status"] == "ready"
    rejected = messages.order_status(changed(OrderStatus.REJECTED, "재료 소진"))
    assert rejected is not None
    assert rejected.body.endswith("(사유: 재료 소진)")
    assert messages.order_status(changed(OrderStatus.PLACED)) is None


def _pref(start: str, end: str) -> NotificationPreference:
    def minute(hhmm: str) -> int:
        h, m = hhmm.split(":")
        return int(h) * 60 + int(m)

    return NotificationPreference(
        user_id="u", quiet_start_minute=minute(start), quiet_end_minute=minute(end)
    )


def test_quiet_hours_wrap_midnight_and_end_exclusive() -> None:
    night = _pref("22:00", "08:00")
    day = datetime(2026, 11, 25)
    assert in_quiet_hours(night, day.replace(hour=23, minute=30))
    assert in_quiet_hours(night, day.replace(hour=7, minute=59))
    assert not in_quiet_hours(night, day.replace(hour=8, minute=0))
    assert not in_quiet_hours(night, day.replace(hour=12))
    lunch = _pref("12:00", "13:00")
    assert in_quiet_hours(lunch, day.replace(hour=12, minute=30))
    assert not in_quiet_hours(lunch, day.replace(hour=13, minute=0))
    assert not in_quiet_hours(None, day)


def test_backoff_grows_but_never_undercuts_retry_after() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_base_s=0.5, backoff_max_s=4.0)
    assert [policy.wait_s(n, None) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.wait_s(1, 7.0) == 7.0
    assert policy.wait_s(4, 1.0) == 4.0
    assert timedelta(seconds=policy.wait_s(2, None)) == timedelta(seconds=1)


def test_only_a_sampled_traceparent_gets_its_own_span_and_fcm_call() -> None:
    trace, span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    assert sampled(f"00-{trace}-{span}-01".encode())
    assert sampled(f"00-{trace}-{span}-03".encode())  # other flags beside "sampled"
    assert not sampled(f"00-{trace}-{span}-00".encode())
    assert not sampled(f"00-{trace}-{span}-zz".encode())
    assert not sampled(b"00-short-01")
    assert not sampled(None)
