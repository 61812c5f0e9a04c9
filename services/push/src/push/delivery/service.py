"""From one event to its planned (event, device) deliveries: claim the event once, learn from it
(managers, favorites, deal names), and decide who hears what. No I/O beyond the session."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import (
    DealPublished,
    Event,
    FavoriteChanged,
    ManagerApproved,
    OrderPlaced,
    OrderStatusChanged,
    StockChanged,
    StockChangeReason,
)
from push.audience import repository as audience
from push.db import insert_ignoring_conflicts
from push.delivery import messages
from push.delivery.models import Delivery, DeliveryStatus, ProcessedEvent
from push.device import repository as devices
from push.device.models import Device
from push.subscription import repository as subscriptions
from push.subscription.models import NotificationPreference
from push.subscription.service import in_quiet_hours
from servicekit.bus import IncomingRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    timezone: ZoneInfo
    default_daily_cap: int


async def claim_events(
    session: AsyncSession, claims: Sequence[tuple[Event, IncomingRecord]]
) -> set[uuid.UUID]:
    """Records the events as processed; returns the ids that were new (not redeliveries)."""
    if not claims:
        return set()
    rows = [
        {
            "event_id": event.event_id,
            "type": event.type,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
        }
        for event, record in claims
    ]
    result = await session.execute(
        insert_ignoring_conflicts(session, ProcessedEvent).returning(ProcessedEvent.event_id),
        rows,
    )
    return set(result.scalars())


async def _audience(  # noqa: PLR0911 — one case per event type
    session: AsyncSession, event: Event
) -> tuple[messages.Text | None, list[str], bool]:
    """The text, the users who hear it, and whether it is promotional (capped, quiet hours)."""
    match event:
        case OrderPlaced():
            return messages.new_order(event), await audience.managers_of(session, event.key), False
        case OrderStatusChanged():
            return messages.order_status(event), [event.data.customer_id], False
        case DealPublished(data=deal):
            await audience.remember_deal(
                session, deal.deal_id, deal.store_id, deal.store_name, deal.name
            )
            users = await _store_followers(session, deal.store_id, deal.lon, deal.lat)
            return messages.new_deal(event), users, True
        case StockChanged(data=stock):
            if stock.reason != StockChangeReason.RESTOCKED or not stock.live:
                return None, [], True
            known = await audience.known_deal(session, stock.deal_id)
            text = messages.restock(
                event, known.store_name if known else None, known.name if known else None
            )
            return text, await _store_followers(session, stock.store_id, stock.lon, stock.lat), True
        case FavoriteChanged(data=fav):
            await audience.set_favorite(session, fav.store_id, fav.customer_id, fav.favorite)
            return None, [], False
        case ManagerApproved(data=approval):
            await audience.add_manager(session, approval.store_id, approval.user_id)
            return None, [], False
    return None, [], False


async def _store_followers(
    session: AsyncSession, store_id: str, lon: float, lat: float
) -> list[str]:
    favoriters = await audience.favoriters_of(session, store_id)
    nearby = await subscriptions.subscribers_near(session, lon, lat)
    return sorted(set(favoriters) | set(nearby))


async def _promotions_today(
    session: AsyncSession, user_ids: Iterable[str], since: datetime
) -> dict[str, int]:
    rows = await session.execute(
        select(Delivery.user_id, func.count(distinct(Delivery.event_id)))
        .where(
            Delivery.user_id.in_(list(user_ids)),
            Delivery.promotional.is_(True),
            Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENT]),
            Delivery.created_at >= since,
        )
        .group_by(Delivery.user_id)
    )
    return {str(user): int(count) for user, count in rows.all()}


def _promotion_status(
    pref: NotificationPreference | None,
    counts: dict[str, int],
    user: str,
    policy: Policy,
    local_now: datetime,
) -> str:
    """Quiet hours hold a deal back; past the daily cap it is dropped; else it counts."""
    cap = policy.default_daily_cap
    if pref is not None and pref.daily_cap is not None:
        cap = pref.daily_cap
    if in_quiet_hours(pref, local_now):
        return DeliveryStatus.HELD
    if counts.get(user, 0) >= cap:
        return DeliveryStatus.CAPPED
    counts[user] = counts.get(user, 0) + 1  # later events of this batch see it
    return DeliveryStatus.PENDING


@dataclass
class _Planned:
    event: Event
    text: messages.Text
    users: list[str]
    promotional: bool


async def plan_deliveries(
    session: AsyncSession, events: Sequence[Event], policy: Policy, now: datetime
) -> int:
    """Applies what each event teaches, in order, and inserts one delivery per (event, device)
    in one statement; returns how many will be sent (held and capped ones are recorded only)."""
    planned: list[_Planned] = []
    for event in events:
        text, users, promotional = await _audience(session, event)
        if text is not None and users:
            planned.append(_Planned(event, text, users, promotional))
    if not planned:
        return 0
    all_users = {u for p in planned for u in p.users}
    by_user: dict[str, list[Device]] = {}
    for device in await devices.of_users(session, all_users):
        by_user.setdefault(device.user_id, []).append(device)
    promo_users = {u for p in planned if p.promotional for u in p.users if u in by_user}
    local_now = now.astimezone(policy.timezone)
    prefs = await subscriptions.preferences_of(session, promo_users) if promo_users else {}
    counts: dict[str, int] = {}
    if promo_users:
        day_start = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
        counts = await _promotions_today(session, promo_users, day_start)
    rows: list[dict[str, Any]] = []
    for p in planned:
        for user in p.users:
            status = DeliveryStatus.PENDING
            if p.promotional and user in by_user:
                status = _promotion_status(prefs.get(user), counts, user, policy, local_now)
            rows += [
                {
                    "event_id": p.event.event_id,
                    "device_id": device.id,
                    "user_id": user,
                    "target_kind": device.target_kind,
                    "target": device.target,
                    "title": p.text.title,
                    "body": p.text.body,
                    "data": p.text.data,
                    "promotional": p.promotional,
                    "status": status,
                    "attempts": 0,
                }
                for device in by_user.get(user, [])
            ]
    if rows:
        await session.execute(insert_ignoring_conflicts(session, Delivery), rows)
    return sum(1 for r in rows if r["status"] == DeliveryStatus.PENDING)
