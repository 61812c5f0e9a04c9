"""Store use cases."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import StoreNotFound
from api.store import repository
from api.store.models import Store
from api.store.schemas import StorePage, StoreRead


def to_read(store: Store) -> StoreRead:
    return StoreRead(
        id=store.id,
        name=store.name,
        branch=store.branch,
        category_code=store.category_code,
        address=store.address,
        district_code=store.district_code,
        lat=store.location.lat,
        lon=store.location.lon,
    )


async def get_store(session: AsyncSession, store_id: str) -> StoreRead:
    """One store, or StoreNotFound."""
    store = await repository.get(session, store_id)
    if store is None or store.closed_at is not None:
        raise StoreNotFound(f"store {store_id!r} does not exist or is closed", field="store_id")
    return to_read(store)


async def list_stores(session: AsyncSession, cursor: str | None, limit: int) -> StorePage:
    """Open stores in id order, a page at a time."""
    stores = await repository.list_open(session, cursor, limit + 1)
    page = [to_read(s) for s in stores[:limit]]
    return StorePage(items=page, next_cursor=page[-1].id if len(stores) > limit else None)
