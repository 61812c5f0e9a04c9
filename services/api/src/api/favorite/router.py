from __future__ import annotations

from fastapi import APIRouter, Response

from api.db import SessionDep
from api.favorite import service
from api.favorite.service import FavoriteCreate, FavoritePage, FavoriteRead
from api.pagination import Cursor, Limit
from servicekit.security import CurrentCustomer

router = APIRouter(prefix="/customer/favorites", tags=["customer: favorites"])


@router.post("", status_code=201, summary="Add a store to your favorites")
async def add_favorite(
    session: SessionDep, actor: CurrentCustomer, body: FavoriteCreate
) -> FavoriteRead:
    return await service.add_favorite(session, actor, body)


@router.delete("/{store_id}", status_code=204, summary="Remove a store from your favorites")
async def remove_favorite(session: SessionDep, actor: CurrentCustomer, store_id: str) -> Response:
    await service.remove_favorite(session, actor, store_id)
    return Response(status_code=204)


@router.get("", summary="Your favorite stores")
async def list_favorites(
    session: SessionDep, actor: CurrentCustomer, cursor: Cursor = None, limit: Limit = 20
) -> FavoritePage:
    return await service.list_favorites(session, actor, cursor, limit)
