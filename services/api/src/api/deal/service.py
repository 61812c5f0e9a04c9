"""Deal use cases: a manager lists, edits, restocks and closes; prices follow the schedule."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from api import outbox
from api.claim.service import ensure_manages
from api.deal import repository
from api.deal.models import Deal
from api.deal.pricing import MarkdownStep, next_change_at, percent_off, price_at
from api.deal.schemas import (
    DealCreate,
    DealFromMenu,
    DealPage,
    DealRead,
    DealStatus,
    DealUpdate,
    MarkdownStepIn,
    Restock,
    _check_schedule,
)
from api.errors import (
    DealNotFound,
    DealNotLive,
    InvalidInput,
    MenuItemNotFound,
    QuantityBelowReserved,
    StoreNotFound,
)
from api.menu.repository import get_menu_item
from api.store import repository as stores
from api.store.models import Store
from contracts import DealPublished, DealPublishedData, StockChanged, StockChangedData
from contracts import StockChangeReason as Reason
from servicekit.security import Principal
from servicekit.telemetry import current_traceparent


def steps_of(deal: Deal) -> list[MarkdownStep]:
    return [MarkdownStep(s["minutes_before_end"], s["percent_off"]) for s in deal.markdown]


def current_price(deal: Deal, now: datetime) -> int:
    return price_at(
        deal.original_price_krw, deal.price_krw, steps_of(deal), deal.pickup_end_at, now
    )


def is_live(deal: Deal, now: datetime) -> bool:
    return deal.closed_at is None and now < deal.pickup_end_at and deal.stock > 0


def status_of(deal: Deal, now: datetime) -> DealStatus:
    if deal.closed_at is not None or now >= deal.pickup_end_at:
        return DealStatus.CLOSED
    return DealStatus.SOLD_OUT if deal.stock == 0 else DealStatus.LIVE


def to_read(deal: Deal, now: datetime) -> DealRead:
    price = current_price(deal, now)
    return DealRead(
        id=deal.id,
        store_id=deal.store_id,
        name=deal.name,
        description=deal.description,
        original_price_krw=deal.original_price_krw,
        price_krw=price,
        discount_percent=percent_off(deal.original_price_krw, price),
        next_price_change_at=next_change_at(steps_of(deal), deal.pickup_end_at, now),
        quantity=deal.quantity,
        stock=deal.stock,
        reserved=deal.quantity - deal.stock,
        status=status_of(deal, now),
        pickup_start_at=deal.pickup_start_at,
        pickup_end_at=deal.pickup_end_at,
        allergens=deal.allergens,
        tags=deal.tags,
        photo_url=deal.photo_url,
        markdown=[MarkdownStepIn(**s) for s in deal.markdown],
        return_stock_on_expiry=deal.return_stock_on_expiry,
    )


def stock_changed(deal: Deal, store: Store, reason: Reason, now: datetime) -> StockChanged:
    return StockChanged(
        key=deal.store_id,
        traceparent=current_traceparent(),
        data=StockChangedData(
            deal_id=deal.id,
            store_id=deal.store_id,
            quantity_available=deal.stock,
            price_krw=current_price(deal, now),
            reason=reason,
            live=is_live(deal, now),
            lat=store.location.lat,
            lon=store.location.lon,
        ),
    )


async def _store(session: AsyncSession, store_id: str) -> Store:
    store = await stores.get(session, store_id)
    if store is None:
        raise StoreNotFound(f"store {store_id!r} does not exist", field="store_id")
    return store


async def _deal(session: AsyncSession, store_id: str, deal_id: uuid.UUID, *, lock: bool) -> Deal:
    find = repository.lock_in_store if lock else repository.get_in_store
    deal = await find(session, store_id, deal_id)
    if deal is None:
        raise DealNotFound(f"store {store_id!r} has no deal {deal_id}", field="deal_id")
    return deal


async def create_deal(
    session: AsyncSession, actor: Principal, store_id: str, data: DealCreate, now: datetime
) -> DealRead:
    """A manager lists a new deal; it is published at once."""
    await ensure_manages(session, actor, store_id)
    store = await _store(session, store_id)
    if data.pickup_end_at <= now:
        raise InvalidInput("the pickup window has already ended", field="pickup_end_at")
    steps = data.steps()
    deal = Deal(
        store_id=store_id,
        name=data.name,
        description=data.description,
        original_price_krw=data.original_price_krw,
        price_krw=data.base_price_krw,
        quantity=data.quantity,
        stock=data.quantity,
        pickup_start_at=data.pickup_start_at,
        pickup_end_at=data.pickup_end_at,
        allergens=data.allergens,
        tags=data.tags,
        photo_url=str(data.photo_url) if data.photo_url else None,
        markdown=[s.model_dump() for s in data.markdown],
        return_stock_on_expiry=data.return_stock_on_expiry,
        next_markdown_at=next_change_at(steps, data.pickup_end_at, now),
        created_by=actor.user_id,
    )
    session.add(deal)
    await session.flush()
    outbox.add(
        session,
        DealPublished(
            key=store_id,
            traceparent=current_traceparent(),
            data=DealPublishedData(
                deal_id=deal.id,
                store_id=store_id,
                store_name=store.name,
                name=deal.name,
                original_price_krw=deal.original_price_krw,
                price_krw=current_price(deal, now),
                quantity=deal.stock,
                pickup_start_at=deal.pickup_start_at,
                pickup_end_at=deal.pickup_end_at,
                lat=store.location.lat,
                lon=store.location.lon,
            ),
        ),
    )
    return to_read(deal, now)


async def create_deal_from_menu(
    session: AsyncSession,
    actor: Principal,
    store_id: str,
    item_id: int,
    data: DealFromMenu,
    now: datetime,
) -> DealRead:
    """A manager starts a deal from a menu item: "the 소금빵 at 40 % off, six left"."""
    await ensure_manages(session, actor, store_id)
    item = await get_menu_item(session, store_id, item_id)
    if item is None:
        raise MenuItemNotFound(f"store {store_id!r} has no menu item {item_id}", field="item_id")
    original = item.price_krw or data.original_price_krw
    if original is None:
        raise InvalidInput(
            "the menu has no price for this item: send original_price_krw",
            field="original_price_krw",
        )
    try:
        create = DealCreate(
            name=item.name[:100],
            original_price_krw=original,
            **data.model_dump(exclude={"original_price_krw"}),
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        raise InvalidInput(
            str(error["msg"]), field=".".join(map(str, error["loc"])) or None
        ) from exc
    return await create_deal(session, actor, store_id, create, now)


async def get_deal(
    session: AsyncSession, actor: Principal, store_id: str, deal_id: uuid.UUID, now: datetime
) -> DealRead:
    await ensure_manages(session, actor, store_id)
    return to_read(await _deal(session, store_id, deal_id, lock=False), now)


async def get_public_deal(session: AsyncSession, deal_id: uuid.UUID, now: datetime) -> DealRead:
    """Any deal by id, as customers see it."""
    deal = await repository.get(session, deal_id)
    if deal is None:
        raise DealNotFound(f"no deal {deal_id}", field="deal_id")
    return to_read(deal, now)


async def list_deals(
    session: AsyncSession,
    actor: Principal,
    store_id: str,
    cursor: uuid.UUID | None,
    limit: int,
    now: datetime,
) -> DealPage:
    await ensure_manages(session, actor, store_id)
    deals = await repository.list_for_store(session, store_id, cursor, limit + 1)
    items = [to_read(d, now) for d in deals[:limit]]
    return DealPage(items=items, next_cursor=str(items[-1].id) if len(deals) > limit else None)


async def update_deal(
    session: AsyncSession,
    actor: Principal,
    store_id: str,
    deal_id: uuid.UUID,
    data: DealUpdate,
    now: datetime,
) -> DealRead:
    """A manager edits a deal; the quantity never drops below what orders hold."""
    await ensure_manages(session, actor, store_id)
    deal = await _deal(session, store_id, deal_id, lock=True)
    if deal.closed_at is not None:
        raise DealNotLive("a closed deal cannot be edited", field="deal_id")
    changes = data.model_dump(exclude_unset=True)
    if "quantity" in changes and data.quantity is not None:
        reserved = deal.quantity - deal.stock
        if data.quantity < reserved:
            raise QuantityBelowReserved(
                f"{reserved} units are already reserved; the quantity cannot go below that",
                field="quantity",
                reserved=reserved,
            )
        deal.stock = data.quantity - reserved
        deal.quantity = data.quantity
    if data.pickup_end_at is not None:
        if data.pickup_end_at <= max(now, deal.pickup_start_at):
            raise InvalidInput("pickup_end_at must be in the future", field="pickup_end_at")
        deal.pickup_end_at = data.pickup_end_at
    if data.markdown is not None:
        try:
            _check_schedule(data.markdown, deal.original_price_krw, deal.price_krw)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="markdown") from exc
        deal.markdown = [s.model_dump() for s in data.markdown]
    for name in ("name", "description", "allergens", "tags"):
        if changes.get(name) is not None:
            setattr(deal, name, changes[name])
    if "photo_url" in changes:
        deal.photo_url = str(data.photo_url) if data.photo_url else None
    deal.next_markdown_at = next_change_at(steps_of(deal), deal.pickup_end_at, now)
    await session.flush()
    outbox.add(session, stock_changed(deal, await _store(session, store_id), Reason.EDITED, now))
    return to_read(deal, now)


async def restock_deal(
    session: AsyncSession,
    actor: Principal,
    store_id: str,
    deal_id: uuid.UUID,
    data: Restock,
    now: datetime,
) -> DealRead:
    """More units of the same deal (the kitchen made another batch)."""
    await ensure_manages(session, actor, store_id)
    deal = await _deal(session, store_id, deal_id, lock=True)
    if deal.closed_at is not None or now >= deal.pickup_end_at:
        raise DealNotLive("a closed deal cannot be restocked", field="deal_id")
    deal.quantity += data.quantity
    deal.stock += data.quantity
    await session.flush()
    store = await _store(session, store_id)
    outbox.add(session, stock_changed(deal, store, Reason.RESTOCKED, now))
    return to_read(deal, now)


async def close_deal(
    session: AsyncSession, actor: Principal, store_id: str, deal_id: uuid.UUID, now: datetime
) -> DealRead:
    """A manager stops selling a deal; orders already placed stay."""
    await ensure_manages(session, actor, store_id)
    deal = await _deal(session, store_id, deal_id, lock=True)
    if deal.closed_at is None:
        deal.closed_at = now
        deal.next_markdown_at = None
        await session.flush()
        store = await _store(session, store_id)
        outbox.add(session, stock_changed(deal, store, Reason.CLOSED, now))
    return to_read(deal, now)
