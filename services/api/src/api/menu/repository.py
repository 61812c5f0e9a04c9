from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.menu.models import MenuItem


async def get_menu_item(session: AsyncSession, store_id: str, item_id: int) -> MenuItem | None:
    """The item only when it belongs to that store (a deal must not borrow another store's menu)."""
    item = await session.get(MenuItem, item_id)
    return item if item is not None and item.store_id == store_id else None


async def list_menu(session: AsyncSession, store_id: str) -> Sequence[MenuItem]:
    query = (
        select(MenuItem)
        .where(MenuItem.store_id == store_id)
        .order_by(MenuItem.position, MenuItem.id)
    )
    return (await session.scalars(query)).all()
