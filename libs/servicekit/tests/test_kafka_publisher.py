"""KafkaPublisher's choice of send: a record that names a sampled trace goes through the tracing
wrapper inside that trace; any other record goes out as stored, without a span."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry import trace

from servicekit import kafka
from servicekit.bus import OutgoingRecord
from servicekit.kafka import KafkaPublisher

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
UNSAMPLED = f"00-{TRACE_ID}-00f067aa0ba902b7-00"


class _Send:
    """Stands for aiokafka's ``send`` as the instrumentation leaves it: a wrapper whose
    ``__wrapped__`` is the plain method."""

    def __init__(self) -> None:
        self.traced: list[tuple[str, list[tuple[str, bytes]], str]] = []
        self.plain: list[tuple[str, list[tuple[str, bytes]]]] = []

    async def _ack(self) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def __call__(self, topic: str, value: bytes, **kw: Any) -> asyncio.Future[None]:
        context = trace.get_current_span().get_span_context()
        self.traced.append((topic, kw["headers"], format(context.trace_id, "032x")))
        return await self._ack()

    async def __wrapped__(self, topic: str, value: bytes, **kw: Any) -> asyncio.Future[None]:
        self.plain.append((topic, kw["headers"]))
        return await self._ack()


async def test_only_records_that_name_a_trace_go_through_the_tracing_wrapper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka, "tracing_active", lambda: True)
    publisher = KafkaPublisher("127.0.0.1:1", client_id="test")
    await publisher._producer.stop()  # never started: only its client's resources go
    send = _Send()
    publisher._producer = type("Producer", (), {"send": send})()
    publisher._started.set()

    await publisher.send_batch(
        [
            OutgoingRecord("order", b"s-1", b"untraced", [("event_type", b"order.placed")]),
            OutgoingRecord(
                "order",
                b"s-1",
                b"traced",
                [("event_type", b"order.placed"), ("traceparent", TRACEPARENT.encode())],
            ),
            OutgoingRecord("stock", b"s-1", b"unsampled", [("traceparent", UNSAMPLED.encode())]),
            OutgoingRecord("stock", b"s-1", b"odd", [("traceparent", b"not-a-traceparent")]),
        ]
    )

    assert send.plain == [
        ("order", [("event_type", b"order.placed")]),
        ("stock", [("traceparent", UNSAMPLED.encode())]),  # its trace is not recorded anyway
        ("stock", [("traceparent", b"not-a-traceparent")]),
    ]
    # The traced record is sent inside its request's trace; the wrapper writes the header anew.
    assert send.traced == [("order", [("event_type", b"order.placed")], TRACE_ID)]
