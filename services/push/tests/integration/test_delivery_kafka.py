"""push end to end on the real Kafka and PostgreSQL, with the FCM and Slack stand-ins:
events on unique 2-partition topics → planned deliveries → FCM requests, each once."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi.testclient import TestClient
from sqlalchemy import select

from conftest import Infra
from contracts import (
    DealPublished,
    DealPublishedData,
    Event,
    FavoriteChanged,
    FavoriteChangedData,
    ManagerApproved,
    ManagerApprovedData,
    OrderPlaced,
    OrderPlacedData,
    OrderStatus,
    OrderStatusChanged,
    OrderStatusChangedData,
    serialize_event,
)
from push.delivery.models import Delivery, DeliveryStatus, ProcessedEvent
from push.device.models import Device
from push.main import create_app
from push.settings import ConsumerSettings, PushSettings
from servicekit.kafka import ensure_topics
from servicekit.testing import TokenFactory
from standins.fcm import RunningFcm
from standins.slack import RunningSlack

pytestmark = pytest.mark.integration

TOKENS = TokenFactory()
SEOUL = ZoneInfo("Asia/Seoul")
METRES_PER_DEGREE_LAT = 111_320.0


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Push:
    client: TestClient
    topics: dict[str, str]  # "order" → the unique topic of this test
    bootstrap: str
    fcm: RunningFcm

    def register(self, user: str, target: str, kind: str = "token") -> None:
        answer = self.client.post(
            "/devices",
            json={"target_kind": kind, "target": target, "platform": "android"},
            headers=TOKENS.headers(user, ["customer"]),
        )
        assert answer.status_code == 201, answer.text

    def produce(self, *items: Event | tuple[str, str, bytes]) -> None:
        """Events go to their (test) topic keyed by store; raw (topic, key, bytes) as given."""
        records: list[tuple[str, str, bytes]] = []
        for item in items:
            if isinstance(item, tuple):
                records.append(item)
            else:
                kind = "order" if item.type.startswith("order.") else "stock"
                if item.type == "store.manager_approved":
                    kind = "identity"
                records.append((self.topics[kind], item.key, serialize_event(item)))
        asyncio.run(_produce(self.bootstrap, records))

    def query(self, fn: Callable[[Any], Any]) -> Any:
        sessions = self.client.app.state.sessions  # type: ignore[attr-defined]

        async def run() -> Any:
            async with sessions() as session:
                return await fn(session)

        return self.client.portal.call(run)  # type: ignore[union-attr]


async def _produce(bootstrap: str, records: list[tuple[str, str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()


def wait_for(
    what: str, done: Callable[[], bool], timeout_s: float = 30.0, explain: Callable[[], Any] = str
) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what} {explain()}")
        time.sleep(0.05)


@pytest.fixture
def push(
    prod_profile: Infra,
    fcm: RunningFcm,
    slack: RunningSlack,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Push]:
    for key, value in fcm.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PUSH_SLACK__WEBHOOK_URL", slack.webhook_url)
    monkeypatch.setenv("PUSH_FCM__BACKOFF_BASE_S", "0.05")
    run = uuid.uuid4().hex[:8]
    topics = {name: f"test-{name}-{run}" for name in ("order", "stock", "identity")}
    asyncio.run(ensure_topics(prod_profile.kafka_bootstrap, list(topics.values()), partitions=2))
    settings = PushSettings(
        consumer=ConsumerSettings(group_id=f"push-test-{run}", topics=list(topics.values()))
    )
    app = create_app(settings)
    app.state.token_verifier = TOKENS.verifier()
    with TestClient(app) as client:
        wait_for(
            "push ready",
            lambda: client.get("/readyz").status_code == 200,
            timeout_s=20,
            explain=lambda: client.get("/readyz").json(),
        )
        yield Push(client, topics, prod_profile.kafka_bootstrap, fcm)


def order_placed(store: str) -> OrderPlaced:
    return OrderPlaced(
        key=store,
        data=OrderPlacedData(
            order_id=uuid.uuid4(),
            deal_id=uuid.uuid4(),
            store_id=store,
            store_name="마감빵집",
            deal_name="소금빵 3개",
            customer_id=_uid("c"),
            quantity=2,
            unit_price_krw=3000,
            total_krw=6000,
            pickup_end_at=datetime.now(UTC) + timedelta(hours=1),
        ),
    )


def status_changed(store: str, customer: str, to: OrderStatus) -> OrderStatusChanged:
    return OrderStatusChanged(
        key=store,
        data=OrderStatusChangedData(
            order_id=uuid.uuid4(),
            deal_id=uuid.uuid4(),
            store_id=store,
            store_name="마감빵집",
            deal_name="소금빵 3개",
            customer_id=customer,
            from_status=OrderStatus.ACCEPTED,
            to_status=to,
            changed_by="m",
        ),
    )


def deal_at(store: str, lat: float, lon: float) -> DealPublished:
    now = datetime.now(UTC)
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
            pickup_end_at=now + timedelta(hours=2),
            lat=lat,
            lon=lon,
        ),
    )


def _sent_to(fcm: RunningFcm, target: str) -> list[dict[str, str]]:
    return [r.data for r in fcm.fake.accepted() if r.target == target]


def test_new_orders_reach_managers_and_status_changes_the_customer_once_each(push: Push) -> None:
    store, manager, customer = _uid("S"), _uid("m"), _uid("c")
    push.register(manager, f"tok-{manager}")
    push.register(manager, f"fid-{manager}", kind="fid")
    push.register(customer, f"tok-{customer}")
    approved = ManagerApproved(
        key=store,
        data=ManagerApprovedData(
            claim_id=uuid.uuid4(), store_id=store, user_id=manager, approved_by="admin"
        ),
    )
    placed = order_placed(store)
    ready = status_changed(store, customer, OrderStatus.READY)
    push.produce(approved)
    wait_for(
        "the manager is known",
        lambda: push.query(
            lambda s: s.scalar(
                select(ProcessedEvent.event_id).where(ProcessedEvent.event_id == approved.event_id)
            )
        )
        is not None,
    )
    push.produce(placed, ready, ready)  # the second `ready` is a redelivery: same event id

    wait_for("three notifications", lambda: len(push.fcm.fake.accepted()) >= 3)
    time.sleep(0.5)  # a duplicate, if any, would arrive now
    assert [d["order_id"] for d in _sent_to(push.fcm, f"tok-{manager}")] == [
        str(placed.data.order_id)
    ]
    assert len(_sent_to(push.fcm, f"fid-{manager}")) == 1
    assert [d["status"] for d in _sent_to(push.fcm, f"tok-{customer}")] == ["ready"]
    accepted = {r.target: r for r in push.fcm.fake.accepted()}
    assert accepted[f"fid-{manager}"].target_kind == "fid"
    assert (
        accepted[f"tok-{manager}"].message["notification"]["title"]
        == "[마감빵집] 새 주문이 들어왔어요"
    )


def test_a_dead_token_is_removed_after_unregistered_and_the_live_one_still_hears(
    push: Push,
) -> None:
    store, customer = _uid("S"), _uid("c")
    dead, live = f"tok-dead-{customer}", f"tok-live-{customer}"
    push.register(customer, dead)
    push.register(customer, live)
    push.fcm.fake.unregistered.add(dead)
    event = status_changed(store, customer, OrderStatus.ACCEPTED)
    push.produce(event)

    def delivery_states() -> dict[str, str]:
        async def q(s: Any) -> dict[str, str]:
            rows = await s.scalars(select(Delivery).where(Delivery.event_id == event.event_id))
            return {d.target: d.status for d in rows}

        result: dict[str, str] = push.query(q)
        return result

    def settled() -> bool:
        states = delivery_states()  # one read: two could straddle the planning commit
        return len(states) == 2 and DeliveryStatus.PENDING not in states.values()

    wait_for("both deliveries settled", settled)
    assert delivery_states() == {dead: DeliveryStatus.DROPPED, live: DeliveryStatus.SENT}
    remaining = push.query(
        lambda s: s.scalars(select(Device.target).where(Device.user_id == customer))
    )
    assert list(remaining) == [live]
    assert len(_sent_to(push.fcm, live)) == 1


def test_quota_exceeded_waits_for_retry_after_then_delivers_once(push: Push) -> None:
    store, customer = _uid("S"), _uid("c")
    target = f"tok-{customer}"
    push.register(customer, target)
    push.fcm.fake.fail_next(1, "quota", retry_after_s=2)
    push.produce(status_changed(store, customer, OrderStatus.READY))

    wait_for("the retried message", lambda: len(_sent_to(push.fcm, target)) == 1)
    attempts = push.fcm.fake.attempts_for(target)
    assert [a.status for a in attempts] == [429, 200]
    waited = attempts[1].at - attempts[0].at
    print(f"429 Retry-After: 2 s → retried after {waited:.3f} s")
    assert waited >= 2.0  # Retry-After is a lower bound, not a speed goal


def test_an_unparseable_record_goes_to_the_dlq_and_the_partition_keeps_flowing(
    push: Push, slack: RunningSlack
) -> None:
    store, customer = _uid("S"), _uid("c")
    target = f"tok-{customer}"
    push.register(customer, target)
    order_topic = push.topics["order"]
    after = status_changed(store, customer, OrderStatus.READY)
    push.produce((order_topic, store, b'{"type": "order.placed", "oops'), after)

    wait_for("the event after the bad record", lambda: len(_sent_to(push.fcm, target)) == 1)
    wait_for("the Slack report", lambda: bool(slack.fake.received()))
    report = slack.fake.received()[0]["text"]
    assert f"{order_topic}.dlq" in report
    assert "unparseable" in report

    async def read_dlq() -> list[Any]:
        consumer = AIOKafkaConsumer(
            f"{order_topic}.dlq",
            bootstrap_servers=push.bootstrap,
            group_id=_uid("dlq-reader"),
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            batches = await consumer.getmany(timeout_ms=5000)
            return [m for records in batches.values() for m in records]
        finally:
            await consumer.stop()

    (dead,) = asyncio.run(read_dlq())
    headers = {k: v.decode() for k, v in dead.headers}
    assert dead.value == b'{"type": "order.placed", "oops'
    assert headers["dlq_original_topic"] == order_topic
    assert headers["dlq_reason"].startswith("unparseable event")
    assert int(headers["dlq_original_offset"]) >= 0


def test_a_deal_reaches_saved_places_within_their_radius_unless_in_quiet_hours(
    push: Push,
) -> None:
    # A random spot in Korea: saved places of earlier runs stay in the shared database.
    lat, lon = 34.5 + random.random() * 3, 126.8 + random.random() * 2
    near, far, sleeping, fan = _uid("c"), _uid("c"), _uid("c"), _uid("c")
    for user in (near, far, sleeping, fan):
        push.register(user, f"tok-{user}")
    home = {"lat": lat, "lon": lon, "radius_m": 1000}
    for user in (near, sleeping):
        assert (
            push.client.put(
                "/subscriptions/home", json=home, headers=TOKENS.headers(user, ["customer"])
            ).status_code
            == 200
        )
    # `far` saved home 400 m south: the deal 800 m north of the others' home is 1,200 m away.
    far_home = {**home, "lat": lat - 400 / METRES_PER_DEGREE_LAT}
    push.client.put("/subscriptions/home", json=far_home, headers=TOKENS.headers(far, ["customer"]))
    local = datetime.now(SEOUL)
    quiet = {
        "quiet_start": (local - timedelta(hours=1)).strftime("%H:%M"),
        "quiet_end": (local + timedelta(hours=1)).strftime("%H:%M"),
    }
    assert (
        push.client.put(
            "/preferences", json=quiet, headers=TOKENS.headers(sleeping, ["customer"])
        ).status_code
        == 200
    )
    store = _uid("S")
    push.produce(
        FavoriteChanged(
            key=store, data=FavoriteChangedData(store_id=store, customer_id=fan, favorite=True)
        )
    )
    deal = deal_at(store, lat + 800 / METRES_PER_DEGREE_LAT, lon)
    push.produce(deal)

    wait_for(
        "near and fan notified", lambda: all(_sent_to(push.fcm, f"tok-{u}") for u in (near, fan))
    )

    async def statuses(s: Any) -> dict[str, str]:
        rows = await s.scalars(select(Delivery).where(Delivery.event_id == deal.event_id))
        return {d.user_id: d.status for d in rows}

    assert push.query(statuses) == {
        near: DeliveryStatus.SENT,
        fan: DeliveryStatus.SENT,
        sleeping: DeliveryStatus.HELD,
    }
    assert _sent_to(push.fcm, f"tok-{far}") == []
    assert _sent_to(push.fcm, f"tok-{sleeping}") == []
    (sent,) = [r for r in push.fcm.fake.accepted() if r.target == f"tok-{near}"]
    assert sent.message["notification"]["title"] == "을지로 김밥 마감 할인 44%"
    assert sent.data["route"] == f"magam://deals/{deal.data.deal_id}"
