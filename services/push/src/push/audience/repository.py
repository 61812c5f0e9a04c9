"""Who hears what: the SQL behind managers, favoriters and known deals, a batch of events at a
time (one statement per kind, whatever the batch holds)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from push.audience.models import KnownDeal, StoreFavorite, StoreManager
from push.db import insert_ignoring_conflicts


async def add_managers(session: AsyncSession, pairs: Collection[tuple[str, str]]) -> None:
    """(store id, user id) pairs: these users manage these stores (known ones are kept)."""
    if pairs:
        await session.execute(
            insert_ignoring_conflicts(session, StoreManager),
            [{"store_id": store, "user_id": user} for store, user in pairs],
        )


async def set_favorites(session: AsyncSession, favorites: dict[tuple[str, str], bool]) -> None:
    """(store id, customer id) → whether the customer now follows the store."""
    on = [{"store_id": s, "customer_id": c} for (s, c), fav in favorites.items() if fav]
    off = [(s, c) for (s, c), fav in favorites.items() if not fav]
    if on:
        await session.execute(insert_ignoring_conflicts(session, StoreFavorite), on)
    if off:
        await session.execute(
            delete(StoreFavorite).where(
                tuple_(StoreFavorite.store_id, StoreFavorite.customer_id).in_(off)
            )
        )


async def remember_deals(session: AsyncSession, deals: Iterable[KnownDeal]) -> None:
    """Names of published deals, for later restocks (the first name known is kept)."""
    rows = [
        {"deal_id": d.deal_id, "store_id": d.store_id, "store_name": d.store_name, "name": d.name}
        for d in deals
    ]
    if rows:
        await session.execute(insert_ignoring_conflicts(session, KnownDeal), rows)


async def known_deals(
    session: AsyncSession, deal_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, KnownDeal]:
    if not deal_ids:
        return {}
    rows = await session.scalars(select(KnownDeal).where(KnownDeal.deal_id.in_(list(deal_ids))))
    return {d.deal_id: d for d in rows}


async def managers_of(session: AsyncSession, store_ids: Collection[str]) -> dict[str, set[str]]:
    """Each store's managers (stores without any are absent)."""
    return await _people_of(session, StoreManager.store_id, StoreManager.user_id, store_ids)


async def favoriters_of(session: AsyncSession, store_ids: Collection[str]) -> dict[str, set[str]]:
    """Each store's favoriters (stores without any are absent)."""
    return await _people_of(session, StoreFavorite.store_id, StoreFavorite.customer_id, store_ids)


async def _people_of(
    session: AsyncSession,
    store_column: InstrumentedAttribute[str],
    user_column: InstrumentedAttribute[str],
    store_ids: Collection[str],
) -> dict[str, set[str]]:
    """The users of ``user_column`` per store, for these stores, in one query."""
    if not store_ids:
        return {}
    rows = await session.execute(
        select(store_column, user_column).where(store_column.in_(list(store_ids)))
    )
    return _grouped(rows.all())


def _grouped(pairs: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for store_id, user_id in pairs:
        found.setdefault(store_id, set()).add(user_id)
    return found
