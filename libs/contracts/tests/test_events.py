import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from contracts import (
    TOPIC_IDENTITY,
    TOPIC_ORDER,
    TOPIC_STOCK,
    AccessTokenClaims,
    DealPublished,
    DealPublishedData,
    Event,
    FavoriteChanged,
    FavoriteChangedData,
    ManagerApproved,
    ManagerApprovedData,
    OrderPlaced,
    OrderPlacedData,
    OrderStatus,
    OrderStatusChanged,
    OrderStatusChangedData,
    SessionRevoked,
    SessionRevokedData,
    StockChanged,
    StockChangedData,
    StockChangeReason,
    parse_event,
    serialize_event,
    topic_for,
)

STORE = "MA010120220805431535"
NOW = datetime(2026, 11, 25, 20, 30, tzinfo=UTC)


def _one_of_each() -> list[Event]:
    order_id, deal_id = uuid.uuid4(), uuid.uuid4()
    return [
        OrderPlaced(
            key=STORE,
            traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            data=OrderPlacedData(
                order_id=order_id,
                deal_id=deal_id,
                store_id=STORE,
                store_name="오미당꽈배기",
                deal_name="꽈배기 5개",
                customer_id="u-1",
                quantity=2,
                unit_price_krw=3500,
                total_krw=7000,
                pickup_end_at=NOW + timedelta(hours=1),
            ),
        ),
        OrderStatusChanged(
            key=STORE,
            data=OrderStatusChangedData(
                order_id=order_id,
                deal_id=deal_id,
                store_id=STORE,
                store_name="오미당꽈배기",
                deal_name="꽈배기 5개",
                customer_id="u-1",
                from_status=OrderStatus.PLACED,
                to_status=OrderStatus.REJECTED,
                reason="sold_out",
                changed_by="u-2",
            ),
        ),
        DealPublished(
            key=STORE,
            data=DealPublishedData(
                deal_id=deal_id,
                store_id=STORE,
                store_name="오미당꽈배기",
                name="꽈배기 5개",
                original_price_krw=7000,
                price_krw=3500,
                quantity=10,
                pickup_start_at=NOW,
                pickup_end_at=NOW + timedelta(hours=2),
                lat=37.5665,
                lon=126.978,
            ),
        ),
        StockChanged(
            key=STORE,
            data=StockChangedData(
                deal_id=deal_id,
                store_id=STORE,
                quantity_available=0,
                price_krw=3500,
                reason=StockChangeReason.SOLD_OUT,
                live=False,
                lat=37.5665,
                lon=126.978,
            ),
        ),
        FavoriteChanged(
            key=STORE,
            data=FavoriteChangedData(store_id=STORE, customer_id="u-1", favorite=True),
        ),
        ManagerApproved(
            key=STORE,
            data=ManagerApprovedData(
                claim_id=uuid.uuid4(), store_id=STORE, user_id="u-2", approved_by="u-admin"
            ),
        ),
        SessionRevoked(
            key="u-2",
            data=SessionRevokedData(
                user_id="u-2", session_id="fam-1", reason="refresh_token_reused", revoked_at=NOW
            ),
        ),
    ]


@pytest.mark.parametrize("event", _one_of_each(), ids=lambda e: e.type)
def test_every_event_type_round_trips_through_json(event: Event) -> None:
    wire = serialize_event(event)

    parsed = parse_event(wire)

    assert parsed == event
    assert type(parsed) is type(event)
    assert json.loads(wire)["type"] == event.type


def test_one_of_each_covers_every_event_type() -> None:
    union_types = {cls.model_fields["type"].default for cls in Event.__args__[0].__args__}
    assert {e.type for e in _one_of_each()} == union_types


def test_parse_rejects_an_unknown_type_naming_the_discriminator() -> None:
    wire = json.loads(serialize_event(_one_of_each()[0]))
    wire["type"] = "order.teleported"

    with pytest.raises(ValidationError) as err:
        parse_event(json.dumps(wire))

    assert err.value.errors()[0]["type"] == "union_tag_invalid"
    assert "order.teleported" in str(err.value)


def test_parse_rejects_a_missing_field_naming_it() -> None:
    wire = json.loads(serialize_event(_one_of_each()[0]))
    del wire["data"]["quantity"]

    with pytest.raises(ValidationError) as err:
        parse_event(json.dumps(wire))

    (error,) = err.value.errors()
    assert error["type"] == "missing"
    assert error["loc"] == ("order.placed", "data", "quantity")


def test_parse_rejects_a_naive_timestamp() -> None:
    wire = json.loads(serialize_event(_one_of_each()[0]))
    wire["occurred_at"] = "2026-11-25T20:30:00"

    with pytest.raises(ValidationError, match="timezone"):
        parse_event(json.dumps(wire))


def test_events_are_immutable() -> None:
    event = _one_of_each()[0]
    with pytest.raises(ValidationError):
        event.key = "other"  # type: ignore[misc]


def test_order_events_go_to_order_topic_and_deal_events_to_stock() -> None:
    assert [topic_for(e) for e in _one_of_each()] == [
        TOPIC_ORDER,
        TOPIC_ORDER,
        TOPIC_STOCK,
        TOPIC_STOCK,
        TOPIC_STOCK,
        TOPIC_IDENTITY,
        TOPIC_IDENTITY,
    ]


def test_access_token_claims_require_a_known_role() -> None:
    base = {"iss": "magam-auth", "aud": "magam", "sub": "u-1", "exp": 2, "iat": 1, "jti": "j"}
    assert AccessTokenClaims(**base, roles=["customer"]).has_role("customer")
    with pytest.raises(ValidationError):
        AccessTokenClaims(**base, roles=["root"])
    with pytest.raises(ValidationError):
        AccessTokenClaims(**base, roles=[])
