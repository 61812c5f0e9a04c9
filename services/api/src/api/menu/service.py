"""Menu use cases."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import StoreNotFound
from api.menu import repository
from api.menu.schemas import MenuItemRead, MenuRead
from api.store import repository as stores


async def get_menu(session: AsyncSession, store_id: str) -> MenuRead:
    """An open store's menu (possibly empty), or StoreNotFound."""
    store = await stores.get(session, store_id)
    if store is None or store.closed_at is not None:
        raise StoreNotFound(f"store {store_id!r} does not exist or is closed", field="store_id")
    items = await repository.list_menu(session, store_id)
    return MenuRead(
        store_id=store_id,
        items=[
            MenuItemRead(
                id=item.id,
                name=item.name,
                price_krw=item.price_krw,
                is_recommended=item.is_recommended,
                position=item.position,
            )
            for item in items
        ],
    )
