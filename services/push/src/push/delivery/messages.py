"""The Korean texts and the data payloads of each notification (pure functions, no I/O).

Data payloads carry ``type``, ``event_id`` and the ids and ``route`` the app navigates by; FCM
data values must be strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from contracts import (
    DealPublished,
    OrderPlaced,
    OrderStatus,
    OrderStatusChanged,
    StockChanged,
)

SEOUL = ZoneInfo("Asia/Seoul")


@dataclass(frozen=True)
class Text:
    title: str
    body: str
    data: dict[str, str]


def _won(amount: int) -> str:
    return f"{amount:,}원"


def new_order(event: OrderPlaced) -> Text:
    d = event.data
    return Text(
        title=f"[{d.store_name}] 새 주문이 들어왔어요",
        body=f"{d.deal_name} {d.quantity}개 · {_won(d.total_krw)}",
        data={
            "type": event.type,
            "event_id": str(event.event_id),
            "store_id": d.store_id,
            "order_id": str(d.order_id),
            "deal_id": str(d.deal_id),
            "route": f"magam://manager/stores/{d.store_id}/orders/{d.order_id}",
        },
    )


_STATUS_TEXT: dict[OrderStatus, str] = {
    OrderStatus.ACCEPTED: "{deal} 주문이 접수되었어요",
    OrderStatus.READY: "{deal} 준비 완료! 픽업 시간 안에 찾아가 주세요",
    OrderStatus.PICKED_UP: "{deal} 픽업 완료. 맛있게 드세요!",
    OrderStatus.REJECTED: "{deal} 주문이 거절되었어요",
    OrderStatus.CANCELLED: "{deal} 주문이 취소되었어요",
    OrderStatus.EXPIRED: "픽업 시간이 지나 {deal} 주문이 만료되었어요",
}


def order_status(event: OrderStatusChanged) -> Text | None:
    """None for a status the customer caused or need not hear about (``placed``)."""
    d = event.data
    template = _STATUS_TEXT.get(d.to_status)
    if template is None:
        return None
    body = template.format(deal=d.deal_name)
    if d.reason and d.to_status in (OrderStatus.REJECTED, OrderStatus.CANCELLED):
        body += f" (사유: {d.reason})"
    return Text(
        title=d.store_name,
        body=body,
        data={
            "type": event.type,
            "event_id": str(event.event_id),
            "store_id": d.store_id,
            "order_id": str(d.order_id),
            "deal_id": str(d.deal_id),
            "status": d.to_status.value,
            "route": f"magam://orders/{d.order_id}",
        },
    )


def new_deal(event: DealPublished) -> Text:
    d = event.data
    off = (
        round(100 * (d.original_price_krw - d.price_krw) / d.original_price_krw)
        if d.original_price_krw
        else 0
    )
    pickup = d.pickup_end_at.astimezone(SEOUL).strftime("%H:%M")
    return Text(
        title=f"{d.store_name} 마감 할인 {off}%",
        body=f"{d.name} {_won(d.price_krw)} (정가 {_won(d.original_price_krw)}) · "
        f"{d.quantity}개 남음 · {pickup}까지 픽업",
        data={
            "type": event.type,
            "event_id": str(event.event_id),
            "store_id": d.store_id,
            "deal_id": str(d.deal_id),
            "price_krw": str(d.price_krw),
            "route": f"magam://deals/{d.deal_id}",
        },
    )


def restock(event: StockChanged, store_name: str | None, deal_name: str | None) -> Text:
    d = event.data
    store = store_name or "단골 가게"
    deal = deal_name or "마감 할인 상품"
    return Text(
        title=f"{store} 재입고",
        body=f"{deal} {_won(d.price_krw)} · {d.quantity_available}개 다시 준비됐어요",
        data={
            "type": event.type,
            "event_id": str(event.event_id),
            "store_id": d.store_id,
            "deal_id": str(d.deal_id),
            "price_krw": str(d.price_krw),
            "route": f"magam://deals/{d.deal_id}",
        },
    )
