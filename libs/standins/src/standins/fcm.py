"""A Firebase Cloud Messaging stand-in that speaks HTTP v1 (no FCM emulator exists).

It answers like ``fcm.googleapis.com``: the OAuth token exchange of a service account
(``POST /token``, the JWT-bearer grant), ``POST /v1/projects/{project}/messages:send`` with
``token`` or ``fid`` targets, and FCM's real error bodies. Tests inject failures: dead targets
(404 UNREGISTERED), sender mismatches (403), invalid tokens (400), and scripted faults for the next
requests (429 with ``Retry-After``, 503, 500, slow answers). Every accepted message is kept in
``received`` (and appended to a JSON-lines file when one is given), which is what tests count.

Run it alone with ``python -m standins.fcm --port 9099``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import inspect
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_PAYLOAD_BYTES = 4096
INVALID_TOKEN_MESSAGE = "The registration token is not a valid FCM registration token"  # noqa: S105
TARGET_FIELDS = ("token", "topic", "condition", "fid")


@dataclass(frozen=True)
class Fault:
    """What the stand-in does to one upcoming send request instead of accepting it."""

    kind: str  # "quota" (429), "unavailable" (503), "internal" (500) or "slow"
    retry_after_s: int | None = None
    delay_s: float = 0.0


@dataclass(frozen=True)
class Received:
    """One message FCM accepted."""

    name: str
    target_kind: str
    target: str
    message: dict[str, Any]
    at: float

    @property
    def data(self) -> dict[str, str]:
        data: dict[str, str] = self.message.get("data") or {}
        return data


@dataclass(frozen=True)
class Attempt:
    """One send request and how it was answered (tests read timings from these)."""

    target: str | None
    status: int
    at: float


def fcm_error(
    status: int,
    rpc_status: str,
    message: str,
    error_code: str,
    *,
    field_violation: str | None = None,
) -> dict[str, Any]:
    """An FCM v1 error body, as Google sends it."""
    details: list[dict[str, Any]] = [{"@type": FCM_ERROR_TYPE, "errorCode": error_code}]
    if field_violation:
        details.append(
            {
                "@type": BAD_REQUEST_TYPE,
                "fieldViolations": [{"field": field_violation, "description": message}],
            }
        )
    return {"error": {"code": status, "message": message, "status": rpc_status, "details": details}}


#: What a route decides: status, the JSON body as an object, extra headers.
Routed = tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]
#: What goes on the wire: status, headers, body bytes.
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


def _encode(routed: Routed) -> Answer:
    """The answer as bytes: orjson's compact JSON (for both HTTP/2 and HTTP/1.1)."""
    status, payload, headers = routed
    raw = orjson.dumps(payload)
    return (
        status,
        [
            (b"content-type", b"application/json; charset=UTF-8"),
            (b"content-length", str(len(raw)).encode()),
            *headers,
        ],
        raw,
    )


_FAULT_ANSWERS = {
    "quota": (
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Send requests' of service fcm.googleapis.com.",
        "QUOTA_EXCEEDED",
    ),
    "unavailable": (503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE"),
    "internal": (500, "INTERNAL", "Internal error encountered.", "INTERNAL"),
}


@dataclass
class FakeFcm:
    """The stand-in's state and its ASGI app (``app``); thread-safe for tests that poke it."""

    project_id: str = "magam-test"
    log_path: Path | None = None
    unregistered: set[str] = field(default_factory=set)
    sender_mismatch: set[str] = field(default_factory=set)
    invalid: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    token_requests: int = 0
    #: Every distinct Bearer credential a send request carried.
    bearers: set[str] = field(default_factory=set)
    _faults: deque[Fault] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _issued: set[str] = field(default_factory=set)

    # -- test controls ------------------------------------------------------------------------

    def fail_next(self, count: int, kind: str, *, retry_after_s: int | None = None) -> None:
        """The next ``count`` send requests fail (or are slow) the way ``kind`` says."""
        if kind not in (*_FAULT_ANSWERS, "slow"):
            raise ValueError(f"unknown fault {kind!r}; use quota, unavailable, internal or slow")
        with self._lock:
            self._faults.extend(Fault(kind, retry_after_s) for _ in range(count))

    def slow_next(self, count: int, delay_s: float) -> None:
        with self._lock:
            self._faults.extend(Fault("slow", delay_s=delay_s) for _ in range(count))

    def accepted(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def attempts_for(self, target: str) -> list[Attempt]:
        with self._lock:
            return [a for a in self.attempts if a.target == target]

    def service_account(self, base_url: str) -> dict[str, Any]:
        """A service-account JSON whose ``token_uri`` is this stand-in.

        Like a real one it is in the default universe (``googleapis.com``), so google-auth does
        the OAuth exchange (a signed JWT to ``token_uri`` for a short access token) as it does
        against Google, and sends that token as the Bearer. Nothing leaves 127.0.0.1: the token
        exchange goes to ``token_uri``, and google-auth's regional-access-boundary lookup
        (iamcredentials.googleapis.com) is off unless
        ``GOOGLE_SDK_EXPERIMENTAL_PYTHON_REGIONAL_ACCESS_BOUNDARY_LOOKUP_ENABLED`` is set (2.63;
        push's tests record every socket they open to prove it).
        """
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": uuid.uuid4().hex,
            "private_key": pem,
            "client_email": f"push@{self.project_id}.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": f"{base_url}/token",
            "universe_domain": "googleapis.com",
        }

    # -- the protocol -------------------------------------------------------------------------

    @property
    def app(self) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        """The ASGI app (a plain function, so servers detect ASGI 3)."""

        async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
            await self._asgi(scope, receive, send)

        return asgi

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        answer = self.handle(scope["method"], scope["path"], list(scope["headers"]), body)
        status, headers, raw = await answer if inspect.isawaitable(answer) else answer
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": raw})

    def handle(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Answer | Awaitable[Answer]:
        """One request, as the h2c server hands it over (and the ASGI app, for HTTP/1.1):
        status, headers and body bytes — or an awaitable of them for an answer that must wait
        (a scripted slow answer)."""
        path = target.partition("?")[0]
        routed = self._route(method, path, headers, body)
        if inspect.isawaitable(routed):
            return self._encode_later(routed)
        return _encode(routed)

    async def _encode_later(self, routed: Awaitable[Routed]) -> Answer:
        return _encode(await routed)

    def _route(
        self, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Routed | Awaitable[Routed]:
        if method == "POST" and path == self._send_path:
            auth = next((v for k, v in headers if k == b"authorization"), b"")
            return self._send(auth.decode("latin-1"), body)
        if method == "POST" and path == "/token":
            return self._token(body)
        if method == "POST" and path.startswith("/v1/projects/") and path.endswith(":send"):
            return (
                403,
                fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH"),
                [],
            )
        return 404, {"error": {"code": 404, "message": "Not Found", "status": "NOT_FOUND"}}, []

    @property
    def _send_path(self) -> str:
        return f"/v1/projects/{self.project_id}/messages:send"

    def _token(self, body: bytes) -> Routed:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != JWT_BEARER_GRANT or form.get("assertion", "").count(".") != 2:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT."}, []
        token = f"ya29.fake-{uuid.uuid4().hex}"
        with self._lock:
            self.token_requests += 1
            self._issued.add(token)
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}, []

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        with self._lock:
            if token in self._issued:
                return True
        # A self-signed service-account JWT (google-auth's path outside googleapis.com).
        parts = token.split(".")
        if len(parts) != 3:
            return False
        try:
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except ValueError:
            return False
        return isinstance(claims, dict) and "iss" in claims

    def _send(self, auth: str, body: bytes) -> Routed | Awaitable[Routed]:
        with self._lock:
            self.bearers.add(auth.partition(" ")[2])
        if not self._authorized(auth):
            return (
                401,
                {
                    "error": {
                        "code": 401,
                        "message": "Request had invalid authentication credentials.",
                        "status": "UNAUTHENTICATED",
                    }
                },
                [],
            )
        try:
            request = orjson.loads(body)
            message = request["message"]
            if not isinstance(message, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return (
                400,
                fcm_error(
                    400, "INVALID_ARGUMENT", "Invalid JSON payload received.", "INVALID_ARGUMENT"
                ),
                [],
            )
        targets = [f for f in TARGET_FIELDS if message.get(f)]
        target = str(message[targets[0]]) if len(targets) == 1 else None
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.kind == "slow":
            return self._send_later(fault.delay_s, request, message, targets, target, len(body))
        return self._answer(request, message, targets, target, fault, len(body))

    async def _send_later(
        self,
        delay_s: float,
        request: dict[str, Any],
        message: dict[str, Any],
        targets: list[str],
        target: str | None,
        size: int,
    ) -> Routed:
        await asyncio.sleep(delay_s)
        return self._answer(request, message, targets, target, None, size)

    def _answer(
        self,
        request: dict[str, Any],
        message: dict[str, Any],
        targets: list[str],
        target: str | None,
        fault: Fault | None,
        size: int,
    ) -> Routed:
        status, answer, headers = self._judge(message, targets, target, fault, size)
        now = time.time()
        with self._lock:
            self.attempts.append(Attempt(target, status, now))
        if status == 200 and not request.get("validate_only"):
            kind = targets[0]
            received = Received(answer["name"], kind, target or "", message, now)
            with self._lock:
                self.received.append(received)
                if self.log_path is not None:
                    line = {
                        "name": received.name,
                        "target": target,
                        "kind": kind,
                        "data": received.data,
                        "at": received.at,
                    }
                    with self.log_path.open("ab") as log:
                        log.write(orjson.dumps(line) + b"\n")
        return status, answer, headers

    def _judge(  # noqa: PLR0911 — one answer per FCM error, in FCM's order
        self,
        message: dict[str, Any],
        targets: list[str],
        target: str | None,
        fault: Fault | None,
        size: int,
    ) -> Routed:
        if len(targets) != 1 or target is None:
            return (
                400,
                fcm_error(
                    400,
                    "INVALID_ARGUMENT",
                    "Exactly one of token, topic, condition or fid must be specified.",
                    "INVALID_ARGUMENT",
                ),
                [],
            )
        if fault is not None:
            status, rpc, text, code = _FAULT_ANSWERS[fault.kind]
            headers = (
                [(b"retry-after", str(fault.retry_after_s).encode())]
                if fault.retry_after_s is not None
                else []
            )
            return status, fcm_error(status, rpc, text, code), headers
        if size > MAX_PAYLOAD_BYTES + 512:
            return (
                400,
                fcm_error(400, "INVALID_ARGUMENT", "Message is too big", "INVALID_ARGUMENT"),
                [],
            )
        with self._lock:
            dead = target in self.unregistered
            mismatch = target in self.sender_mismatch
            invalid = target in self.invalid
        if invalid:
            return (
                400,
                fcm_error(
                    400,
                    "INVALID_ARGUMENT",
                    INVALID_TOKEN_MESSAGE,
                    "INVALID_ARGUMENT",
                    field_violation=f"message.{targets[0]}",
                ),
                [],
            )
        if dead:
            return (
                404,
                fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"),
                [],
            )
        if mismatch:
            return (
                403,
                fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH"),
                [],
            )
        name = f"projects/{self.project_id}/messages/{uuid.uuid4().hex}"
        return 200, {"name": name}, []


@dataclass(frozen=True)
class RunningFcm:
    """A stand-in serving on 127.0.0.1 and the service-account file that points at it."""

    fake: FakeFcm
    base_url: str
    credentials_file: Path
    #: Sends go over cleartext HTTP/2 with prior knowledge (h2c), as FCM speaks HTTP/2.
    http2: bool = False

    @property
    def send_url(self) -> str:
        """FCM's send URL on the stand-in, ``{project}`` left for the client to fill."""
        return f"{self.base_url}/v1/projects/{{project}}/messages:send"

    def env(self, prefix: str = "PUSH") -> dict[str, str]:
        """Environment that points a service's FCM settings at this stand-in."""
        return {
            f"{prefix}_FCM__SENDER": "fcm",
            f"{prefix}_FCM__PROJECT_ID": self.fake.project_id,
            f"{prefix}_FCM__CREDENTIALS_FILE": str(self.credentials_file),
            f"{prefix}_FCM__SEND_URL": self.send_url,
            f"{prefix}_FCM__H2C": "true" if self.http2 else "false",
        }


@contextmanager
def running_fcm(
    directory: Path, project_id: str = "magam-test", *, http2: bool = False
) -> Iterator[RunningFcm]:
    """Serves a fresh stand-in in a background thread; writes its service account to
    ``directory``. ``http2`` serves h2c (and HTTP/1.1, for the token exchange) instead of
    HTTP/1.1 only."""
    from standins.server import free_port, serve_in_thread  # noqa: PLC0415 — only when serving

    fake = FakeFcm(project_id=project_id)
    if http2:
        from standins.h2c import serve_h2c_in_thread  # noqa: PLC0415

        serving = serve_h2c_in_thread(fake.app, free_port(), fake.handle)
    else:
        serving = serve_in_thread(fake.app)
    with serving as base:
        credentials = directory / "fcm-service-account.json"
        credentials.write_text(json.dumps(fake.service_account(base)), encoding="utf-8")
        yield RunningFcm(fake, base, credentials, http2)


def main(argv: list[str] | None = None) -> None:
    import uvicorn  # noqa: PLC0415 — only the CLI needs it at import time

    parser = argparse.ArgumentParser(
        prog="python -m standins.fcm",
        description="Serve the FCM HTTP v1 stand-in on 127.0.0.1 (messages:send and /token).",
    )
    parser.add_argument("--port", type=int, default=9099, help="port to listen on (9099)")
    parser.add_argument("--project", default="magam-local", help="the Firebase project id")
    parser.add_argument("--log", type=Path, help="append every accepted message to this JSONL file")
    parser.add_argument(
        "--http2",
        action="store_true",
        help="speak cleartext HTTP/2 (prior knowledge) as FCM speaks HTTP/2; clients need h2c",
    )
    parser.add_argument(
        "--service-account",
        type=Path,
        help="write a matching service-account JSON here (give it to push as FCM credentials)",
    )
    args = parser.parse_args(argv)
    fake = FakeFcm(project_id=args.project, log_path=args.log)
    base = f"http://127.0.0.1:{args.port}"
    if args.service_account:
        args.service_account.write_text(json.dumps(fake.service_account(base)), encoding="utf-8")
    print(f"FCM stand-in on {base}/v1/projects/{args.project}/messages:send")
    if args.http2:
        import uvloop  # noqa: PLC0415 — C event loop: the stand-in's share of a bench's CPU

        from standins.h2c import serve_h2c  # noqa: PLC0415

        uvloop.run(serve_h2c(fake.app, "127.0.0.1", args.port, fake.handle))
    else:
        uvicorn.run(fake.app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
