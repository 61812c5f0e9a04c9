"""The FCM sender: firebase-admin's ``send_each_async`` (HTTP/2, at most 500 a call).

FCM's answers map to what the dispatcher does: UNREGISTERED, SENDER_ID_MISMATCH and an
INVALID_ARGUMENT about the token itself mean the device is gone; QUOTA_EXCEEDED, UNAVAILABLE and
INTERNAL are retried (honouring ``Retry-After``); any other INVALID_ARGUMENT is our bug.
https://firebase.google.com/docs/cloud-messaging/send/v1-api#handle-errors
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
import warnings
from typing import Any

import firebase_admin  # type: ignore[import-untyped]
import httpx
from firebase_admin import (
    _http_client,
    _retry,
    credentials,
    exceptions,
    messaging,
)

from push.delivery.sender import Notification, Outcome, SendResult
from push.settings import FcmSettings

_DEAD_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})
_RETRY_CODES = frozenset({"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"})
_RETRY_STATUSES = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL", "UNKNOWN"})
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
_TARGET_FIELDS = frozenset({"message.token", "message.fid"})


def _error_body(error: exceptions.FirebaseError) -> dict[str, Any]:
    response = error.http_response
    if response is None:
        return {}
    try:
        body = json.loads(response.content)
    except (ValueError, TypeError):
        return {}
    inner = body.get("error") if isinstance(body, dict) else None
    return inner if isinstance(inner, dict) else {}


def _retry_after(error: exceptions.FirebaseError) -> float | None:
    response = error.http_response
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def classify(error: exceptions.FirebaseError) -> SendResult:
    """What one FCM error means for the device and the message."""
    body = _error_body(error)
    details = body.get("details") or []
    fcm_code = next(
        (
            d.get("errorCode")
            for d in details
            if isinstance(d, dict) and d.get("@type") == _FCM_ERROR
        ),
        None,
    )
    status = body.get("status") or error.code
    reason = f"{fcm_code or status}: {body.get('message') or error}"[:500]
    if fcm_code in _DEAD_CODES or isinstance(
        error, messaging.UnregisteredError | messaging.SenderIdMismatchError
    ):
        return SendResult(Outcome.DEAD_TARGET, reason=reason)
    if fcm_code in _RETRY_CODES or status in _RETRY_STATUSES or error.http_response is None:
        return SendResult(Outcome.RETRY, reason=reason, retry_after_s=_retry_after(error))
    if fcm_code == "INVALID_ARGUMENT" or status == "INVALID_ARGUMENT":
        violations = [
            v.get("field")
            for d in details
            if isinstance(d, dict) and d.get("@type") == _BAD_REQUEST
            for v in d.get("fieldViolations") or []
        ]
        message = str(body.get("message", "")).lower()
        if any(f in _TARGET_FIELDS for f in violations) or "registration token" in message:
            return SendResult(Outcome.DEAD_TARGET, reason=reason)
    return SendResult(Outcome.REJECTED, reason=reason)


def to_message(n: Notification) -> messaging.Message:
    target: dict[str, str] = {"fid": n.target} if n.target_kind == "fid" else {"token": n.target}
    with warnings.catch_warnings():
        # firebase-admin 7.7 deprecates Message.token for Message.fid; devices still register
        # tokens, and FCM still takes them, so both kinds are sent as stored.
        warnings.simplefilter("ignore", DeprecationWarning)
        # The tag (Android) and collapse id (APNs) are the event id: a message repeated after a
        # crash replaces the first on the phone instead of showing twice.
        tag = n.data.get("event_id")
        return messaging.Message(
            notification=messaging.Notification(title=n.title, body=n.body),
            data=n.data,
            android=messaging.AndroidConfig(
                priority="high", notification=messaging.AndroidNotification(tag=tag)
            ),
            apns=messaging.APNSConfig(headers={"apns-collapse-id": tag} if tag else None),
            **target,
        )


class FcmSender:
    """Sends through firebase-admin; one firebase app per sender, so tests can run several."""

    def __init__(self, settings: FcmSettings) -> None:
        if settings.credentials_file is None:
            raise ValueError("FcmSender needs fcm.credentials_file")
        if settings.send_url:
            # The documented seam: firebase-admin formats this class attribute per app.
            messaging._MessagingService.FCM_URL = settings.send_url.replace("{project}", "{0}")
        self.max_batch = settings.batch_size
        # One INFO line per FCM request drowns the log at thousands a second.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        info = json.loads(settings.credentials_file.read_text(encoding="utf-8"))
        self._app = firebase_admin.initialize_app(
            credentials.Certificate(info),
            {"projectId": settings.project_id, "httpTimeout": settings.http_timeout_s},
            name=f"push-{uuid.uuid4().hex[:8]}",
        )
        # firebase-admin retries 500/503 itself (4 times, ignoring Retry-After); one retry
        # policy is enough, and ours records attempts and ends in the DLQ.
        service = messaging._get_messaging_service(self._app)
        client = _http_client.HttpxAsyncClient(
            credential=service._credential,
            timeout=settings.http_timeout_s,
            retry_config=_retry.HttpxRetry(max_retries=0),
        )
        if settings.h2c:
            transport = _retry.HttpxRetryTransport(
                retry=_retry.HttpxRetry(max_retries=0), http1=False, http2=True
            )
            client._async_client = httpx.AsyncClient(
                http1=False,
                http2=True,
                timeout=settings.http_timeout_s,
                headers=client._headers,
                auth=_http_client.GoogleAuthCredentialFlow(service._credential),
                mounts={"http://": transport},
            )
        service._async_client = client

    async def send(self, notifications: list[Notification]) -> list[SendResult]:
        results: list[SendResult] = []
        for start in range(0, len(notifications), self.max_batch):
            chunk = notifications[start : start + self.max_batch]
            batch = await messaging.send_each_async([to_message(n) for n in chunk], app=self._app)
            for response in batch.responses:
                if response.success:
                    results.append(SendResult(Outcome.SENT, message_id=response.message_id))
                else:
                    results.append(classify(response.exception))
        return results

    async def aclose(self) -> None:
        service = messaging._get_messaging_service(self._app)
        await service._async_client.aclose()
        # delete_app closes the (now closed) client with asyncio.run: not on this loop.
        await asyncio.to_thread(firebase_admin.delete_app, self._app)
