from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from push.db import SessionDep
from push.subscription import service
from push.subscription.schemas import (
    PlaceLabel,
    PreferencesPut,
    PreferencesRead,
    SubscriptionPut,
    SubscriptionRead,
)
from servicekit.security import CurrentCustomer, CurrentUser

router = APIRouter(tags=["subscriptions"])


def _default_cap(request: Request) -> int:
    cap: int = request.app.state.settings.notify.default_daily_cap
    return cap


@router.get("/subscriptions", summary="My saved places (geo-subscriptions)")
async def list_subscriptions(user: CurrentCustomer, session: SessionDep) -> list[SubscriptionRead]:
    return await service.list_subscriptions(session, user.user_id)


@router.put(
    "/subscriptions/{label}",
    summary="Save a place: deals within radius_m of it notify me",
)
async def put_subscription(
    label: PlaceLabel, data: SubscriptionPut, user: CurrentCustomer, session: SessionDep
) -> SubscriptionRead:
    return await service.put_subscription(session, user.user_id, label, data)


@router.delete(
    "/subscriptions/{label}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Forget a saved place",
    responses={404: {"description": "No such saved place (`subscription_not_found`)"}},
)
async def delete_subscription(
    label: PlaceLabel, user: CurrentCustomer, session: SessionDep
) -> Response:
    await service.delete_subscription(session, user.user_id, label)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/preferences", summary="My quiet hours and daily cap")
async def get_preferences(
    request: Request, user: CurrentUser, session: SessionDep
) -> PreferencesRead:
    return await service.get_preferences(session, user.user_id, _default_cap(request))


@router.put("/preferences", summary="Set my quiet hours (Korean time) and daily cap on deals")
async def put_preferences(
    request: Request, data: PreferencesPut, user: CurrentUser, session: SessionDep
) -> PreferencesRead:
    return await service.put_preferences(session, user.user_id, data, _default_cap(request))
