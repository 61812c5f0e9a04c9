"""The local profile (make run): SQLite, the in-process bus shared with api and push."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest

from auth.main import create_app
from auth.settings import AuthSettings
from contracts import (
    TOPIC_IDENTITY,
    ManagerApproved,
    ManagerApprovedData,
    SessionRevoked,
    parse_event,
)
from servicekit.bus import InProcessBus, record_for


async def test_roles_and_revocations_travel_over_the_shared_bus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_app: Any
) -> None:
    monkeypatch.setenv("MAGAM_PROFILE", "local")
    bus = InProcessBus()
    settings = AuthSettings(database={"sqlite_dir": tmp_path}, seed_demo_data=True)
    app = create_app(settings, bus)
    async with run_app(app) as client:
        tokens = (await client.post("/auth/dev/login", json={"user": "customer"})).json()
        user_id = jwt.decode(tokens["access_token"], options={"verify_signature": False})["sub"]
        approved = ManagerApproved(
            key="MA0101",
            data=ManagerApprovedData(
                claim_id=uuid.uuid4(), store_id="MA0101", user_id=user_id, approved_by="admin"
            ),
        )
        await bus.publisher().send(record_for(approved))
        refresh, roles = tokens["refresh_token"], ["customer"]
        deadline = time.monotonic() + 10
        while "manager" not in roles and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            answer = (await client.post("/auth/refresh", json={"refresh_token": refresh})).json()
            refresh = answer["refresh_token"]
            roles = jwt.decode(answer["access_token"], options={"verify_signature": False})["roles"]
        await client.post("/auth/logout", json={"refresh_token": refresh})
        await asyncio.sleep(0.05)  # the event is sent in the background after the commit

    assert roles == ["customer", "manager"]
    revoked = [parse_event(r.value) for r in bus.read(TOPIC_IDENTITY, 0)][-1]
    assert isinstance(revoked, SessionRevoked)
    assert (revoked.data.user_id, revoked.data.reason) == (user_id, "logout")
    assert revoked.data.session_id is not None
