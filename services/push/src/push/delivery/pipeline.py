"""One batch of records from the bus, end to end: parse, claim and plan (one transaction), send
what is pending (recording each answer), dead-letter what cannot be delivered. The caller commits
the offsets after ``handle_batch`` (or the delivery ``plan_batch`` returned) returns, so
everything here is durable first."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts import Event, parse_event
from push.alerts import OperatorChannel
from push.delivery import repository
from push.delivery.models import Delivery, DeliveryStatus
from push.delivery.sender import Notification, Outcome, Sender, SendResult
from push.delivery.service import Policy, claim_events, plan_deliveries, release_held
from push.device.models import Device
from servicekit.bus import Headers, IncomingRecord, OutgoingRecord, Publisher
from servicekit.metrics import PUSHES
from servicekit.telemetry import consumer_span, tracing_active

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: The second half of a batch: send, record, dead-letter; durable once it returns.
Deliver = Callable[[], Coroutine[Any, Any, None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0

    def wait_s(self, attempt: int, retry_after_s: float | None) -> float:
        """Exponential backoff, but never sooner than the server's Retry-After."""
        backoff = min(self.backoff_base_s * float(2 ** (attempt - 1)), self.backoff_max_s)
        return max(backoff, retry_after_s or 0.0)


def sampled(traceparent: bytes | None) -> bool:
    """Whether a W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``) asks for recording."""
    if traceparent is None or len(traceparent) < len(b"00-") + 32 + 1 + 16 + 3:
        return False
    try:
        return bool(int(traceparent[53:55], 16) & 1)
    except ValueError:
        return False


def dlq_record(record: IncomingRecord, reason: str, suffix: str) -> OutgoingRecord:
    """The original record on ``<topic><suffix>``, its origin and the reason in headers."""
    headers = [
        *record.headers,
        ("dlq_original_topic", record.topic.encode()),
        ("dlq_original_partition", str(record.partition).encode()),
        ("dlq_original_offset", str(record.offset).encode()),
        ("dlq_reason", reason[:1000].encode()),
        ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
    ]
    return OutgoingRecord(
        topic=f"{record.topic}{suffix}", key=record.key or b"", value=record.value, headers=headers
    )


class Pipeline:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        sender: Sender,
        dlq: Publisher,
        operators: OperatorChannel,
        policy: Policy,
        retry: RetryPolicy,
        dlq_suffix: str = ".dlq",
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        #: Held deliveries claimed per transaction when quiet hours end.
        self.release_page = 500
        self._sender = sender
        self._dlq = dlq
        self._operators = operators
        self._policy = policy
        self._retry = retry
        self._dlq_suffix = dlq_suffix
        self.sent = 0
        # The trace context each event arrived with, so its processing span and FCM calls join
        # the trace that began with the customer's request (bounded: emptied after each batch).
        self._trace_headers: dict[uuid.UUID, Headers] = {}

    async def handle_batch(self, records: Sequence[IncomingRecord]) -> None:
        """Handles records of one partition, in order; returns once all of it is durable."""
        deliver = await self.plan_batch(records)
        await deliver()

    async def plan_batch(self, records: Sequence[IncomingRecord]) -> Deliver:
        """Claims and plans records of one partition (one committed transaction); returns what
        is left: sending what is pending and dead-lettering what cannot be delivered, durable
        once it returns.

        The consumer plans a partition's next batch while this one's notifications are being
        sent, and runs the deliveries one at a time, in order; an event seen again before its
        first delivery finished is left to the later delivery, which reads what is pending
        only then.
        """
        events: list[tuple[IncomingRecord, Event]] = []
        dead_letters: list[tuple[IncomingRecord, str]] = []
        for record in records:
            try:
                events.append((record, parse_event(record.value)))
            except ValidationError as exc:
                dead_letters.append((record, f"unparseable event: {str(exc)[:400]}"))
        # Partitions' batches run side by side: add this batch's contexts, drop them when done.
        traced = {e.event_id: r.headers for r, e in events if sampled(r.header("traceparent"))}
        self._trace_headers.update(traced)

        def forget_traces() -> None:
            for event_id in traced:
                self._trace_headers.pop(event_id, None)

        try:
            planned = await self._plan(events)
        except BaseException:
            forget_traces()
            raise

        async def deliver() -> None:
            try:
                await self._deliver(events, dead_letters, planned)
            finally:
                forget_traces()

        return deliver

    async def _plan(self, events: list[tuple[IncomingRecord, Event]]) -> list[Delivery] | None:
        """The deliveries planned for the batch, or None if some event came again (then what is
        pending is read when delivering)."""
        if not events:
            return []
        now = self._clock()
        async with self._sessions() as session, session.begin():
            new = await claim_events(session, [(e, r) for r, e in events])
            fresh: dict[uuid.UUID, Event] = {}
            for _, event in events:
                if event.event_id in new:
                    fresh.setdefault(event.event_id, event)
            planned = await plan_deliveries(session, list(fresh.values()), self._policy, now)
            session.expunge_all()
        # No redelivery in the batch: nothing older can be pending for these events, so what
        # was just planned is the whole to-do (one read of the database less).
        return planned if all(e.event_id in new for _, e in events) else None

    async def _deliver(
        self,
        events: list[tuple[IncomingRecord, Event]],
        dead_letters: list[tuple[IncomingRecord, str]],
        planned: list[Delivery] | None,
    ) -> None:
        if events:
            if planned is not None:
                failed = await self._send_deliveries(planned)
            else:
                failed = await self._send_pending([e.event_id for _, e in events])
            dead_letters = dead_letters + [
                (r, failed[e.event_id]) for r, e in events if e.event_id in failed
            ]
        if dead_letters:
            await self._dead_letter(dead_letters)

    async def _pending(self, event_ids: list[uuid.UUID]) -> list[Delivery]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Delivery)
                .where(
                    Delivery.event_id.in_(list(dict.fromkeys(event_ids))),
                    Delivery.status == DeliveryStatus.PENDING,
                )
                .order_by(Delivery.id)
            )
            return list(rows)

    async def _send_pending(self, event_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        """Sends every pending delivery of these events; the events that still fail, and why.

        Chunk by chunk, each chunk's answers recorded before the next is sent: a crash can
        repeat at most one chunk (``fcm.batch_size`` × ``fcm.concurrent_batches``, the FCM calls
        the sender runs side by side; 1 × 1 makes it at most one message).
        """
        return await self._send_deliveries(await self._pending(event_ids))

    async def _send_deliveries(self, pending: list[Delivery]) -> dict[uuid.UUID, str]:
        failed: dict[uuid.UUID, str] = {}
        size = self._sender.max_batch * self._sender.concurrency
        for start in range(0, len(pending), size):
            for event_id, reason in (await self._send_chunk(pending[start : start + size])).items():
                failed.setdefault(event_id, reason)
        return failed

    async def _send_chunk(self, todo: list[Delivery]) -> dict[uuid.UUID, str]:
        failed: dict[uuid.UUID, str] = {}
        attempt = 0
        while todo:
            attempt += 1
            results = await self._send_traced(todo)
            retry = [
                (d, r) for d, r in zip(todo, results, strict=True) if r.outcome == Outcome.RETRY
            ]
            final = [
                (d, r) for d, r in zip(todo, results, strict=True) if r.outcome != Outcome.RETRY
            ]
            exhausted = attempt >= self._retry.max_attempts
            for d, r in final:
                if r.outcome == Outcome.REJECTED:
                    failed.setdefault(d.event_id, f"FCM rejected the message: {r.reason}")
            if exhausted:
                for d, r in retry:
                    failed.setdefault(
                        d.event_id, f"FCM still failing after {attempt} attempts: {r.reason}"
                    )
            await self._record(final, retry if exhausted else [])
            if exhausted or not retry:
                break
            wait = self._retry.wait_s(attempt, max((r.retry_after_s or 0.0) for _, r in retry))
            log.warning(
                "fcm asked us to retry",
                extra={
                    "count": len(retry),
                    "attempt": attempt,
                    "wait_s": wait,
                    "reason": retry[0][1].reason,
                },
            )
            await asyncio.sleep(wait)
            todo = [d for d, _ in retry]
        return failed

    async def _send_traced(self, todo: list[Delivery]) -> list[SendResult]:
        """Sends a chunk; with tracing on, the messages of each event whose trace is sampled go
        out inside a processing span that continues the event's trace, so the FCM HTTP calls are
        children of it. The rest go out together in one call: a span per event (and an FCM call
        per event under it) for traces nobody records cost ~1 ms of CPU per event."""

        def notification(d: Delivery) -> Notification:
            return Notification(d.target_kind, d.target, d.title, d.body, d.data)

        if not tracing_active() or not self._trace_headers:
            return await self._sender.send([notification(d) for d in todo])
        plain: list[int] = []
        by_event: dict[uuid.UUID, list[int]] = {}
        for index, delivery in enumerate(todo):
            if delivery.event_id in self._trace_headers:
                by_event.setdefault(delivery.event_id, []).append(index)
            else:
                plain.append(index)

        async def send_event(event_id: uuid.UUID, indexes: list[int]) -> list[SendResult]:
            headers = self._trace_headers.get(event_id, [])
            with consumer_span("push deliver", headers, event_id=str(event_id)):
                results = await self._sender.send([notification(todo[i]) for i in indexes])
                log.info(
                    "notifications sent",
                    extra={
                        "event_id": str(event_id),
                        "messages": len(indexes),
                        "accepted": sum(1 for r in results if r.outcome == Outcome.SENT),
                    },
                )
                return results

        async def send_plain() -> list[SendResult]:
            return await self._sender.send([notification(todo[i]) for i in plain]) if plain else []

        # At most the chunk is in flight, as without tracing: the crash bound stays the same.
        answers = await asyncio.gather(
            send_plain(), *(send_event(e, ix) for e, ix in by_event.items())
        )
        results: list[SendResult | None] = [None] * len(todo)
        for indexes, answer in zip([plain, *by_event.values()], answers, strict=True):
            for index, result in zip(indexes, answer, strict=True):
                results[index] = result
        return [r for r in results if r is not None]

    async def _record(
        self, final: list[tuple[Delivery, SendResult]], given_up: list[tuple[Delivery, SendResult]]
    ) -> None:
        now = self._clock()
        updates: list[dict[str, object]] = []
        dead: set[tuple[str, str]] = set()
        for d, r in final:
            if r.outcome == Outcome.SENT:
                updates.append(
                    {
                        "id": d.id,
                        "status": DeliveryStatus.SENT,
                        "fcm_name": r.message_id,
                        "sent_at": now,
                        "attempts": d.attempts + 1,
                    }
                )
            elif r.outcome == Outcome.DEAD_TARGET:
                dead.add((d.target_kind, d.target))
                updates.append(
                    {
                        "id": d.id,
                        "status": DeliveryStatus.DROPPED,
                        "error": r.reason,
                        "attempts": d.attempts + 1,
                    }
                )
            else:
                updates.append(
                    {
                        "id": d.id,
                        "status": DeliveryStatus.FAILED,
                        "error": r.reason,
                        "attempts": d.attempts + 1,
                    }
                )
        updates += [
            {
                "id": d.id,
                "status": DeliveryStatus.DEAD_LETTERED,
                "error": r.reason,
                "attempts": d.attempts + 1,
            }
            for d, r in given_up
        ]
        async with self._sessions() as session, session.begin():
            await repository.record(session, updates)
            for kind, target in dead:
                await session.execute(
                    delete(Device).where(Device.target_kind == kind, Device.target == target)
                )
                log.info("device removed: FCM says it is gone", extra={"target_kind": kind})
        self.sent += sum(1 for _, r in final if r.outcome == Outcome.SENT)
        for _, r in [*final, *given_up]:
            reason = "" if r.outcome == Outcome.SENT else (r.reason or "")[:40]
            PUSHES.labels("push", str(r.outcome), reason).inc()

    async def release_held(self) -> int:
        """Sends what quiet hours held back once they are over (stale ones expire, the daily
        cap still applies); returns how many were accepted. Safe on several replicas."""
        now = self._clock()
        sent = 0
        after: tuple[datetime, int] | None = None
        while True:  # page by page, each claimed, sent and recorded before the next
            async with self._sessions() as session, session.begin():
                release = await release_held(
                    session, self._policy, now, limit=self.release_page, after=after
                )
                session.expunge_all()  # the rows outlive the session: plain values from here
            if release.expired or release.capped:
                log.info(
                    "held notifications not sent",
                    extra={"expired": release.expired, "capped": release.capped},
                )
            if release.pending:
                sent += await self._send_released(release.pending)
            if release.claimed < self.release_page or release.last is None:
                break
            after = release.last
        if sent:
            log.info("held notifications released", extra={"sent": sent})
        return sent

    async def _send_released(self, pending: list[Delivery]) -> int:
        before = self.sent
        failed = await self._send_deliveries(pending)
        if failed:
            reason = next(iter(failed.values()))
            log.error("held notifications failed", extra={"events": len(failed), "reason": reason})
            await self._operators.report(
                f":warning: push could not deliver {len(failed)} held event(s) after quiet "
                f"hours: {reason[:300]}"
            )
        return self.sent - before

    async def _dead_letter(self, dead_letters: list[tuple[IncomingRecord, str]]) -> None:
        await self._dlq.send_batch(
            [dlq_record(record, reason, self._dlq_suffix) for record, reason in dead_letters]
        )
        for record, reason in dead_letters:
            log.error(
                "event dead-lettered",
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "reason": reason[:300],
                },
            )
        first_record, first_reason = dead_letters[0]
        more = f" (+{len(dead_letters) - 1} more)" if len(dead_letters) > 1 else ""
        await self._operators.report(
            f":rotating_light: push dead-lettered {len(dead_letters)} event(s){more}: "
            f"{first_record.topic}[{first_record.partition}]@{first_record.offset} → "
            f"{first_record.topic}{self._dlq_suffix}: {first_reason[:300]}"
        )
