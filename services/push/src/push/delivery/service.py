"""From one event to its planned (event, device) deliveries: claim the event once, learn from it
(managers, favorites, deal names), and decide who hears what. No I/O beyond the session."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, distinct, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import (
    DealPublished,
    Event,
    FavoriteChanged,
    ManagerApproved,
    OrderPlaced,
    OrderStatusChanged,
    StockChanged,
    StockChangedData,
    StockChangeReason,
)
from push.audience import repository as audience
from push.audience.models import KnownDeal
from push.db import insert_ignoring_conflicts
from push.delivery import messages, repository
from push.delivery.models import Delivery, DeliveryStatus, HeldDelivery
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
    #: How long a held restock stays worth sending (a deal's own pickup end bounds a deal).
    held_max_age: timedelta = timedelta(hours=12)
    #: A released delivery still pending after this was orphaned by a crash: send it again.
    release_lease: timedelta = timedelta(minutes=2)


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
    return await repository.claim(session, rows)


@dataclass
class _Audience:
    """What a batch of events teaches and who hears each of them, with one query per kind for
    the whole batch: what the database knew before the batch is read first, then the events are
    walked in order, each seeing what the earlier ones taught (as one event at a time would),
    and what they taught is written at the end."""

    managers: dict[str, set[str]]
    favoriters: dict[str, set[str]]
    deals: dict[uuid.UUID, KnownDeal]
    near: dict[tuple[float, float], set[str]]
    new_managers: set[tuple[str, str]] = field(default_factory=set)
    favorites: dict[tuple[str, str], bool] = field(default_factory=dict)
    new_deals: dict[uuid.UUID, KnownDeal] = field(default_factory=dict)
    closed_deals: list[uuid.UUID] = field(default_factory=list)

    @classmethod
    async def load(cls, session: AsyncSession, events: Sequence[Event]) -> _Audience:
        order_stores: set[str] = set()
        deal_stores: set[str] = set()
        deal_ids: set[uuid.UUID] = set()
        points: dict[tuple[float, float], None] = {}
        for event in events:
            match event:
                case OrderPlaced():
                    order_stores.add(event.key)
                case DealPublished(data=deal):
                    deal_stores.add(deal.store_id)
                    deal_ids.add(deal.deal_id)
                    points[(deal.lon, deal.lat)] = None
                case StockChanged(data=stock) if _is_live_restock(stock):
                    deal_stores.add(stock.store_id)
                    deal_ids.add(stock.deal_id)
                    points[(stock.lon, stock.lat)] = None
        near = await subscriptions.subscribers_near(session, list(points))
        return cls(
            managers=await audience.managers_of(session, order_stores),
            favoriters=await audience.favoriters_of(session, deal_stores),
            deals=await audience.known_deals(session, deal_ids),
            near=dict(zip(points, near, strict=True)),
        )

    def hear(  # noqa: PLR0911 — one case per event type
        self, event: Event
    ) -> tuple[messages.Text | None, list[str], bool]:
        """The text, the users who hear it, and whether it is promotional (capped, quiet
        hours); learns what the event teaches."""
        match event:
            case OrderPlaced():
                return messages.new_order(event), sorted(self.managers.get(event.key, ())), False
            case OrderStatusChanged():
                return messages.order_status(event), [event.data.customer_id], False
            case DealPublished(data=deal):
                if deal.deal_id not in self.deals:  # the first name known is kept
                    self.deals[deal.deal_id] = self.new_deals[deal.deal_id] = KnownDeal(
                        deal_id=deal.deal_id,
                        store_id=deal.store_id,
                        store_name=deal.store_name,
                        name=deal.name,
                    )
                users = self._followers(deal.store_id, deal.lon, deal.lat)
                return messages.new_deal(event), users, True
            case StockChanged(data=stock):
                if not stock.live:
                    self.closed_deals.append(stock.deal_id)
                if not _is_live_restock(stock):
                    return None, [], True
                known = self.deals.get(stock.deal_id)
                text = messages.restock(
                    event, known.store_name if known else None, known.name if known else None
                )
                return text, self._followers(stock.store_id, stock.lon, stock.lat), True
            case FavoriteChanged(data=fav):
                followers = self.favoriters.setdefault(fav.store_id, set())
                if fav.favorite:
                    followers.add(fav.customer_id)
                else:
                    followers.discard(fav.customer_id)
                self.favorites[(fav.store_id, fav.customer_id)] = fav.favorite
                return None, [], False
            case ManagerApproved(data=approval):
                self.managers.setdefault(approval.store_id, set()).add(approval.user_id)
                self.new_managers.add((approval.store_id, approval.user_id))
                return None, [], False
        return None, [], False

    def _followers(self, store_id: str, lon: float, lat: float) -> list[str]:
        return sorted(self.favoriters.get(store_id, set()) | self.near[(lon, lat)])

    async def save(self, session: AsyncSession) -> None:
        """Writes what the batch taught; held deliveries of closed deals expire (before this
        batch's own holds are written, as when each event was planned on its own)."""
        await audience.add_managers(session, self.new_managers)
        await audience.set_favorites(session, self.favorites)
        await audience.remember_deals(session, self.new_deals.values())
        if self.closed_deals:
            await expire_held_for_deals(session, self.closed_deals)


def _is_live_restock(stock: StockChangedData) -> bool:
    return stock.reason == StockChangeReason.RESTOCKED and stock.live


async def _promotions_today(
    session: AsyncSession, user_ids: Iterable[str], since: datetime
) -> dict[str, int]:
    rows = await session.execute(
        select(Delivery.user_id, func.count(distinct(Delivery.event_id)))
        .where(
            Delivery.user_id.in_(list(user_ids)),
            Delivery.promotional.is_(True),
            Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENT]),
            # Planned today, or held from yesterday and released today.
            or_(Delivery.created_at >= since, Delivery.sent_at >= since),
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


def _relevance(event: Event, policy: Policy, now: datetime) -> tuple[uuid.UUID | None, datetime]:
    """The deal a promotion is about and until when it is worth sending after quiet hours."""
    match event:
        case DealPublished(data=deal):
            return deal.deal_id, deal.pickup_end_at
        case StockChanged(data=stock):
            return stock.deal_id, now + policy.held_max_age
    return None, now + policy.held_max_age


async def plan_deliveries(
    session: AsyncSession, events: Sequence[Event], policy: Policy, now: datetime
) -> list[Delivery]:
    """Applies what each event teaches, in order, and inserts one delivery per (event, device)
    in one statement; returns the ones to send now (held and capped ones are recorded only),
    as detached rows, so the caller need not read them back."""
    learned = await _Audience.load(session, events)
    planned: list[_Planned] = []
    for event in events:
        text, users, promotional = learned.hear(event)
        if text is not None and users:
            planned.append(_Planned(event, text, users, promotional))
    await learned.save(session)
    if not planned:
        return []
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
                    "created_at": now,
                }
                for device in by_user.get(user, [])
            ]
    if not rows:
        return []
    inserted = await repository.insert_deliveries(session, rows)
    relevance = {p.event.event_id: _relevance(p.event, policy, now) for p in planned}
    by_key = {(r["event_id"], r["device_id"]): r for r in rows}
    held = [
        {
            "delivery_id": row.id,
            "user_id": by_key[(row.event_id, row.device_id)]["user_id"],
            "deal_id": relevance[row.event_id][0],
            "relevant_until": relevance[row.event_id][1],
            "held_at": now,
        }
        for row in inserted
        if row.status == DeliveryStatus.HELD
    ]
    if held:
        await session.execute(insert_ignoring_conflicts(session, HeldDelivery), held)
    pending = [
        Delivery(id=row.id, **by_key[(row.event_id, row.device_id)])
        for row in inserted
        if row.status == DeliveryStatus.PENDING
    ]
    return sorted(pending, key=lambda d: d.id)


async def expire_held_for_deals(session: AsyncSession, deal_ids: Collection[uuid.UUID]) -> None:
    """Deals sold out or closed: what is held for them will never be worth sending."""
    deal_ids = list(set(deal_ids))
    held = select(HeldDelivery.delivery_id).where(HeldDelivery.deal_id.in_(deal_ids))
    await session.execute(
        update(Delivery)
        .where(Delivery.id.in_(held), Delivery.status == DeliveryStatus.HELD)
        .values(status=DeliveryStatus.EXPIRED)
        .execution_options(synchronize_session=False)
    )
    await session.execute(delete(HeldDelivery).where(HeldDelivery.deal_id.in_(deal_ids)))


@dataclass
class Release:
    """What one pass over held deliveries decided."""

    pending: list[Delivery] = field(default_factory=list)  # to send now
    expired: int = 0
    capped: int = 0
    still_quiet: int = 0
    claimed: int = 0
    #: Where the next page starts (held rows are walked in (held_at, delivery_id) order).
    last: tuple[datetime, int] | None = None


async def release_held(
    session: AsyncSession,
    policy: Policy,
    now: datetime,
    limit: int = 500,
    after: tuple[datetime, int] | None = None,
) -> Release:
    """Claims held deliveries whose quiet hours are over: stale ones expire, those over the
    day's cap are capped, the rest become pending (returned, to be sent by the caller).

    Rows are claimed with ``FOR UPDATE SKIP LOCKED``, so replicas release disjoint sets; a
    delivery released by a replica that died before recording its send is pending with an old
    ``released_at``, and is returned again once ``policy.release_lease`` has passed.
    """
    query = (
        select(HeldDelivery, Delivery)
        .join(Delivery, Delivery.id == HeldDelivery.delivery_id)
        .where(
            or_(
                HeldDelivery.released_at.is_(None),
                HeldDelivery.released_at < now - policy.release_lease,
            )
        )
    )
    if after is not None:  # the next page: users still in quiet hours do not block the rest
        query = query.where(tuple_(HeldDelivery.held_at, HeldDelivery.delivery_id) > tuple_(*after))
    claimed = (
        await session.execute(
            query.order_by(HeldDelivery.held_at, HeldDelivery.delivery_id)
            .limit(limit)
            .with_for_update(of=HeldDelivery, skip_locked=True)
        )
    ).all()
    release = Release(claimed=len(claimed))
    if not claimed:
        return release
    release.last = (claimed[-1][0].held_at, claimed[-1][0].delivery_id)
    waiting = {d.user_id for _, d in claimed if d.status == DeliveryStatus.HELD}
    prefs = await subscriptions.preferences_of(session, waiting)
    local_now = now.astimezone(policy.timezone)
    day_start = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    counts = await _promotions_today(session, waiting, day_start) if waiting else {}
    decided: dict[tuple[str, uuid.UUID], str] = {}  # one decision per (user, event)
    done: list[int] = []
    for hold, delivery in claimed:
        if delivery.status == DeliveryStatus.PENDING:  # orphaned by a crash after release
            hold.released_at = now
            release.pending.append(delivery)
            continue
        if delivery.status != DeliveryStatus.HELD:  # sent, dropped, ...: nothing left to do
            done.append(hold.delivery_id)
            continue
        pref = prefs.get(delivery.user_id)
        if in_quiet_hours(pref, local_now):
            release.still_quiet += 1
            continue
        key = (delivery.user_id, delivery.event_id)
        fate = decided.get(key)
        if fate is None:
            if hold.relevant_until <= now:
                fate = DeliveryStatus.EXPIRED
            else:
                fate = _promotion_status(pref, counts, delivery.user_id, policy, local_now)
            decided[key] = fate
        delivery.status = fate
        if fate == DeliveryStatus.PENDING:
            hold.released_at = now
            release.pending.append(delivery)
        else:
            release.expired += fate == DeliveryStatus.EXPIRED
            release.capped += fate == DeliveryStatus.CAPPED
            done.append(hold.delivery_id)
    if done:
        await session.execute(delete(HeldDelivery).where(HeldDelivery.delivery_id.in_(done)))
    await session.flush()
    return release
