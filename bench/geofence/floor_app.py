"""The floor of the HTTP bench: a trivial ASGI app under the api's uvicorn settings.

    uv run python bench/geofence/floor_app.py --port 8099 --body-bytes 20700

Answers every request with ``--body-bytes`` of JSON, as the nearby fast path answers (one
``http.response.start`` with content-length and content-type, one body). What wrk measures
against it is what uvicorn, the event loop and the kernel cost per request on this machine, with
no application work: no server on one core can do better.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.types import Receive, Scope, Send


def make_app(body_bytes: int) -> object:
    body = b'{"items":[' + b"0," * max(0, (body_bytes - 12) // 2) + b"0]}"
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body-bytes", type=int, default=20_700, help="size of every answer")
    args = parser.parse_args()
    # The same settings as servicekit.runner.uvicorn_server (what magam-api runs with).
    uvicorn.run(
        make_app(args.body_bytes),  # type: ignore[arg-type]
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
