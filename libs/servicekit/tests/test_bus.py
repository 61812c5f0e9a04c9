import asyncio
import uuid
from datetime import UTC, datetime

from contracts import StockChanged, StockChangedData, StockChangeReason, parse_event
from servicekit.bus import IncomingRecord, InProcessBus, record_for


def _event(store: str, traceparent: str | None = None) -> StockChanged:
    return StockChanged(
        key=store,
        occurred_at=datetime.now(UTC),
        traceparent=traceparent,
        data=StockChangedData(
            deal_id=uuid.uuid4(),
            store_id=store,
            quantity_available=3,
            price_krw=3000,
            reason=StockChangeReason.ORDERED,
            live=True,
            lat=37.55,
            lon=127.04,
        ),
    )


def test_record_for_keys_by_store_and_carries_the_traceparent() -> None:
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    record = record_for(_event("S1", tp))

    assert record.topic == "stock"
    assert record.key == b"S1"
    assert ("traceparent", tp.encode()) in record.headers
    assert parse_event(record.value).key == "S1"


async def test_every_group_sees_every_record_once_in_order() -> None:
    bus = InProcessBus()
    events = [_event(f"S{i}") for i in range(5)]
    seen: dict[str, list[str]] = {"push": [], "geofence": []}

    async def run(group: str) -> None:
        subscription = bus.subscription(group, ["stock"])

        async def handle(record: IncomingRecord) -> None:
            seen[group].append(parse_event(record.value).key)
            if len(seen[group]) == len(events):
                await subscription.stop()

        await subscription.run(handle)

    consumers = [asyncio.create_task(run(g)) for g in seen]
    publisher = bus.publisher()
    for event in events:
        await publisher.send(record_for(event))
    await asyncio.wait_for(asyncio.gather(*consumers), timeout=5)

    assert seen["push"] == seen["geofence"] == [e.key for e in events]
