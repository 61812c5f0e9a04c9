"""Starts auth, api and push in the embedded ``local`` profile, in one process.

One process because the local profile's event bus is in-process: api's outbox relay and push's
consumer share it, as they would share Kafka. SQLite files live in .local/. Ctrl-C stops all three.

Usage: uv run python scripts/run_local.py [--help]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from api.main import create_app as create_api
from api.settings import ApiSettings
from auth.main import create_app as create_auth
from auth.settings import AuthSettings
from push.main import create_app as create_push
from push.settings import PushSettings
from servicekit.bus import InProcessBus
from servicekit.runner import serve_together, uvicorn_server


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Run auth, api and push in the local profile "
        "(SQLite, in-process bus, demo data).",
        epilog="Ports come from config-repo/<service>.yml; "
        "override them with API_HTTP__PORT, AUTH_HTTP__PORT, PUSH_HTTP__PORT.",
    )
    parser.parse_args()
    os.environ.setdefault("MAGAM_PROFILE", "local")
    if os.environ["MAGAM_PROFILE"] != "local":
        print("run_local.py runs the local profile only; unset MAGAM_PROFILE", file=sys.stderr)
        return 2

    bus = InProcessBus()
    api_s, auth_s, push_s = ApiSettings(), AuthSettings(), PushSettings()
    servers = [
        ("auth", uvicorn_server(create_auth(auth_s, bus), auth_s, shared=True)),
        ("api", uvicorn_server(create_api(api_s, bus), api_s, shared=True)),
        ("push", uvicorn_server(create_push(push_s, bus), push_s, shared=True)),
    ]
    banner = "\n".join(
        f"  {name:<5} http://{s.http.host}:{s.http.port}/docs"
        for name, s in (("auth", auth_s), ("api", api_s), ("push", push_s))
    )
    print(
        f"magam (local profile) starting:\n{banner}\n"
        '  demo users: POST /auth/dev/login {"user": "customer|manager|admin"} on auth\n'
        "  Ctrl-C stops everything.",
        file=sys.stderr,
        flush=True,
    )
    asyncio.run(serve_together(servers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
