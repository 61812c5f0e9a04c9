"""One trace from a customer's tap to the manager's phone, in the real Zipkin.

api and push run as separate processes in the prod profile (PostgreSQL, Kafka, Zipkin from
scripts/infra), push sends through the FCM stand-in. A customer places an order with a
``traceparent`` of our own; Zipkin must then hold, in that one trace, api's request span, a
database span, the relay's produce span, push's consume and processing spans and the FCM HTTP
call, each linked to its parent — and both services' JSON logs carry the trace id.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from conftest import REPO, Infra
from servicekit.testing import ServiceProcess, TokenFactory, jwks_server
from standins.fcm import RunningFcm, running_fcm

pytestmark = pytest.mark.integration
ZIPKIN = f"http://127.0.0.1:{os.environ.get('MAGAM_ZIPKIN_PORT', '9411')}"


@pytest.fixture(scope="module")
def tokens() -> Iterator[tuple[TokenFactory, str]]:
    factory = TokenFactory()
    with jwks_server(factory) as url:
        yield factory, url


# (service, kind, a word of the name) of each span the trace must hold.
WANTED = {
    "request": ("api", "SERVER", "/customer/orders"),
    "database": ("api", "CLIENT", "INSERT"),
    "produce": ("api", "PRODUCER", "order"),
    "consume": ("push", "CONSUMER", "order"),
    "process": ("push", "CONSUMER", "push deliver"),
    "fcm_call": ("push", "CLIENT", "post"),
}


def _find(spans: list[dict[str, Any]], service: str, kind: str, word: str) -> dict[str, Any] | None:
    return next(
        (
            s
            for s in spans
            if s["localEndpoint"]["serviceName"] == service
            and s.get("kind") == kind
            and word.lower() in s["name"].lower()
        ),
        None,
    )


def _spans(trace_id: str, deadline_s: float = 60) -> list[dict[str, Any]]:
    """The trace once every wanted span arrived (Zipkin ingests asynchronously)."""
    deadline = time.monotonic() + deadline_s
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        response = httpx.get(f"{ZIPKIN}/api/v2/trace/{trace_id}", timeout=5)
        if response.status_code == 200:
            spans = response.json()
            if all(_find(spans, *wanted) for wanted in WANTED.values()):
                break
        time.sleep(1)
    return spans


def test_an_order_is_one_trace_from_api_to_the_fcm_call(
    infra: Infra, tokens: tuple[TokenFactory, str], tmp_path: Path
) -> None:
    factory, jwks_url = tokens
    common = {
        **os.environ,
        "MAGAM_PROFILE": "prod",
        "MAGAM_ALLOW_DEV_SECRETS": "1",
        "MAGAM_CONFIG_REPO": str(REPO / "config-repo"),
        "API_DATABASE__PASSWORD": infra.pg_password,
        "PUSH_DATABASE__PASSWORD": infra.pg_password,
        "API_AUTH__JWKS_URL": jwks_url,
        "API_AUTH__ISSUER": factory.issuer,
        "PUSH_AUTH__JWKS_URL": jwks_url,
        "PUSH_AUTH__ISSUER": factory.issuer,
        "API_TRACING__ENABLED": "true",
        "PUSH_TRACING__ENABLED": "true",
        "API_TRACING__ZIPKIN_ENDPOINT": f"{ZIPKIN}/api/v2/spans",
        "PUSH_TRACING__ZIPKIN_ENDPOINT": f"{ZIPKIN}/api/v2/spans",
        "PUSH_CONSUMER__GROUP_ID": f"push-trace-{uuid.uuid4().hex[:8]}",
        "PUSH_CONSUMER__OFFSET_RESET": "latest",
        # The geofence cache cold-loads every live deal the suite left behind; not needed here.
        "API_GEOFENCE__ENABLED": "false",
    }
    fcm: RunningFcm
    with running_fcm(tmp_path) as fcm:
        push = ServiceProcess.start("push", {**common, **fcm.env()}, tmp_path / "push.log")
        api = ServiceProcess.start("api", common, tmp_path / "api.log")
        try:
            push.wait_ready()
            api.wait_ready()
            _place_an_order_and_check_the_trace(infra, factory, fcm, api, push, tmp_path)
        except BaseException as failure:
            # What the services said is the first thing whoever reads the failure needs.
            tails = "\n".join(f"--- {p.service}.log ---\n{p.tail(4000)}" for p in (api, push))
            raise AssertionError(f"{failure!r}\n{tails}") from failure
        finally:
            for process in (api, push):
                process.stop()


def _place_an_order_and_check_the_trace(
    infra: Infra,
    factory: TokenFactory,
    fcm: RunningFcm,
    api_process: ServiceProcess,
    push_process: ServiceProcess,
    logs: Path,
) -> None:
    store = f"E{uuid.uuid4().hex[:19].upper()}"
    with psycopg.connect(
        f"host=127.0.0.1 port={infra.pg_port} user=magam password={infra.pg_password} dbname=api",
        autocommit=True,
    ) as conn:
        conn.execute(
            "INSERT INTO stores (id, name, branch, category_code, address, district_code,"
            " dong_code, location, large_category_code, middle_category_code, road_address,"
            " lot_address) VALUES (%s, '추적빵집', '', 'I21001', '', '11200', '',"
            " 'SRID=4326;POINT(127.0447 37.5477)', 'I2', 'I210', '', '')",
            (store,),
        )
    with (
        httpx.Client(base_url=api_process.url, timeout=90) as api,
        httpx.Client(base_url=push_process.url, timeout=90) as push,
    ):
        trace_id, device_token = _order_through_the_apis(factory, api, push, store)
        _wait_delivered(device_token, fcm)
        api_metrics = api.get("/metrics").text
        # push counts a send once FCM's answer is recorded, a moment after the stand-in has it.
        push_metrics = _metrics_once(push, 'magam_pushes_total{outcome="sent"')
    # A graceful stop (SIGTERM, as Kubernetes sends) flushes both services' span processors: the
    # trace is then complete in Zipkin, whatever the exporters' batching delay on a busy machine.
    api_process.stop()
    push_process.stop()
    _check(trace_id, logs)
    assert 'magam_http_requests_total{method="POST",route="/customer/orders"' in api_metrics
    assert "magam_outbox_backlog" in api_metrics
    assert 'magam_pushes_total{outcome="sent"' in push_metrics
    assert 'magam_consumer_lag{partition="' in push_metrics


def _order_through_the_apis(
    factory: TokenFactory, api: httpx.Client, push: httpx.Client, store: str
) -> tuple[str, str]:
    manager_id = f"m-trace-{uuid.uuid4().hex[:8]}"
    manager = factory.headers(manager_id, ["customer", "manager"])
    device_token = f"fcm-trace-{secrets.token_hex(8)}"
    registered = push.post(
        "/devices",
        json={"target_kind": "token", "target": device_token, "platform": "android"},
        headers=manager,
    )
    assert registered.status_code == 201, registered.text
    claim = api.post(
        f"/stores/{store}/claims", json={"business_number": "220-81-62517"}, headers=manager
    )
    assert claim.status_code == 201, claim.text
    approve = api.post(
        f"/admin/store-claims/{claim.json()['id']}/approve",
        json={},
        headers=factory.headers("a-trace", ["admin"]),
    )
    assert approve.status_code == 200, approve.text
    deal = api.post(
        f"/manager/stores/{store}/deals",
        json={
            "name": "소금빵",
            "original_price_krw": 3000,
            "discount_percent": 40,
            "quantity": 5,
            "pickup_start_at": datetime.now(UTC).isoformat(),
            "pickup_end_at": (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
        },
        headers=manager,
    ).json()
    assert "id" in deal, deal
    time.sleep(3)  # push has learned the store's manager from store.manager_approved

    trace_id = secrets.token_hex(16)
    # Not through httpx: once any in-process test turned tracing on, httpx is instrumented for the
    # rest of the run and would replace this traceparent with one of its own.
    request = urllib.request.Request(  # noqa: S310 - the api under test on the loopback
        str(api.base_url.join("/customer/orders")),
        data=json.dumps({"deal_id": deal["id"], "quantity": 1}).encode(),
        method="POST",
        headers={
            **factory.headers("c-trace", ["customer"]),
            "Content-Type": "application/json",
            "Idempotency-Key": str(uuid.uuid4()),
            "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
        },
    )
    with urllib.request.urlopen(request, timeout=90) as answer:  # noqa: S310
        assert answer.status == 201, answer.read()
    return trace_id, device_token


def _wait_delivered(device_token: str, fcm: RunningFcm) -> None:
    deadline = time.monotonic() + 60
    while (
        not any(r.target == device_token for r in fcm.fake.accepted())
        and time.monotonic() < deadline
    ):
        time.sleep(0.5)
    delivered = [r for r in fcm.fake.accepted() if r.target == device_token]
    assert delivered, "the manager's phone got no notification"
    assert delivered[-1].data.get("type") == "order.placed"


def _metrics_once(client: httpx.Client, wanted: str) -> str:
    """The service's /metrics text once it shows ``wanted`` (or after 30 s, for the assertion)."""
    deadline = time.monotonic() + 30
    text = client.get("/metrics").text
    while wanted not in text and time.monotonic() < deadline:
        time.sleep(0.2)
        text = client.get("/metrics").text
    return text


def _check(trace_id: str, logs: Path) -> None:
    spans = _spans(trace_id)
    by_id = {s["id"]: s for s in spans}
    names = sorted({(s["localEndpoint"]["serviceName"], s.get("kind"), s["name"]) for s in spans})
    found = {key: _find(spans, *wanted) for key, wanted in WANTED.items()}
    missing = [key for key, span in found.items() if span is None]
    assert not missing, f"missing {missing} in {names}"
    request, database, produce, consume, process, fcm_call = (found[k] or {} for k in WANTED)

    def ancestors(span: dict[str, Any]) -> list[str]:
        chain = []
        while span.get("parentId") in by_id:
            span = by_id[span["parentId"]]
            chain.append(span["id"])
        return chain

    assert request["id"] in ancestors(database)
    assert request["id"] in ancestors(produce)
    assert produce["id"] in ancestors(consume) or produce["id"] == consume.get("parentId")
    assert produce["id"] in ancestors(process)
    assert process["id"] in ancestors(fcm_call)
    assert all(s["traceId"] == trace_id for s in spans)

    for service in ("api", "push"):
        lines = [
            json.loads(line)
            for line in (logs / f"{service}.log").read_text().splitlines()
            if line.startswith("{")
        ]
        assert any(line.get("trace_id") == trace_id for line in lines), (
            f"no {service} log line in the trace"
        )
