"""A session auth revoked (logout, refresh reuse, unlink) stops working in api too."""

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from conftest import Infra
from contracts import SessionRevoked, SessionRevokedData
from servicekit.bus import record_for

from .conftest import Api

pytestmark = pytest.mark.integration


async def test_a_revoked_session_is_refused_by_api_within_seconds(
    api: Api, prod_profile: Infra
) -> None:
    api.app.state.token_verifier = api.tokens.verifier(
        is_revoked=api.app.state.revocations.is_revoked
    )
    user, session_id = f"c-{uuid.uuid4().hex[:12]}", f"fam-{uuid.uuid4().hex}"
    headers = api.tokens.headers(user, ["customer"], sid=session_id)
    other = api.tokens.headers(user, ["customer"], sid=f"fam-{uuid.uuid4().hex}")
    assert (await api.client.get("/customer/orders", headers=headers)).status_code == 200

    event = SessionRevoked(
        key=user,
        data=SessionRevokedData(
            user_id=user, session_id=session_id, reason="logout", revoked_at=datetime.now(UTC)
        ),
    )
    record = record_for(event)
    producer = AIOKafkaProducer(bootstrap_servers=prod_profile.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            record.topic, record.value, key=record.key, headers=list(record.headers)
        )
    finally:
        await producer.stop()

    status = 200
    for _ in range(100):
        status = (await api.client.get("/customer/orders", headers=headers)).status_code
        if status == 401:
            break
        await asyncio.sleep(0.1)
    refused = await api.client.get("/customer/orders", headers=headers)

    assert status == 401
    assert refused.json()["code"] == "token_revoked"
    assert (await api.client.get("/customer/orders", headers=other)).status_code == 200
