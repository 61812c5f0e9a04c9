"""Serving FastAPI apps with uvicorn, with our JSON logs instead of uvicorn's."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Generator, Sequence
from typing import TypeVar

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from servicekit.config import ConfigError, ServiceSettings
from servicekit.logs import current_service

S = TypeVar("S", bound=ServiceSettings)


class _SharedSignalServer(uvicorn.Server):
    """A server that leaves signal handling to ``serve_together`` (one handler for all)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def uvicorn_server(
    app: FastAPI, settings: ServiceSettings, *, shared: bool = False
) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        host=settings.http.host,
        port=settings.http.port,
        log_config=None,  # keep the JSON handler configure_logging installed
        access_log=False,  # metrics and spans record every request; a log line each costs more
        lifespan="on",
        # uvloop and httptools (C) instead of asyncio's loop and h11 (pure Python): h11 alone
        # took ~6% of a request's CPU in the geofence bench (bench/geofence/results.md).
        loop="uvloop",
        http="httptools",
    )
    return _SharedSignalServer(config) if shared else uvicorn.Server(config)


def serve_service(
    service: str,
    load_settings: Callable[[], S],
    create_app: Callable[[S], FastAPI],
) -> None:
    """Loads settings, builds the app and serves it; a configuration problem (a missing secret,
    a bad value) ends the process with one clear line and exit code 2, not a traceback."""
    try:
        settings = load_settings()
        app = create_app(settings)
    except (ConfigError, ValidationError) as exc:
        print(f"{service}: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn_server(app, settings).run()


async def _serve_as(service: str, server: uvicorn.Server) -> None:
    current_service.set(service)  # every task this server starts inherits it: its log lines
    await server.serve()


async def serve_together(named_servers: Sequence[tuple[str, uvicorn.Server]]) -> None:
    """Runs several servers in one event loop until SIGINT/SIGTERM, then stops them all."""
    loop = asyncio.get_running_loop()
    servers = [server for _, server in named_servers]

    def stop_all() -> None:
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_all)
    tasks = [asyncio.create_task(_serve_as(name, s)) for name, s in named_servers]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop_all()  # one server failing to start (a port in use) stops the others
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
