"""Use cases of geo-subscriptions and notification preferences."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from push.geo import LonLat
from push.subscription import repository
from push.subscription.models import NotificationPreference, SavedPlace
from push.subscription.schemas import (
    PlaceLabel,
    PreferencesPut,
    PreferencesRead,
    SubscriptionPut,
    SubscriptionRead,
)
from servicekit.errors import AppError, NotFound


class SubscriptionNotFound(NotFound):
    code = "subscription_not_found"


class QuietHoursIncomplete(AppError):
    status, code, title = 422, "quiet_hours_incomplete", "Quiet hours need a start and an end"


def _read(place: SavedPlace) -> SubscriptionRead:
    return SubscriptionRead(
        label=PlaceLabel(place.label),
        lat=place.location.lat,
        lon=place.location.lon,
        radius_m=place.radius_m,
        updated_at=place.updated_at,
    )


async def list_subscriptions(session: AsyncSession, user_id: str) -> list[SubscriptionRead]:
    """The caller's saved places."""
    return [_read(p) for p in await repository.places_of(session, user_id)]


async def put_subscription(
    session: AsyncSession, user_id: str, label: PlaceLabel, data: SubscriptionPut
) -> SubscriptionRead:
    """Saves (or moves) the caller's place ``label`` and its radius."""
    place = await repository.place(session, user_id, label.value)
    location = LonLat(data.lon, data.lat)
    if place is None:
        place = SavedPlace(user_id=user_id, label=label.value, location=location, radius_m=0)
        session.add(place)
    place.location = location
    place.radius_m = data.radius_m
    await session.flush()
    await session.refresh(place)
    return _read(place)


async def delete_subscription(session: AsyncSession, user_id: str, label: PlaceLabel) -> None:
    """Forgets the caller's place ``label``."""
    place = await repository.place(session, user_id, label.value)
    if place is None:
        raise SubscriptionNotFound(f"no saved place {label.value!r}", field="label")
    await session.delete(place)


def _minute(hhmm: str | None) -> int | None:
    if hhmm is None:
        return None
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _hhmm(minute: int | None) -> str | None:
    return None if minute is None else f"{minute // 60:02d}:{minute % 60:02d}"


def _prefs_read(pref: NotificationPreference | None, default_cap: int) -> PreferencesRead:
    if pref is None:
        return PreferencesRead(quiet_start=None, quiet_end=None, daily_cap=default_cap)
    return PreferencesRead(
        quiet_start=_hhmm(pref.quiet_start_minute),
        quiet_end=_hhmm(pref.quiet_end_minute),
        daily_cap=default_cap if pref.daily_cap is None else pref.daily_cap,
    )


async def get_preferences(session: AsyncSession, user_id: str, default_cap: int) -> PreferencesRead:
    """The caller's quiet hours and daily cap."""
    return _prefs_read(await session.get(NotificationPreference, user_id), default_cap)


async def put_preferences(
    session: AsyncSession, user_id: str, data: PreferencesPut, default_cap: int
) -> PreferencesRead:
    """Sets the caller's quiet hours (both or neither) and daily cap."""
    if (data.quiet_start is None) != (data.quiet_end is None):
        field = "quiet_end" if data.quiet_end is None else "quiet_start"
        raise QuietHoursIncomplete("give both quiet_start and quiet_end, or neither", field=field)
    pref = await session.get(NotificationPreference, user_id)
    if pref is None:
        pref = NotificationPreference(user_id=user_id)
        session.add(pref)
    pref.quiet_start_minute = _minute(data.quiet_start)
    pref.quiet_end_minute = _minute(data.quiet_end)
    pref.daily_cap = data.daily_cap
    await session.flush()
    return _prefs_read(pref, default_cap)


def in_quiet_hours(pref: NotificationPreference | None, local_now: datetime) -> bool:
    """Whether ``local_now`` (the user's wall clock) falls in their quiet hours."""
    if pref is None or pref.quiet_start_minute is None or pref.quiet_end_minute is None:
        return False
    now = local_now.hour * 60 + local_now.minute
    start, end = pref.quiet_start_minute, pref.quiet_end_minute
    if start == end:
        return False
    if start < end:
        return start <= now < end
    return now >= start or now < end  # wraps midnight, e.g. 22:00–08:00
