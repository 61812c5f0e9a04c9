"""Held back by quiet hours, delivered after them: on the real Kafka and PostgreSQL with the FCM
stand-in, and a clock the test moves (no waiting for wall-clock time)."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiokafka import AIOKafkaProducer
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from conftest import Infra
from contracts import (
    DealPublished,
    DealPublishedData,
    Event,
    FavoriteChanged,
    FavoriteChangedData,
    StockChanged,
    StockChangedData,
    StockChangeReason,
    serialize_event,
)
from push.delivery.models import Delivery, DeliveryStatus, HeldDelivery
from push.delivery.pipeline import Pipeline
from push.main import create_app
from push.settings import ConsumerSettings, PushSettings
from servicekit.kafka import ensure_topics
from servicekit.testing import TokenFactory
from standins.fcm import RunningFcm

pytestmark = pytest.mark.integration

TOKENS = TokenFactory()
SEOUL = ZoneInfo("Asia/Seoul")
QUIET = {"quiet_start": "22:00", "quiet_end": "07:00"}


class Clock:
    """The time push sees; the test moves it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_for(what: str, done: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        time.sleep(0.05)


@dataclass
class Push:
    client: TestClient
    topics: dict[str, str]
    bootstrap: str

    @property
    def pipeline(self) -> Pipeline:
        pipeline: Pipeline = self.client.app.state.pipeline  # type: ignore[attr-defined]
        return pipeline

    def release(self) -> int:
        sent: int = self.client.portal.call(self.pipeline.release_held)  # type: ignore[union-attr]
        return sent

    def query(self, fn: Callable[[Any], Any]) -> Any:
        sessions = self.client.app.state.sessions  # type: ignore[attr-defined]

        async def run() -> Any:
            async with sessions() as session, session.begin():
                return await fn(session)

        return self.client.portal.call(run)  # type: ignore[union-attr]

    def user(
        self,
        devices: int = 1,
        daily_cap: int | None = None,
        quiet: dict[str, str] = QUIET,
        prefix: str = "c",
    ) -> tuple[str, list[str]]:
        """A customer with quiet hours (22:00–07:00) and ``devices`` registered tokens."""
        user = _uid(prefix)
        headers = TOKENS.headers(user, ["customer"])
        targets = [f"tok-{user}-{n}" for n in range(devices)]
        for target in targets:
            answer = self.client.post(
                "/devices",
                json={"target_kind": "token", "target": target, "platform": "android"},
                headers=headers,
            )
            assert answer.status_code == 201, answer.text
        body: dict[str, Any] = {**quiet, "daily_cap": daily_cap}
        answer = self.client.put("/preferences", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        return user, targets

    def produce(self, *events: Event) -> None:
        records = [(self.topics["stock"], e.key, serialize_event(e)) for e in events]

        async def send() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True)
            await producer.start()
            try:
                for topic, key, value in records:
                    await producer.send_and_wait(topic, value, key=key.encode())
            finally:
                await producer.stop()

        asyncio.run(send())

    def statuses(self, event: Event) -> dict[str, str]:
        async def q(s: Any) -> dict[str, str]:
            rows = await s.scalars(select(Delivery).where(Delivery.event_id == event.event_id))
            return {d.target: d.status for d in rows}

        result: dict[str, str] = self.query(q)
        return result


@contextmanager
def running_push(infra: Infra, clock: Clock, run: str) -> Iterator[Push]:
    topics = {name: f"test-qh-{name}-{run}" for name in ("order", "stock", "identity")}
    asyncio.run(ensure_topics(infra.kafka_bootstrap, list(topics.values()), partitions=2))
    settings = PushSettings(
        consumer=ConsumerSettings(group_id=f"push-qh-{run}", topics=list(topics.values()))
    )
    app = create_app(settings, clock=clock)
    app.state.token_verifier = TOKENS.verifier()
    with TestClient(app) as client:
        wait_for("push ready", lambda: client.get("/readyz").status_code == 200)
        yield Push(client, topics, infra.kafka_bootstrap)


@pytest.fixture
def env(prod_profile: Infra, fcm: RunningFcm, monkeypatch: pytest.MonkeyPatch) -> Iterator[Infra]:
    for key, value in fcm.env().items():
        monkeypatch.setenv(key, value)
    # The background release would race the test's own calls: it runs once an hour here.
    monkeypatch.setenv("PUSH_NOTIFY__RELEASE_INTERVAL_S", "3600")
    # A database of its own: a release pass takes every user's held rows, and another run's
    # clock (in the shared push database) would release or expire this test's.
    with prod_profile.scratch_database("push_qh") as name:
        monkeypatch.setenv("PUSH_DATABASE__NAME", name)
        yield prod_profile


def deal(store: str, now: datetime, pickup_for: timedelta) -> DealPublished:
    # A random spot, so nobody's saved places from other runs are near.
    lat, lon = 34.5 + random.random() * 3, 126.8 + random.random() * 2
    return DealPublished(
        key=store,
        data=DealPublishedData(
            deal_id=uuid.uuid4(),
            store_id=store,
            store_name="을지로 김밥",
            name="참치김밥 2줄",
            original_price_krw=9000,
            price_krw=5000,
            quantity=3,
            pickup_start_at=now,
            pickup_end_at=now + pickup_for,
            lat=lat,
            lon=lon,
        ),
    )


def sold_out(d: DealPublished) -> StockChanged:
    return StockChanged(
        key=d.key,
        data=StockChangedData(
            deal_id=d.data.deal_id,
            store_id=d.data.store_id,
            quantity_available=0,
            price_krw=d.data.price_krw,
            reason=StockChangeReason.SOLD_OUT,
            live=False,
            lat=d.data.lat,
            lon=d.data.lon,
        ),
    )


def favorite(store: str, user: str) -> FavoriteChanged:
    return FavoriteChanged(
        key=store, data=FavoriteChangedData(store_id=store, customer_id=user, favorite=True)
    )


def a_night(hour: int, minute: int = 0) -> datetime:
    """A night some years ahead (any date does: the test's database is its own)."""
    return datetime(2031, 3, 3, hour, minute, tzinfo=SEOUL).astimezone(UTC)


def ours(fcm: RunningFcm, targets: list[str]) -> int:
    return sum(1 for r in fcm.fake.accepted() if r.target in targets)


def sent_to(fcm: RunningFcm, target: str) -> list[str]:
    """The deal ids a target was sent, in order."""
    return [r.data["deal_id"] for r in fcm.fake.accepted() if r.target == target]


def test_held_deals_go_out_when_quiet_hours_end_fresh_only_within_the_cap_once(
    env: Infra, fcm: RunningFcm
) -> None:
    night = a_night(23)
    clock = Clock(night)
    with running_push(env, clock, uuid.uuid4().hex[:8]) as push:
        (sleeper, phones) = push.user(devices=2)
        (capped, (capped_phone,)) = push.user(daily_cap=1)
        # Sorted first among the held rows: still asleep at 07:00, they must not block the rest.
        late = {"quiet_start": "22:00", "quiet_end": "08:00"}
        (late_riser, (late_phone,)) = push.user(quiet=late, prefix="a")
        push.pipeline.release_page = 2  # several pages per pass
        store = _uid("S")
        morning_deal = deal(store, night, timedelta(hours=10))  # pickup until 09:00
        stale_deal = deal(store, night, timedelta(minutes=30))  # pickup until 23:30
        gone_deal = deal(store, night, timedelta(hours=10))  # sells out during the night
        second_deal = deal(store, night, timedelta(hours=10))
        push.produce(*(favorite(store, u) for u in (sleeper, capped, late_riser)))
        push.produce(morning_deal, stale_deal, gone_deal, second_deal)
        wait_for(
            "four deals held for both",
            lambda: all(
                list(push.statuses(d).values()) == [DeliveryStatus.HELD] * 4
                for d in (morning_deal, stale_deal, gone_deal, second_deal)
            ),
        )
        push.produce(sold_out(gone_deal))
        wait_for(
            "the sold-out deal's held notifications dropped",
            lambda: set(push.statuses(gone_deal).values()) == {DeliveryStatus.EXPIRED},
        )

        targets = [*phones, capped_phone, late_phone]
        clock.now = night + timedelta(hours=7, minutes=59)  # 06:59
        push.release()
        assert ours(fcm, targets) == 0

        clock.now = night + timedelta(hours=8)  # 07:00
        assert push.release() == 5
        want = [str(morning_deal.data.deal_id), str(second_deal.data.deal_id)]
        assert sent_to(fcm, phones[0]) == want
        assert sent_to(fcm, phones[1]) == want
        assert sent_to(fcm, capped_phone) == [str(morning_deal.data.deal_id)]
        assert push.statuses(second_deal)[capped_phone] == DeliveryStatus.CAPPED
        assert sent_to(fcm, late_phone) == []
        assert push.statuses(morning_deal)[late_phone] == DeliveryStatus.HELD

        clock.now = night + timedelta(hours=9)  # 08:00: the late riser's turn
        assert push.release() == 2
        assert sent_to(fcm, late_phone) == want
        assert set(push.statuses(stale_deal).values()) == {DeliveryStatus.EXPIRED}

        clock.now += timedelta(minutes=10)  # past the lease: a second pass must not resend
        assert push.release() == 0
        assert ours(fcm, targets) == 7
        left = push.query(
            lambda s: s.scalars(
                select(HeldDelivery.delivery_id).where(
                    HeldDelivery.user_id.in_([sleeper, capped, late_riser]),
                    HeldDelivery.released_at.is_(None),
                )
            )
        )
        assert list(left) == []


def test_held_notifications_survive_a_restart_and_a_crash_after_release(
    env: Infra, fcm: RunningFcm
) -> None:
    night = a_night(23, 30)
    clock = Clock(night)
    run = uuid.uuid4().hex[:8]
    with running_push(env, clock, run) as push:
        (user, (phone,)) = push.user()
        store = _uid("S")
        first, second = (deal(store, night, timedelta(hours=10)) for _ in range(2))
        push.produce(favorite(store, user), first, second)
        wait_for(
            "both held",
            lambda: [push.statuses(d).get(phone) for d in (first, second)]
            == [DeliveryStatus.HELD] * 2,
        )
    # push was stopped; a new instance (the same database) wakes up after the quiet hours.
    clock.now = night + timedelta(hours=7, minutes=35)  # 07:05
    with running_push(env, clock, run) as push:
        # A replica released `second` and died before sending it: pending, stamped 3 min ago.
        async def crash(s: Any) -> None:
            (delivery_id,) = await s.scalars(
                select(Delivery.id).where(Delivery.event_id == second.event_id)
            )
            await s.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(status=DeliveryStatus.PENDING)
            )
            await s.execute(
                update(HeldDelivery)
                .where(HeldDelivery.delivery_id == delivery_id)
                .values(released_at=clock.now - timedelta(minutes=3))
            )

        push.query(crash)
        assert push.release() == 2
        assert sorted(sent_to(fcm, phone)) == sorted(
            [str(first.data.deal_id), str(second.data.deal_id)]
        )
        clock.now += timedelta(minutes=10)  # past the lease: nothing is sent again
        assert push.release() == 0
        assert len(sent_to(fcm, phone)) == 2
