"""The FCM sender against the HTTP v1 stand-in: what each FCM answer means for us.

Every test runs twice: over HTTP/2 (h2c, push's own transport — what production uses, with ALPN
on FCM's https) and over HTTP/1.1 (httpx's pool, a plain ``http://`` URL).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from push.delivery.fcm import FcmSender
from push.delivery.sender import Notification, Outcome
from push.settings import FcmSettings
from standins.fcm import RunningFcm, running_fcm


@pytest.fixture(params=["h2c", "http1"])
def fcm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningFcm]:
    with running_fcm(tmp_path, http2=request.param == "h2c") as running:
        yield running


def fcm_settings(fcm: RunningFcm) -> FcmSettings:
    return FcmSettings(
        sender="fcm",
        project_id=fcm.fake.project_id,
        credentials_file=fcm.credentials_file,
        send_url=fcm.send_url,
        h2c=fcm.http2,
    )


def _note(target: str, kind: str = "token") -> Notification:
    return Notification(kind, target, "마감빵집 마감 할인 40%", "소금빵 3개 3,000원", {"k": "v"})


async def test_accepted_messages_reach_fcm_with_text_data_and_target_kind(fcm: RunningFcm) -> None:
    sender = FcmSender(fcm_settings(fcm))
    try:
        results = await sender.send([_note("tok-1"), _note("fid-1", "fid")])
    finally:
        await sender.aclose()
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    got = {r.target: r for r in fcm.fake.accepted()}
    assert got["tok-1"].target_kind == "token"
    assert got["fid-1"].target_kind == "fid"
    assert got["tok-1"].message["notification"]["title"] == "마감빵집 마감 할인 40%"
    assert got["tok-1"].data == {"k": "v"}
    assert results[0].message_id == got["tok-1"].name


async def test_dead_targets_are_unregistered_sender_mismatch_and_invalid_token(
    fcm: RunningFcm,
) -> None:
    fcm.fake.unregistered.add("gone")
    fcm.fake.sender_mismatch.add("other-project")
    fcm.fake.invalid.add("garbage")
    sender = FcmSender(fcm_settings(fcm))
    try:
        results = await sender.send([_note("gone"), _note("other-project"), _note("garbage")])
    finally:
        await sender.aclose()
    assert [r.outcome for r in results] == [Outcome.DEAD_TARGET] * 3
    assert results[0].reason is not None
    assert "UNREGISTERED" in results[0].reason
    assert fcm.fake.accepted() == []


async def test_quota_exceeded_is_retried_with_the_servers_retry_after(fcm: RunningFcm) -> None:
    fcm.fake.fail_next(1, "quota", retry_after_s=7)
    sender = FcmSender(fcm_settings(fcm))
    try:
        (result,) = await sender.send([_note("tok-q")])
    finally:
        await sender.aclose()
    assert result.outcome == Outcome.RETRY
    assert result.retry_after_s == 7.0
    assert result.reason is not None
    assert "QUOTA_EXCEEDED" in result.reason


@pytest.mark.parametrize("kind", ["unavailable", "internal"])
async def test_unavailable_and_internal_are_retried(fcm: RunningFcm, kind: str) -> None:
    fcm.fake.fail_next(1, kind)
    sender = FcmSender(fcm_settings(fcm))
    try:
        (result,) = await sender.send([_note("tok-u")])
    finally:
        await sender.aclose()
    assert result.outcome == Outcome.RETRY
    assert len(fcm.fake.attempts_for("tok-u")) == 1  # firebase-admin's own retries are off


async def test_sending_opens_no_connection_beyond_this_machine(
    fcm: RunningFcm, outbound_connections: list[object]
) -> None:
    sender = FcmSender(fcm_settings(fcm))
    try:
        await sender.send([_note("tok-local")])
    finally:
        await sender.aclose()
    assert outbound_connections, "the audit hook saw no connection at all"
    hosts = {addr[0] for addr in outbound_connections if isinstance(addr, tuple)}
    assert hosts <= {"127.0.0.1"}, hosts


async def test_the_service_account_exchanges_its_jwt_for_a_short_access_token(
    fcm: RunningFcm,
) -> None:
    # As with Google: one OAuth exchange at token_uri, then the short access token on every
    # send (not an ~800-byte self-signed JWT per request).
    sender = FcmSender(fcm_settings(fcm))
    try:
        results = await sender.send([_note(f"tok-{i}") for i in range(3)])
    finally:
        await sender.aclose()
    assert [r.outcome for r in results] == [Outcome.SENT] * 3
    assert fcm.fake.token_requests == 1
    assert {len(a) for a in fcm.fake.bearers} == {len("ya29.fake-") + 32}


async def test_more_than_one_call_of_messages_is_split_and_sent_side_by_side(
    fcm: RunningFcm,
) -> None:
    settings = fcm_settings(fcm).model_copy(update={"batch_size": 2, "concurrent_batches": 3})
    sender = FcmSender(settings)
    try:
        results = await sender.send([_note(f"tok-{i}") for i in range(7)])
    finally:
        await sender.aclose()
    assert [r.outcome for r in results] == [Outcome.SENT] * 7
    by_target = {r.target: r.name for r in fcm.fake.accepted()}
    assert [r.message_id for r in results] == [by_target[f"tok-{i}"] for i in range(7)]
