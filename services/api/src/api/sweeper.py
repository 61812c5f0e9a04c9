"""Time-driven changes: deals close at their pickup end, orders not picked up expire, and the
markdown schedule's price drops are announced. Safe on every replica (rows are claimed with
``FOR UPDATE SKIP LOCKED``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api import outbox
from api.deal import repository as deals
from api.deal.pricing import next_change_at
from api.deal.service import steps_of, stock_changed
from api.order import repository as orders
from api.order.service import expire_order
from api.store import repository as stores
from contracts import StockChangeReason as Reason

log = logging.getLogger(__name__)
BATCH = 200


async def sweep(session: AsyncSession, now: datetime) -> dict[str, int]:
    """One pass; returns what it changed."""
    expired = 0
    for order in await orders.expirable(session, now, BATCH):
        await expire_order(session, order, now)
        expired += 1
    closed = 0
    for deal in await deals.open_deals_ending_before(session, now, BATCH):
        deal.closed_at, deal.next_markdown_at = deal.pickup_end_at, None
        store = await stores.get(session, deal.store_id)
        assert store is not None
        outbox.add(session, stock_changed(deal, store, Reason.CLOSED, now))
        closed += 1
    repriced = 0
    for deal in await deals.deals_due_for_markdown(session, now, BATCH):
        deal.next_markdown_at = next_change_at(steps_of(deal), deal.pickup_end_at, now)
        store = await stores.get(session, deal.store_id)
        assert store is not None
        outbox.add(session, stock_changed(deal, store, Reason.REPRICED, now))
        repriced += 1
    return {"expired": expired, "closed": closed, "repriced": repriced}


class Sweeper:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        interval_s: float,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._interval_s = interval_s
        self._clock = clock
        self._stopping = asyncio.Event()

    async def run_once(self) -> dict[str, int]:
        async with self._sessions() as session, session.begin():
            return await sweep(session, self._clock())

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                changed = await self.run_once()
                if any(changed.values()):
                    log.info("sweep", extra=changed)
            except Exception as exc:
                log.warning("sweep failed", extra={"error": repr(exc)[:300]})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._interval_s)

    async def stop(self) -> None:
        self._stopping.set()
