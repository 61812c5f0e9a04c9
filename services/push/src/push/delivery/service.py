"""Handling one event from the bus: claim it once, then act on it."""

from __future__ import annotations

import logging

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import Event, parse_event
from push.delivery.models import ProcessedEvent
from servicekit.bus import IncomingRecord

log = logging.getLogger(__name__)


async def claim_event(session: AsyncSession, event: Event, record: IncomingRecord) -> bool:
    """Records the event as processed; False when it already was (a redelivery)."""
    seen = await session.scalar(
        select(ProcessedEvent.event_id).where(ProcessedEvent.event_id == event.event_id)
    )
    if seen is not None:
        return False
    session.add(
        ProcessedEvent(
            event_id=event.event_id,
            type=event.type,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
    )
    await session.flush()
    return True


async def handle_record(session: AsyncSession, record: IncomingRecord) -> Event | None:
    """Parses and claims one record; returns the event when it is new and valid."""
    try:
        event = parse_event(record.value)
    except ValidationError as exc:
        log.error(
            "unparseable event skipped",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error": str(exc)[:500],
            },
        )
        return None
    if not await claim_event(session, event, record):
        log.info("duplicate event ignored", extra={"event_id": str(event.event_id)})
        return None
    log.info("event processed", extra={"event_id": str(event.event_id), "type": event.type})
    return event
