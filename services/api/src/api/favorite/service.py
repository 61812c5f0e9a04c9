"""A customer's favorite stores; push notifies favoriters of new deals."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api import outbox
from api.errors import StoreNotFound
from api.examples import example_of, page_example
from api.favorite.models import Favorite
from api.store import repository as stores
from api.store.schemas import StoreRead
from api.store.service import to_read as store_read
from contracts import FavoriteChanged, FavoriteChangedData
from servicekit.security import Principal
from servicekit.telemetry import current_traceparent


class FavoriteCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"store_id": "DEMO0000000000000001"}]}
    )

    store_id: str = Field(min_length=1, max_length=40)


class FavoriteRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "store": example_of(StoreRead),
                    "created_at": "2026-11-25T12:00:00Z",
                }
            ]
        }
    )

    store: StoreRead
    created_at: datetime


class FavoritePage(BaseModel):
    model_config = ConfigDict(json_schema_extra=page_example(FavoriteRead))

    items: list[FavoriteRead]
    next_cursor: str | None


def _event(actor: Principal, store_id: str, favorite: bool) -> FavoriteChanged:
    return FavoriteChanged(
        key=store_id,
        traceparent=current_traceparent(),
        data=FavoriteChangedData(store_id=store_id, customer_id=actor.user_id, favorite=favorite),
    )


async def add_favorite(
    session: AsyncSession, actor: Principal, data: FavoriteCreate
) -> FavoriteRead:
    """Idempotent: adding a favorite twice keeps one."""
    store = await stores.get(session, data.store_id)
    if store is None or store.closed_at is not None:
        raise StoreNotFound(
            f"store {data.store_id!r} does not exist or is closed", field="store_id"
        )
    favorite = await session.get(Favorite, (actor.user_id, data.store_id))
    if favorite is None:
        favorite = Favorite(customer_id=actor.user_id, store_id=data.store_id)
        session.add(favorite)
        await session.flush()
        await session.refresh(favorite)
        outbox.add(session, _event(actor, data.store_id, favorite=True))
    return FavoriteRead(store=store_read(store), created_at=favorite.created_at)


async def remove_favorite(session: AsyncSession, actor: Principal, store_id: str) -> None:
    """Idempotent: removing a store that is not a favorite is fine."""
    favorite = await session.get(Favorite, (actor.user_id, store_id))
    if favorite is not None:
        await session.delete(favorite)
        outbox.add(session, _event(actor, store_id, favorite=False))


async def list_favorites(
    session: AsyncSession, actor: Principal, cursor: str | None, limit: int
) -> FavoritePage:
    query = (
        select(Favorite)
        .where(Favorite.customer_id == actor.user_id)
        .order_by(Favorite.store_id)
        .limit(limit + 1)
    )
    if cursor:
        query = query.where(Favorite.store_id > cursor)
    rows: Sequence[Favorite] = (await session.scalars(query)).all()
    items = []
    for fav in rows[:limit]:
        store = await stores.get(session, fav.store_id)
        if store is not None:
            items.append(FavoriteRead(store=store_read(store), created_at=fav.created_at))
    return FavoritePage(
        items=items, next_cursor=rows[limit - 1].store_id if len(rows) > limit else None
    )
