"""schemathesis over api's own OpenAPI, against a real server on the real PostgreSQL: no 5xx.

The calls carry a token with every role (a manager of the fuzzed store), so generated requests
get past authentication and reach validation and the use cases.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings

from api.main import create_app
from api.settings import ApiSettings
from conftest import REPO, Infra
from servicekit.testing import TokenFactory

pytestmark = [
    pytest.mark.integration,
    # schemathesis itself draws from `random` inside its strategies (not our code).
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def api_server(infra: Infra) -> Iterator[dict[str, Any]]:
    env = {
        "MAGAM_PROFILE": "prod",
        "MAGAM_ALLOW_DEV_SECRETS": "1",
        "MAGAM_CONFIG_REPO": str(REPO / "config-repo"),
        **infra.pg_env("api"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        app = create_app(ApiSettings(outbox={"relay_enabled": False}))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    tokens = TokenFactory()
    app.state.token_verifier = tokens.verifier()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "api did not start"
        time.sleep(0.05)
    yield {
        "app": app,
        "base_url": f"http://127.0.0.1:{port}",
        "headers": tokens.headers("fuzzer", ["customer", "manager", "admin"]),
    }
    server.should_exit = True
    thread.join(timeout=10)


# The document depends on the code only, not the profile: build it from a throwaway app.
schema = schemathesis.openapi.from_dict(create_app(ApiSettings(profile="local")).openapi())


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_the_schema_allows_gets_a_server_error(
    case: Any, api_server: dict[str, Any]
) -> None:
    headers = dict(api_server["headers"])
    if case.method == "POST" and case.path == "/customer/orders":
        headers["Idempotency-Key"] = os.urandom(8).hex()
    response = case.call(base_url=api_server["base_url"], headers=headers)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
