"""The transactional outbox: events are rows written with the change, published by a relay.

``add(session, event)`` runs inside the business transaction, so an event exists if and only if
its change committed. The relay publishes rows in id order per shard (shard = hash of the key,
i.e. the store) and holds a transaction-scoped advisory lock per shard, so several relays can run
at once without reordering one store's events; rows are marked sent only after the broker acked.
A relay crash between the ack and the mark re-sends those rows: duplicates are possible only as the
same event_id, which consumers deduplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Uuid,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base
from contracts import Event
from servicekit.bus import OutgoingRecord, Publisher, record_for
from servicekit.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE

log = logging.getLogger(__name__)

# Fixed for the table's life: changing it would move keys between shards mid-flight.
SHARDS = 16


def shard_of(key: str) -> int:
    return zlib.crc32(key.encode()) % SHARDS


class OutboxEvent(Base):
    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    type: Mapped[str] = mapped_column(String(40))
    topic: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(40))
    shard: Mapped[int] = mapped_column(Integer)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[list[list[str]]] = mapped_column(JSON)
    traceparent: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    __table_args__ = (
        Index(
            "ix_outbox_events_unsent",
            "shard",
            "id",
            postgresql_where=text("sent_at IS NULL"),
            sqlite_where=text("sent_at IS NULL"),
        ),
    )


def row_values(event: Event) -> dict[str, Any]:
    """The outbox row of an event as column values (for statements that insert it themselves)."""
    record = record_for(event)
    return {
        "event_id": event.event_id,
        "type": event.type,
        "topic": record.topic,
        "key": event.key,
        "shard": shard_of(event.key),
        "payload": record.value,
        "headers": [[k, v.decode()] for k, v in record.headers],
        "traceparent": event.traceparent,
    }


def add(session: AsyncSession, event: Event) -> None:
    """Stages an event in the caller's transaction."""
    session.add(OutboxEvent(**row_values(event)))


def _record(row: OutboxEvent) -> OutgoingRecord:
    return OutgoingRecord(
        topic=row.topic,
        key=row.key.encode(),
        value=row.payload,
        headers=[(k, v.encode()) for k, v in row.headers],
    )


async def backlog(session: AsyncSession) -> tuple[int, datetime | None]:
    """How many events wait to be published, and when the oldest was written."""
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(OutboxEvent.created_at)).where(
                OutboxEvent.sent_at.is_(None)
            )
        )
    ).one()
    return int(count), oldest


class OutboxRelay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        publisher: Publisher,
        *,
        batch_size: int = 200,
        idle_poll_s: float = 0.05,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._batch_size = batch_size
        self._idle_poll_s = idle_poll_s
        self._stopping = asyncio.Event()
        self.published = 0

    async def _publish_shard(self, session: AsyncSession, shard: int) -> int:
        if session.get_bind().dialect.name == "postgresql":
            locked = await session.scalar(
                select(func.pg_try_advisory_xact_lock(0x6D61_6761, shard))
            )
            if not locked:
                return 0  # another relay owns this shard right now
        rows = (
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.sent_at.is_(None), OutboxEvent.shard == shard)
                .order_by(OutboxEvent.id)
                .limit(self._batch_size)
            )
        ).all()
        if not rows:
            return 0
        await self._publisher.send_batch([_record(r) for r in rows])
        await session.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id.in_([r.id for r in rows]))
            .values(sent_at=func.now())
        )
        return len(rows)

    async def publish_pending(self) -> int:
        """One pass over every shard; returns how many events were published."""
        total = 0
        for shard in range(SHARDS):
            async with self._sessions() as session, session.begin():
                total += await self._publish_shard(session, shard)
        self.published += total
        return total

    async def report_backlog(self) -> None:
        """Updates the backlog gauges (a count of unsent rows; run about once a second)."""
        async with self._sessions() as session:
            count, oldest = await backlog(session)
        OUTBOX_BACKLOG.labels("api").set(count)
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        OUTBOX_OLDEST_AGE.labels("api").set(max(age, 0.0))

    async def _report_forever(self) -> None:
        # Its own loop: while the broker is away a relay pass can block for seconds, and the
        # backlog must still be visible, rising, in /metrics.
        while not self._stopping.is_set():
            with contextlib.suppress(Exception):
                await self.report_backlog()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=1.0)

    async def run(self) -> None:
        reporter = asyncio.create_task(self._report_forever(), name="outbox-backlog")
        try:
            await self._relay_forever()
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter

    async def _relay_forever(self) -> None:
        delay = self._idle_poll_s
        while not self._stopping.is_set():
            try:
                published = await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker or the database is away: back off, keep rows
                log.warning("outbox relay pass failed", extra={"error": repr(exc)[:300]})
                delay = min(max(delay * 2, 0.5), 5.0)
            else:
                delay = 0 if published else self._idle_poll_s
            if delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    async def stop(self) -> None:
        self._stopping.set()
