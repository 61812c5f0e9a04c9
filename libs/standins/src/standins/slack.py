"""A Slack incoming-webhook stand-in: ``POST /services/...`` with ``{"text": ...}`` answers
``ok`` (200, text/plain) as Slack does, and ``invalid_payload`` (400) without text or blocks.

Tests read ``messages``. Run it alone with ``python -m standins.slack --port 9098``.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

WEBHOOK_PATH = "/services/T0MAGAM/B0PUSH/standin"


@dataclass
class FakeSlack:
    messages: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.messages)

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
        status, text = self._answer(scope, body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": text.encode()})

    def _answer(self, scope: Scope, body: bytes) -> tuple[int, str]:
        if scope["method"] != "POST" or not scope["path"].startswith("/services/"):
            return 404, "no_service"
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, "invalid_payload"
        if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")):
            return 400, "no_text"
        with self._lock:
            self.messages.append(payload)
        return 200, "ok"


@dataclass(frozen=True)
class RunningSlack:
    fake: FakeSlack
    webhook_url: str


@contextmanager
def running_slack() -> Iterator[RunningSlack]:
    """Serves a fresh webhook stand-in in a background thread."""
    from standins.server import serve_in_thread  # noqa: PLC0415 — uvicorn only when serving

    fake = FakeSlack()
    with serve_in_thread(fake.app) as base:
        yield RunningSlack(fake, base + WEBHOOK_PATH)


def main(argv: list[str] | None = None) -> None:
    import uvicorn  # noqa: PLC0415 — only the CLI needs it

    parser = argparse.ArgumentParser(
        prog="python -m standins.slack",
        description="Serve a Slack incoming-webhook stand-in on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=9098, help="port to listen on (9098)")
    args = parser.parse_args(argv)
    print(f"Slack webhook stand-in: http://127.0.0.1:{args.port}{WEBHOOK_PATH}")
    uvicorn.run(FakeSlack().app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
