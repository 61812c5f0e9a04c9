"""From one event to its planned (event, device) deliveries: claim the event once, learn from it
(managers, favorites, deal names), and decide who hears what. No I/O beyond the session."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
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
from push.subscription import repository as subscriptions
from push.subscription.service import in_quiet_hours
from servicekit.bus import IncomingRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    timezone: ZoneInfo
    default_daily_cap: int


async def claim_event(session: AsyncSession, event: Event, record: IncomingRecord) -> bool:
    """Records the event as processed; False when it already was (a redelivery)."""
    result = await session.execute(
        insert_ignoring_conflicts(session, ProcessedEvent).values(
            event_id=event.event_id,
            type=event.type,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


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


async def plan_deliveries(
    session: AsyncSession, event: Event, policy: Policy, now: datetime
) -> int:
    """Applies what the event teaches and inserts one delivery per (event, device); returns how
    many will be sent (held and capped ones are recorded, not sent)."""
    text, users, promotional = await _audience(session, event)
    if text is None or not users:
        return 0
    targets = await devices.of_users(session, users)
    if not targets:
        return 0
    status_of: dict[str, str] = dict.fromkeys(users, DeliveryStatus.PENDING)
    if promotional:
        local_now = now.astimezone(policy.timezone)
        day_start = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
        prefs = await subscriptions.preferences_of(session, users)
        counts = await _promotions_today(session, users, day_start)
        for user in users:
            pref = prefs.get(user)
            cap = (
                policy.default_daily_cap
                if pref is None or pref.daily_cap is None
                else pref.daily_cap
            )
            if in_quiet_hours(pref, local_now):
                status_of[user] = DeliveryStatus.HELD
            elif counts.get(user, 0) >= cap:
                status_of[user] = DeliveryStatus.CAPPED
    rows = [
        {
            "event_id": event.event_id,
            "device_id": device.id,
            "user_id": device.user_id,
            "target_kind": device.target_kind,
            "target": device.target,
            "title": text.title,
            "body": text.body,
            "data": text.data,
            "promotional": promotional,
            "status": status_of[device.user_id],
            "attempts": 0,
        }
        for device in targets
    ]
    await session.execute(insert_ignoring_conflicts(session, Delivery), rows)
    return sum(1 for r in rows if r["status"] == DeliveryStatus.PENDING)
