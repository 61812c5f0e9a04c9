"""Planning a batch at once decides exactly what planning its events one at a time decides: who
hears what, held and capped promotions, what the events teach (managers, favorites, deal names)
and expired holds — on the real PostgreSQL + PostGIS, each way in a database of its own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

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
    StockChanged,
    StockChangedData,
    StockChangeReason,
    serialize_event,
)
from push.alerts import LogChannel
from push.audience.models import KnownDeal, StoreFavorite, StoreManager
from push.db import Base
from push.delivery.models import Delivery, HeldDelivery
from push.delivery.pipeline import Pipeline, RetryPolicy
from push.delivery.sender import Notification, Outcome, SendResult
from push.delivery.service import Policy
from push.device.models import Device
from push.geo import LonLat
from push.subscription.models import NotificationPreference, SavedPlace
from servicekit.bus import IncomingRecord, OutgoingRecord
from servicekit.db import prepare_schema

pytestmark = pytest.mark.integration

SEOUL = ZoneInfo("Asia/Seoul")
NOW = datetime(2026, 11, 25, 23, 0, tzinfo=SEOUL)  # c3's quiet hours (22:00-07:00)
STORE, OTHER_STORE = "LBATCHPLANNING000001", "LBATCHPLANNING000002"
HERE = LonLat(127.0447, 37.5477)
METRES_PER_DEGREE_LAT = 111_320.0


class RecordingSender:
    """Accepts every message and remembers it (our Sender protocol, no network)."""

    max_batch = 500
    concurrency = 1

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    async def send(self, notifications: list[Notification]) -> list[SendResult]:
        self.sent += notifications
        return [SendResult(Outcome.SENT, message_id=f"m/{len(self.sent)}") for _ in notifications]

    async def aclose(self) -> None:
        return None


class NoDlq:
    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, record: OutgoingRecord) -> None:
        raise AssertionError(f"nothing should be dead-lettered: {record}")

    async def send_batch(self, records: Sequence[OutgoingRecord]) -> None:
        raise AssertionError(f"nothing should be dead-lettered: {records}")

    async def ping(self) -> None:
        return None


def _deal(deal_id: uuid.UUID, store: str, name: str, at: LonLat = HERE) -> DealPublished:
    return DealPublished(
        key=store,
        data=DealPublishedData(
            deal_id=deal_id,
            store_id=store,
            store_name=f"{name} 가게",
            name=name,
            original_price_krw=9000,
            price_krw=5000,
            quantity=3,
            pickup_start_at=NOW,
            pickup_end_at=NOW + timedelta(hours=2),
            lat=at.lat,
            lon=at.lon,
        ),
    )


def _stock(deal_id: uuid.UUID, store: str, reason: StockChangeReason, live: bool) -> StockChanged:
    return StockChanged(
        key=store,
        data=StockChangedData(
            deal_id=deal_id,
            store_id=store,
            quantity_available=2 if live else 0,
            price_krw=5000,
            reason=reason,
            live=live,
            lat=HERE.lat,
            lon=HERE.lon,
        ),
    )


def _order(store: str) -> OrderPlaced:
    return OrderPlaced(
        key=store,
        data=OrderPlacedData(
            order_id=uuid.uuid4(),
            deal_id=uuid.uuid4(),
            store_id=store,
            store_name="마감빵집",
            deal_name="소금빵",
            customer_id="c9",
            quantity=1,
            unit_price_krw=1800,
            total_krw=1800,
            pickup_end_at=NOW + timedelta(hours=1),
        ),
    )


def _favorite(store: str, customer: str, on: bool) -> FavoriteChanged:
    return FavoriteChanged(
        key=store, data=FavoriteChangedData(store_id=store, customer_id=customer, favorite=on)
    )


def _approved(store: str, user: str) -> ManagerApproved:
    return ManagerApproved(
        key=store,
        data=ManagerApprovedData(
            claim_id=uuid.uuid4(), store_id=store, user_id=user, approved_by="a"
        ),
    )


def _status(store: str, customer: str) -> OrderStatusChanged:
    return OrderStatusChanged(
        key=store,
        data=OrderStatusChangedData(
            order_id=uuid.uuid4(),
            deal_id=uuid.uuid4(),
            store_id=store,
            store_name="마감빵집",
            deal_name="소금빵",
            customer_id=customer,
            from_status=OrderStatus.PLACED,
            to_status=OrderStatus.ACCEPTED,
            changed_by="m1",
        ),
    )


def _scenario() -> tuple[list[Event], list[Event]]:
    """Events before the batch (planned in both databases alike), and the batch: each event
    depends on what earlier ones in it taught."""
    held_before, first, unknown = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    order_before_manager = _order(STORE)
    order = _order(STORE)
    far = LonLat(HERE.lon, HERE.lat + 0.1)  # 11 km: no saved place reaches it
    before: list[Event] = [
        _favorite(OTHER_STORE, "c3", True),
        _deal(held_before, OTHER_STORE, "김밥", far),  # held for c3: quiet hours
        _deal(uuid.uuid4(), OTHER_STORE, "떡볶이", far),  # held too
    ]
    batch: list[Event] = [
        order_before_manager,  # nobody manages the store yet: nobody hears
        _approved(STORE, "m1"),
        order,  # m1 hears
        _favorite(STORE, "c1", True),
        _favorite(STORE, "c3", True),
        _deal(first, STORE, "소금빵"),  # c1 (favorite), c2 (saved place), c3 held
        _favorite(STORE, "c1", False),
        _stock(first, STORE, StockChangeReason.RESTOCKED, True),  # c2 is capped at 1; c3 held
        _stock(unknown, STORE, StockChangeReason.RESTOCKED, True),  # a deal push never saw
        _stock(held_before, OTHER_STORE, StockChangeReason.ORDERED, False),  # sold out: expire
        _stock(first, STORE, StockChangeReason.ORDERED, True),  # nobody hears an order's stock
        _status(STORE, "c1"),
        _approved(OTHER_STORE, "m1"),
        _order(OTHER_STORE),
        order,  # the same event again (a redelivery within the batch): nothing twice
    ]
    return before, batch


async def _plan(dsn: str, before: list[Event], batch: list[Event], one_by_one: bool) -> Any:
    engine = create_async_engine(dsn)
    try:
        await prepare_schema(engine, Base.metadata)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions() as session, session.begin():
            session.add_all(
                Device(
                    user_id=user,
                    target_kind="token",
                    target=f"phone-{user}",
                    platform="android",
                    locale="ko-KR",
                    last_seen_at=NOW,
                )
                for user in ("m1", "c1", "c2", "c3")
            )
            north = 800 / METRES_PER_DEGREE_LAT
            session.add(
                SavedPlace(
                    user_id="c2",
                    label="home",
                    location=LonLat(HERE.lon, HERE.lat + north),
                    radius_m=1000,
                )
            )
            session.add(NotificationPreference(user_id="c2", daily_cap=1))
            session.add(
                NotificationPreference(
                    user_id="c3", quiet_start_minute=22 * 60, quiet_end_minute=7 * 60
                )
            )
        sender = RecordingSender()
        pipeline = Pipeline(
            sessions,
            sender,
            NoDlq(),
            LogChannel(),
            Policy(SEOUL, default_daily_cap=10),
            RetryPolicy(),
            clock=lambda: NOW.astimezone(UTC),
        )
        offsets = iter(range(1_000_000))

        def record(event: Event) -> IncomingRecord:
            return IncomingRecord(
                "t", 0, next(offsets), event.key.encode(), serialize_event(event), []
            )

        for event in before:
            await pipeline.handle_batch([record(event)])
        if one_by_one:
            for event in batch:
                await pipeline.handle_batch([record(event)])
        else:
            await pipeline.handle_batch([record(e) for e in batch])
        async with sessions() as session:
            return await _outcome(session, sender)
    finally:
        await engine.dispose()


async def _outcome(session: AsyncSession, sender: RecordingSender) -> dict[str, Any]:
    def utc(at: datetime | None) -> datetime | None:  # SQLite gives naive UTC back
        return at if at is None or at.tzinfo else at.replace(tzinfo=UTC)

    deliveries = [
        (
            str(d.event_id),
            d.target,
            d.status,
            (d.user_id, d.target_kind, d.title, d.body, sorted(d.data.items()), d.promotional),
            (d.attempts, d.error, d.fcm_name is not None, utc(d.sent_at), utc(d.created_at)),
        )
        for d in await session.scalars(select(Delivery))
    ]
    held = (await session.execute(select(HeldDelivery.user_id, HeldDelivery.deal_id))).all()
    return {
        "deliveries": sorted(deliveries),
        "sent": sorted((n.target, n.title, n.body, sorted(n.data.items())) for n in sender.sent),
        "held": sorted((u, str(d)) for u, d in held),
        "managers": sorted(
            (await session.execute(select(StoreManager.store_id, StoreManager.user_id))).all()
        ),
        "favorites": sorted(
            (await session.execute(select(StoreFavorite.store_id, StoreFavorite.customer_id))).all()
        ),
        "deals": sorted(
            (str(d.deal_id), d.store_name, d.name) for d in await session.scalars(select(KnownDeal))
        ),
    }


def test_a_batch_planned_at_once_decides_what_its_events_one_by_one_decide(
    infra: Infra, tmp_path: Path
) -> None:
    """PostgreSQL's one-statement batch SQL against SQLite's plain statements (and PostGIS
    against the local profile's haversine) too: the four ways decide the same."""
    before, batch = _scenario()
    with (
        infra.scratch_database("push_plan_one") as one_db,
        infra.scratch_database("push_plan_all") as all_db,
    ):
        dsn = (
            f"postgresql+psycopg://{infra.pg_user}:{infra.pg_password}"
            f"@{infra.pg_host}:{infra.pg_port}/{{}}"
        )
        one = asyncio.run(_plan(dsn.format(one_db), before, batch, one_by_one=True))
        together = asyncio.run(_plan(dsn.format(all_db), before, batch, one_by_one=False))
    lite = f"sqlite+aiosqlite:///{tmp_path}/{{}}.db"
    lite_one = asyncio.run(_plan(lite.format("one"), before, batch, one_by_one=True))
    lite_together = asyncio.run(_plan(lite.format("all"), before, batch, one_by_one=False))
    assert together == one
    assert lite_one == one
    assert lite_together == one
    # And what they decided is what the rules say.
    heard = {(target, title) for target, title, _, _ in one["sent"]}
    statuses = [status for _, _, status, *_ in one["deliveries"]]
    # The two orders after approvals (the repeated one once); not the one before.
    assert sum(1 for target, *_ in one["sent"] if target == "phone-m1") == 2
    assert ("phone-c2", "소금빵 가게 마감 할인 44%") in heard  # geo, within 1 km
    assert ("phone-c2", "소금빵 가게 재입고") not in heard  # capped at 1 a day
    assert ("phone-c1", "소금빵 가게 재입고") not in heard  # no longer a favoriter
    assert ("phone-c1", "마감빵집") in heard  # order status
    assert statuses.count("capped") == 2  # c2: the restock and the unknown deal's restock
    assert statuses.count("expired") == 1  # c3's 김밥, sold out while held
    assert len(one["held"]) == 4  # c3: 떡볶이 before; the deal and two restocks in the batch
    assert ("phone-c2", "단골 가게 재입고") not in heard
    assert (STORE, "m1") in one["managers"]
    assert (STORE, "c1") not in one["favorites"]
