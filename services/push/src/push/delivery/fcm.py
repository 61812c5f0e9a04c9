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
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
from google.auth.transport import requests as google_requests

from push.delivery.http2 import Http2Transport
from push.delivery.sender import Notification, Outcome, SendResult
from push.settings import FcmSettings

_DEAD_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})
_RETRY_CODES = frozenset({"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"})
_RETRY_STATUSES = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL", "UNKNOWN"})
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
_TARGET_FIELDS = frozenset({"message.token", "message.fid"})
_API_CLIENT_HEADER = "x-goog-api-client"


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


@contextmanager
def _token_targets_allowed() -> Iterator[None]:
    """firebase-admin 7.7 deprecates Message.token for Message.fid; devices still register
    tokens, and FCM still takes them, so both kinds are sent as stored. (Entered once per
    batch: ``catch_warnings`` resets the warning filters' cache each time.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def to_message(n: Notification) -> messaging.Message:
    """The FCM message for one notification (call inside ``_token_targets_allowed``)."""
    target: dict[str, str] = {"fid": n.target} if n.target_kind == "fid" else {"token": n.target}
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


class _NoCookies(httpx.Cookies):
    """FCM sets no cookies; httpx would still parse every response for them (a urllib request
    and a cookie-jar walk per message, ~5% of a send at thousands a second)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


class _CredentialFlow(_http_client.GoogleAuthCredentialFlow):  # type: ignore[misc]
    """firebase-admin's auth flow — google-auth's ``before_request`` headers, and on 401 a
    forced refresh and another try, at most twice — computed once per access token instead of
    once per message.

    The original builds a ``requests.Session`` and runs google-auth's ``before_request`` (a
    validity check, an environment lookup, header merging) and two header copies for every
    request: ~20% of a send's CPU for the same three headers each time. Here the headers are
    recomputed by the same ``before_request`` whenever the credential is not valid or its token
    changed, so a refresh (ours ahead of expiry in a thread, or the 401 path) is picked up.
    """

    def __init__(self, credential: Any) -> None:
        super().__init__(credential)
        self._auth_request = google_requests.Request()
        self._for: tuple[str | None, str | None] | None = None  # (token, x-goog-api-client)
        self._headers: dict[str, str] = {}

    def _auth_headers(self, request: httpx.Request) -> dict[str, str]:
        credential = self._credential
        # google-auth appends its credential type to the x-goog-api-client already there.
        client_header = request.headers.get(_API_CLIENT_HEADER)
        if not credential.valid or self._for != (credential.token, client_header):
            headers = {} if client_header is None else {_API_CLIENT_HEADER: client_header}
            credential.before_request(self._auth_request, request.method, str(request.url), headers)
            self._for, self._headers = (credential.token, client_header), headers
        return self._headers

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self._auth_headers(request))
        response = yield request
        refreshes = 0
        while (
            response.status_code in self._refresh_status_codes
            and refreshes < self._max_refresh_attempts
        ):
            self._credential.refresh(self._auth_request)
            refreshes += 1
            request.headers.update(self._auth_headers(request))
            response = yield request


class _FcmHttpxClient(_http_client.HttpxAsyncClient):  # type: ignore[misc]
    """firebase-admin's async HTTP client; ``request`` — its single entry point into httpx —
    hands httpx the parsed send URL (the same one for every message) instead of the string httpx
    would parse again for each message (~10% of a send's CPU).

    Over push's HTTP/2 transport (``use_http2``), a JSON POST skips httpx's per-request pipeline
    (building the request and its headers, the auth flow, the hooks: ~40% of a send's CPU at
    thousands a second) and hands the transport the very header list httpx would have produced:
    it is built once by httpx itself — ``build_request`` and the auth flow's headers — for each
    method, URL, headers, timeout and access token, and only content-length differs per message;
    the body is httpx's own JSON encoding. The answer is httpx's ``Response``, as before. Anything
    else — another transport, other arguments, an expired token, a 401 (the auth flow refreshes
    and retries) — goes through httpx as it did.
    """

    _TEMPLATES = 16  # (method, URL, headers, token) combinations kept: FCM's send URL is one

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._urls: dict[str, httpx.URL] = {}
        self._via: tuple[Http2Transport, _CredentialFlow] | None = None
        self._templates: dict[tuple[Any, ...], _Template] = {}

    def use_http2(self, transport: Http2Transport, flow: _CredentialFlow) -> None:
        """Sends JSON POSTs to URLs ``transport`` serves straight through it (see the class)."""
        self._via = (transport, flow)

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        full = self.base_url + url
        parsed = self._urls.get(full)
        if parsed is None:
            if len(self._urls) > 64:  # FCM's send URL, topic URLs: a handful
                self._urls.clear()
            parsed = self._urls[full] = httpx.URL(full)
        kwargs.setdefault("timeout", self.timeout)
        if self._via is not None and kwargs.keys() <= _DIRECT_ARGUMENTS and "json" in kwargs:
            direct = await self._direct(*self._via, method, parsed, kwargs)
            if direct is not None:
                return direct.raise_for_status()
        response: httpx.Response = await self._async_client.request(method, parsed, **kwargs)
        return response.raise_for_status()

    def _template(
        self,
        h2: Http2Transport,
        flow: _CredentialFlow,
        method: str,
        url: httpx.URL,
        kwargs: dict[str, Any],
    ) -> _Template | None:
        credential = flow._credential
        if not credential.valid:
            return None  # the auth flow's before_request refreshes it
        key = _template_key(method, url, kwargs, credential.token)
        if key is None:
            return None
        template = self._templates.get(key)
        if template is not None:
            return template
        client = self._async_client
        if client._transport_for_url(url) is not h2 or client.auth is not flow:
            return None
        request = client.build_request(
            method,
            url,
            headers=kwargs.get("headers"),
            json=kwargs["json"],
            timeout=kwargs["timeout"],
        )
        request.headers.update(flow._auth_headers(request))
        wire = h2.wire_headers(request)
        lengths = [i for i, (name, _) in enumerate(wire) if name == b"content-length"]
        if len(lengths) != 1:
            return None
        if len(self._templates) >= self._TEMPLATES:
            self._templates.clear()
        template = self._templates[key] = _Template(request, wire, lengths[0])
        return template

    async def _direct(
        self,
        h2: Http2Transport,
        flow: _CredentialFlow,
        method: str,
        url: httpx.URL,
        kwargs: dict[str, Any],
    ) -> httpx.Response | None:
        """One request straight through the HTTP/2 transport; None when httpx must send it."""
        template = self._template(h2, flow, method, url, kwargs)
        if template is None:
            return None
        # httpx's JSON body, byte for byte (httpx._content.encode_json).
        body = json.dumps(
            kwargs["json"], ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")
        wire = template.wire.copy()
        wire[template.length_at] = (b"content-length", str(len(body)).encode("ascii"))
        timeouts = template.request.extensions["timeout"]
        try:
            status, headers, content = await h2.exchange(url, wire, body, timeouts)
        except httpx.HTTPError as exc:
            exc.request = self._request_for(flow, method, url, kwargs)
            raise
        if status in flow._refresh_status_codes:
            # Not processed (unauthenticated): httpx's auth flow refreshes the token and tries
            # again, as it always has.
            return None
        request = template.request if status < 400 else self._request_for(flow, method, url, kwargs)
        return httpx.Response(
            status,
            headers=headers,
            content=content,
            request=request,
            extensions={"http_version": b"HTTP/2"},
        )

    def _request_for(
        self, flow: _CredentialFlow, method: str, url: httpx.URL, kwargs: dict[str, Any]
    ) -> httpx.Request:
        """The httpx request of this very message, for errors that carry it."""
        request: httpx.Request = self._async_client.build_request(method, url, **kwargs)
        request.headers.update(flow._auth_headers(request))
        return request


_DIRECT_ARGUMENTS = frozenset({"headers", "json", "timeout"})


def _template_key(
    method: str, url: httpx.URL, kwargs: dict[str, Any], token: str | None
) -> tuple[Any, ...] | None:
    headers, timeout = kwargs.get("headers"), kwargs["timeout"]
    if not (timeout is None or isinstance(timeout, int | float)):
        return None  # an httpx.Timeout: not a key, and firebase-admin passes a number
    key = (method, url, tuple(headers.items()) if headers else (), timeout, token)
    try:
        hash(key)
    except TypeError:  # a header value that is not a plain string
        return None
    return key


@dataclass(frozen=True, slots=True)
class _Template:
    """A request as httpx builds it, and its HTTP/2 header list; only content-length varies."""

    request: httpx.Request
    wire: list[tuple[bytes, bytes]]
    length_at: int


class FcmSender:
    """Sends through firebase-admin's ``send_each_async``; one firebase app per sender, so tests
    can run several.

    The HTTP client under firebase-admin is tuned for thousands of messages a second (see
    bench/push/results.md): HTTP/2 over push's own transport (``push.delivery.http2``),
    multiplexed over ``fcm.connections`` connections with at most
    ``fcm.streams_per_connection`` requests in flight on each, the send URL parsed once, the
    auth headers computed once per access token, no cookie jar, and up to
    ``fcm.concurrent_batches`` calls of ``send_each_async`` at once. The OAuth access token is
    fetched (and refreshed before it expires) in a thread, never on the event loop.
    """

    def __init__(self, settings: FcmSettings) -> None:
        if settings.credentials_file is None:
            raise ValueError("FcmSender needs fcm.credentials_file")
        if settings.send_url:
            # The documented seam: firebase-admin formats this class attribute per app.
            messaging._MessagingService.FCM_URL = settings.send_url.replace("{project}", "{0}")
        self.max_batch = settings.batch_size
        self.concurrency = settings.concurrent_batches
        # One INFO line per FCM request drowns the log at thousands a second.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        info = json.loads(settings.credentials_file.read_text(encoding="utf-8"))
        self._app = firebase_admin.initialize_app(
            credentials.Certificate(info),
            {"projectId": settings.project_id, "httpTimeout": settings.http_timeout_s},
            name=f"push-{uuid.uuid4().hex[:8]}",
        )
        service = messaging._get_messaging_service(self._app)
        self._credential = service._credential
        self._token_lock = asyncio.Lock()
        # firebase-admin retries 500/503 itself (4 times, ignoring Retry-After); one retry
        # policy is enough, and ours records attempts and ends in the DLQ.
        client = _FcmHttpxClient(
            credential=self._credential,
            timeout=settings.http_timeout_s,
            retry_config=_retry.HttpxRetry(max_retries=0),
        )
        # HTTP/2 over our lean transport (push/delivery/http2.py): ALPN h2 on https:// (FCM),
        # prior knowledge on the stand-in's http:// with ``h2c``; a plain http:// URL without
        # h2c (the tests' HTTP/1.1 stand-in) keeps httpx's own HTTP/1.1 pool.
        h2_transport = Http2Transport(
            connections=settings.connections,
            streams_per_connection=settings.streams_per_connection,
            prior_knowledge=settings.h2c,
        )
        http_transport: httpx.AsyncBaseTransport = (
            h2_transport
            if settings.h2c
            else _retry.HttpxRetryTransport(retry=_retry.HttpxRetry(max_retries=0), http2=False)
        )
        flow = _CredentialFlow(self._credential)
        client._async_client = httpx.AsyncClient(
            timeout=settings.http_timeout_s,
            headers=client._headers,
            auth=flow,
            mounts={"http://": http_transport, "https://": h2_transport},
        )
        client._async_client._cookies = _NoCookies()
        client.use_http2(h2_transport, flow)
        service._async_client = client

    async def _fresh_token(self) -> None:
        """Refreshes the access token in a thread when it is missing or about to expire:
        google-auth's refresh is a blocking HTTP call that would otherwise stall the loop
        (and every other partition's sends) inside the first request of a batch."""
        if self._credential.valid:
            return
        async with self._token_lock:
            if not self._credential.valid:
                await asyncio.to_thread(self._credential.refresh, google_requests.Request())

    async def _send_batch(self, chunk: list[Notification]) -> list[SendResult]:
        with _token_targets_allowed():
            messages = [to_message(n) for n in chunk]
        batch = await messaging.send_each_async(messages, app=self._app)
        results: list[SendResult] = []
        for response in batch.responses:
            if response.success:
                results.append(SendResult(Outcome.SENT, message_id=response.message_id))
            else:
                results.append(classify(response.exception))
        return results

    async def send(self, notifications: list[Notification]) -> list[SendResult]:
        """Sends in calls of at most ``max_batch``, ``concurrency`` calls at a time."""
        await self._fresh_token()
        chunks = [
            notifications[start : start + self.max_batch]
            for start in range(0, len(notifications), self.max_batch)
        ]
        slots = asyncio.Semaphore(self.concurrency)

        async def one(chunk: list[Notification]) -> list[SendResult]:
            async with slots:
                return await self._send_batch(chunk)

        answers = await asyncio.gather(*(one(c) for c in chunks))
        return [result for answer in answers for result in answer]

    async def aclose(self) -> None:
        service = messaging._get_messaging_service(self._app)
        await service._async_client.aclose()
        # delete_app closes the (now closed) client with asyncio.run: not on this loop.
        await asyncio.to_thread(firebase_admin.delete_app, self._app)
