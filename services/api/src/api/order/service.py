"""Order use cases: reserve without overselling, then the pickup flow; every change recorded."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from asyncio import Future
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Literal

import psycopg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from api import outbox
from api.claim.service import ensure_manages
from api.deal import repository as deals
from api.deal.models import Deal
from api.deal.pricing import MarkdownStep, price_at
from api.deal.service import stock_changed
from api.errors import (
    DealNotFound,
    DealNotLive,
    InsufficientStock,
    InvalidInput,
    InvalidTransition,
    OrderNotFound,
    PriceChanged,
    WrongPickupCode,
)
from api.order import repository
from api.order.models import ACTIVE_STATUSES, Order, OrderChange
from api.order.schemas import (
    OrderChangeRead,
    OrderCreate,
    OrderDetail,
    OrderPage,
    OrderRead,
    OrderReject,
    PickupCheck,
    RejectReason,
)
from api.store import repository as stores
from api.store.models import Store
from contracts import (
    OrderPlaced,
    OrderPlacedData,
    OrderStatus,
    OrderStatusChanged,
    OrderStatusChangedData,
    StockChanged,
    StockChangedData,
)
from contracts import StockChangeReason as Reason
from servicekit.security import Principal
from servicekit.telemetry import current_traceparent

log = logging.getLogger(__name__)

Reservation = Literal["atomic_update", "select_for_update"]
SYSTEM_ACTOR = "system"


def to_read(order: Order, *, for_customer: bool) -> OrderRead:
    read = OrderRead.model_validate(order)
    return read if for_customer else read.model_copy(update={"pickup_code": None})


async def _detail(session: AsyncSession, order: Order, *, for_customer: bool) -> OrderDetail:
    await session.refresh(order)
    changes = [
        OrderChangeRead.model_validate(c) for c in await repository.history(session, order.id)
    ]
    return OrderDetail(**to_read(order, for_customer=for_customer).model_dump(), history=changes)


async def _store(session: AsyncSession, store_id: str) -> Store:
    store = await stores.get(session, store_id)
    assert store is not None, "orders and deals reference an existing store"
    return store


def _record_change(
    session: AsyncSession,
    order: Order,
    from_status: OrderStatus | None,
    actor_id: str,
    reason: str | None = None,
) -> None:
    session.add(
        OrderChange(
            order_id=order.id,
            from_status=from_status,
            to_status=order.status,
            actor_id=actor_id,
            reason=reason,
        )
    )


def new_order(
    deal: repository.DealToOrder, actor: Principal, data: OrderCreate, now: datetime
) -> tuple[repository.NewOrder, OrderRead, OrderPlaced, Callable[[int], StockChanged]]:
    """The order at the price shown now, its answer and its events (``PriceChanged`` when the
    customer saw another price); the stock event is built from the stock left."""
    steps = [MarkdownStep(s["minutes_before_end"], s["percent_off"]) for s in deal.markdown]
    price = price_at(deal.original_price_krw, deal.price_krw, steps, deal.pickup_end_at, now)
    if data.expected_unit_price_krw is not None and data.expected_unit_price_krw != price:
        raise PriceChanged(
            f"the price is now {price} KRW", field="expected_unit_price_krw", price_krw=price
        )
    order = repository.NewOrder(
        id=uuid.uuid4(),
        deal_id=deal.id,
        store_id=deal.store_id,
        customer_id=actor.user_id,
        quantity=data.quantity,
        unit_price_krw=price,
        pickup_code=f"{secrets.randbelow(1_000_000):06d}",
        at=now,
    )
    read = OrderRead(
        id=order.id,
        deal_id=order.deal_id,
        store_id=order.store_id,
        customer_id=order.customer_id,
        quantity=order.quantity,
        unit_price_krw=price,
        total_krw=price * order.quantity,
        status=OrderStatus.PLACED,
        reason=None,
        note=None,
        pickup_code=order.pickup_code,
        created_at=now,
        updated_at=now,
    )
    traceparent = current_traceparent()
    placed = OrderPlaced(
        key=deal.store_id,
        traceparent=traceparent,
        data=OrderPlacedData(
            order_id=order.id,
            deal_id=deal.id,
            store_id=deal.store_id,
            store_name=deal.store_name,
            deal_name=deal.name,
            customer_id=actor.user_id,
            quantity=order.quantity,
            unit_price_krw=price,
            total_krw=read.total_krw,
            pickup_end_at=deal.pickup_end_at,
        ),
    )

    def stock_event(left: int) -> StockChanged:
        return StockChanged(
            key=deal.store_id,
            traceparent=traceparent,
            data=StockChangedData(
                deal_id=deal.id,
                store_id=deal.store_id,
                quantity_available=left,
                price_krw=price,
                reason=Reason.SOLD_OUT if left == 0 else Reason.ORDERED,
                live=left > 0,  # the UPDATE took stock only from an open deal
                lat=deal.location.lat,
                lon=deal.location.lon,
            ),
        )

    return order, read, placed, stock_event


async def place_order(
    db: AsyncConnection,
    actor: Principal,
    data: OrderCreate,
    now: datetime,
    *,
    answer_key: str,
    max_quantity: int,
    reservation: Reservation = "atomic_update",
) -> OrderRead:
    """Reserve units of a deal at the price shown now; 409 ``insufficient_stock`` past the stock.

    The order, its history, its events and the idempotent answer (under ``answer_key``) are
    written by the one statement that takes the stock, so on PostgreSQL ``db`` may be in
    autocommit: the deal's row lock then lives only while the database executes it. A Core
    connection, not a Session: nothing here loads or tracks ORM objects."""
    if data.quantity > max_quantity:
        raise InvalidInput(f"at most {max_quantity} units per order", field="quantity")
    deal = await repository.deal_to_order(db, data.deal_id)
    if deal is None:
        raise DealNotFound(f"no deal {data.deal_id}", field="deal_id")
    order, read, placed, stock_event = new_order(deal, actor, data, now)
    if reservation == "select_for_update":
        await repository.lock_deal(db, deal.id)
    answer = repository.Answer(actor.user_id, answer_key, 201, read.model_dump(mode="json"))
    left = await repository.place(db, order, placed, stock_event, answer, now)
    if left is None:
        after = await repository.deal_to_order(db, data.deal_id)
        assert after is not None, "deals are closed, never deleted"
        if after.closed_at is not None or now >= after.pickup_end_at:
            raise DealNotLive("the deal is closed", field="deal_id")
        raise InsufficientStock(f"only {after.stock} left", field="quantity", available=after.stock)
    log.info(
        "order placed",
        extra={"order_id": str(order.id), "deal_id": str(deal.id), "stock_left": left},
    )
    return read


Connect = Callable[[], AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]]


class FastOrders:
    """What the fast path keeps between requests: its connections, the deals as last read, and
    the orders waiting for their deal's next statement.

    While a deal's statement runs, the orders of that deal that arrive wait and then go together
    in the next one (at most ``batch`` of them): one row lock, one UPDATE of the stock and one
    commit for all of them. Nothing waits on a timer — a lone order goes at once — so under load
    the batches grow by themselves, instead of the orders queueing for the deal's row lock."""

    def __init__(self, connection: Connect, batch: int) -> None:
        self.connection = connection
        self.snapshots: dict[uuid.UUID, repository.Snapshot] = {}
        self._batch = batch
        self._waiting: dict[uuid.UUID, list[tuple[repository.Placement, Future[int | None]]]] = {}

    def remember(self, snapshot: repository.Snapshot) -> None:
        self.snapshots.pop(snapshot.deal.id, None)
        while len(self.snapshots) >= SNAPSHOTS_KEPT:
            del self.snapshots[next(iter(self.snapshots))]  # the oldest: dicts keep their order
        self.snapshots[snapshot.deal.id] = snapshot

    async def write(self, placement: repository.Placement) -> int | None:
        """The stock left after this order, or None when it was not written."""
        if self._batch == 1:
            async with self.connection() as pg:
                return await repository.place_at_once(pg, placement)
        deal_id = placement.order.deal_id
        done: Future[int | None] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.get(deal_id)
        if waiting is None:
            self._waiting[deal_id] = waiting = []
            task = asyncio.create_task(self._drain(deal_id), name=f"orders-{deal_id}")
            _DRAINS.add(task)
            task.add_done_callback(_DRAINS.discard)
        waiting.append((placement, done))
        return await done

    async def _drain(self, deal_id: uuid.UUID) -> None:
        """Writes the deal's waiting orders, batch after batch, until none are left."""
        try:
            while waiting := self._waiting.get(deal_id):
                first = waiting[0][0].snapshot.copies()
                batch = [w for w in waiting if w[0].snapshot.copies() == first][: self._batch]
                taken = {id(w[1]) for w in batch}
                waiting[:] = [w for w in waiting if id(w[1]) not in taken]
                try:
                    await self._write_batch(batch)
                except Exception as exc:  # the database away: each request goes to the route
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
        finally:
            left = self._waiting.pop(deal_id, [])
            for _, done in left:  # cancelled (the app stops): those go to the route
                if not done.done():
                    done.set_result(None)

    async def _write_batch(
        self, batch: list[tuple[repository.Placement, Future[int | None]]]
    ) -> None:
        async with self.connection() as pg:
            if len(batch) > 1:
                left = await repository.place_many(pg, [p for p, _ in batch])
                if left is not None:
                    for (_, done), after in zip(batch, left, strict=True):
                        if not done.done():
                            done.set_result(after)
                    return
            # One alone, or a batch refused as a whole (a key seen before, too few units for
            # all, a changed deal): each on its own, so each gets what one order would.
            for placement, done in batch:
                stock = await repository.place_at_once(pg, placement)
                if not done.done():
                    done.set_result(stock)


# The running drain tasks (the event loop keeps only weak references to tasks).
_DRAINS: set[asyncio.Task[None]] = set()
SNAPSHOTS_KEPT = 4096


async def place_order_at_once(
    fast: FastOrders,
    actor: Principal,
    data: OrderCreate,
    now: datetime,
    *,
    answer_key: str,
    request_hash: str,
    max_quantity: int,
) -> dict[str, Any] | None:
    """``place_order`` for its plain success case on PostgreSQL, usually without a read: the deal
    as last seen in this process (``fast.snapshots``), then one statement — shared with the
    deal's other waiting orders — that checks that copy is current, claims the key with its
    answer and writes everything else. The answer, or None when nothing was written (the key
    exists, too few units, a closed deal, a changed price …: the route then runs the general
    path, which says why). A refused write with a remembered copy reads the deal once more: if
    it changed, the order is tried again with what it is now."""
    if data.quantity > max_quantity:
        return None
    snapshot = fast.snapshots.get(data.deal_id)
    fresh = snapshot is None
    while True:
        if snapshot is None:
            snapshot = await _read(fast, data.deal_id)
            if snapshot is None:
                return None
        placed = await _place_snapshot(
            fast, snapshot, fresh, actor, data, now, answer_key, request_hash
        )
        if placed is not None:
            break
        if fresh:
            return None
        again = await _read(fast, data.deal_id)
        if again is None or again.copies() == snapshot.copies():
            return None  # the refusal is real: the route says why
        snapshot, fresh = again, True
    body, order_id, left = placed
    log.info(
        "order placed",
        extra={"order_id": str(order_id), "deal_id": str(data.deal_id), "stock_left": left},
    )
    return body


async def _read(fast: FastOrders, deal_id: uuid.UUID) -> repository.Snapshot | None:
    async with fast.connection() as pg:
        snapshot = await repository.snapshot_pg(pg, deal_id)
    if snapshot is not None:
        fast.remember(snapshot)
    return snapshot


async def _place_snapshot(
    fast: FastOrders,
    snapshot: repository.Snapshot,
    fresh: bool,
    actor: Principal,
    data: OrderCreate,
    now: datetime,
    answer_key: str,
    request_hash: str,
) -> tuple[dict[str, Any], uuid.UUID, int] | None:
    deal = snapshot.deal
    if now >= deal.pickup_end_at or (
        fresh and (deal.closed_at is not None or deal.stock < data.quantity)
    ):
        return None  # a remembered copy's stock and closing are old: the write checks those
    try:
        order, read, placed, stock_event = new_order(deal, actor, data, now)
    except PriceChanged:
        return None
    body = read.model_dump(mode="json")
    answer = repository.Answer(actor.user_id, answer_key, 201, body)
    placement = repository.Placement(
        snapshot, order, placed, stock_event, answer, request_hash, now
    )
    left = await fast.write(placement)
    return None if left is None else (body, order.id, left)


async def _transition(
    session: AsyncSession,
    order: Order,
    allowed_from: Sequence[OrderStatus],
    to: OrderStatus,
    actor_id: str,
    now: datetime,
    reason: str | None = None,
    note: str | None = None,
) -> Deal:
    """Moves the order, records the change, returns stock where due, and emits the events."""
    before = order.status
    if not await repository.move(session, order, allowed_from, to):
        raise InvalidTransition(
            f"an order that is {order.status} cannot become {to}",
            field="status",
            current=order.status,
        )
    order.reason, order.note = reason, note
    deal = await deals.get(session, order.deal_id)
    assert deal is not None
    returned: Reason | None = None
    if to == OrderStatus.REJECTED and reason == RejectReason.SOLD_OUT:
        await deals.drop_units(session, deal.id, order.quantity)
        returned = Reason.SOLD_OUT
    elif to in (OrderStatus.CANCELLED, OrderStatus.REJECTED) or (
        to == OrderStatus.EXPIRED and deal.return_stock_on_expiry
    ):
        await deals.return_stock(session, deal.id, order.quantity)
        returned = Reason.RETURNED
    await session.flush()
    _record_change(session, order, before, actor_id, reason)
    store = await _store(session, order.store_id)
    outbox.add(
        session,
        OrderStatusChanged(
            key=order.store_id,
            traceparent=current_traceparent(),
            data=OrderStatusChangedData(
                order_id=order.id,
                deal_id=order.deal_id,
                store_id=order.store_id,
                store_name=store.name,
                deal_name=deal.name,
                customer_id=order.customer_id,
                from_status=before,
                to_status=to,
                reason=reason,
                changed_by=actor_id,
            ),
        ),
    )
    if returned is not None:
        await session.refresh(deal)
        outbox.add(session, stock_changed(deal, store, returned, now))
    return deal


async def get_my_order(session: AsyncSession, actor: Principal, order_id: uuid.UUID) -> OrderDetail:
    """A customer reads one of their own orders; anyone else's is simply not found."""
    order = await repository.get_for_customer(session, actor.user_id, order_id)
    if order is None:
        raise OrderNotFound(f"you have no order {order_id}", field="order_id")
    return await _detail(session, order, for_customer=True)


async def list_my_orders(
    session: AsyncSession, actor: Principal, cursor: uuid.UUID | None, limit: int
) -> OrderPage:
    orders = await repository.list_for_customer(session, actor.user_id, cursor, limit + 1)
    items = [to_read(o, for_customer=True) for o in orders[:limit]]
    return OrderPage(items=items, next_cursor=str(items[-1].id) if len(orders) > limit else None)


async def cancel_my_order(
    session: AsyncSession, actor: Principal, order_id: uuid.UUID, now: datetime
) -> OrderDetail:
    """A customer cancels before the store accepted; the units go back on sale."""
    order = await repository.get_for_customer(session, actor.user_id, order_id)
    if order is None:
        raise OrderNotFound(f"you have no order {order_id}", field="order_id")
    await _transition(
        session, order, [OrderStatus.PLACED], OrderStatus.CANCELLED, actor.user_id, now
    )
    return await _detail(session, order, for_customer=True)


async def _store_order(
    session: AsyncSession, actor: Principal, store_id: str, order_id: uuid.UUID
) -> Order:
    await ensure_manages(session, actor, store_id)
    order = await repository.get_in_store(session, store_id, order_id)
    if order is None:
        raise OrderNotFound(f"store {store_id!r} has no order {order_id}", field="order_id")
    return order


async def get_store_order(
    session: AsyncSession, actor: Principal, store_id: str, order_id: uuid.UUID
) -> OrderDetail:
    order = await _store_order(session, actor, store_id, order_id)
    return await _detail(session, order, for_customer=False)


async def list_store_orders(
    session: AsyncSession,
    actor: Principal,
    store_id: str,
    status: OrderStatus | None,
    cursor: uuid.UUID | None,
    limit: int,
) -> OrderPage:
    await ensure_manages(session, actor, store_id)
    orders = await repository.list_for_store(session, store_id, status, cursor, limit + 1)
    items = [to_read(o, for_customer=False) for o in orders[:limit]]
    return OrderPage(items=items, next_cursor=str(items[-1].id) if len(orders) > limit else None)


async def accept_order(
    session: AsyncSession, actor: Principal, store_id: str, order_id: uuid.UUID, now: datetime
) -> OrderDetail:
    order = await _store_order(session, actor, store_id, order_id)
    await _transition(
        session, order, [OrderStatus.PLACED], OrderStatus.ACCEPTED, actor.user_id, now
    )
    return await _detail(session, order, for_customer=False)


async def mark_ready(
    session: AsyncSession, actor: Principal, store_id: str, order_id: uuid.UUID, now: datetime
) -> OrderDetail:
    order = await _store_order(session, actor, store_id, order_id)
    await _transition(session, order, [OrderStatus.ACCEPTED], OrderStatus.READY, actor.user_id, now)
    return await _detail(session, order, for_customer=False)


async def hand_over(
    session: AsyncSession,
    actor: Principal,
    store_id: str,
    order_id: uuid.UUID,
    data: PickupCheck,
    now: datetime,
) -> OrderDetail:
    """The customer shows the pickup code; the manager checks it and hands the food over."""
    order = await _store_order(session, actor, store_id, order_id)
    if not secrets.compare_digest(order.pickup_code, data.pickup_code):
        raise WrongPickupCode("the pickup code does not match this order", field="pickup_code")
    await _transition(
        session,
        order,
        [OrderStatus.ACCEPTED, OrderStatus.READY],
        OrderStatus.PICKED_UP,
        actor.user_id,
        now,
    )
    return await _detail(session, order, for_customer=False)


async def reject_order(
    session: AsyncSession,
    actor: Principal,
    store_id: str,
    order_id: uuid.UUID,
    data: OrderReject,
    now: datetime,
) -> OrderDetail:
    order = await _store_order(session, actor, store_id, order_id)
    await _transition(
        session,
        order,
        [OrderStatus.PLACED, OrderStatus.ACCEPTED],
        OrderStatus.REJECTED,
        actor.user_id,
        now,
        reason=data.reason,
        note=data.note,
    )
    return await _detail(session, order, for_customer=False)


async def expire_order(session: AsyncSession, order: Order, now: datetime) -> None:
    """Not picked up by the end of the pickup window (the sweeper calls this)."""
    await _transition(session, order, list(ACTIVE_STATUSES), OrderStatus.EXPIRED, SYSTEM_ACTOR, now)
