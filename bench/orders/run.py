"""Order placement through the HTTP endpoint on the real PostgreSQL: orders/s and p99.

Runs, in one run and on the same data shape, the two ways of taking stock:
  atomic_update      one UPDATE ... SET stock = stock - n WHERE stock >= n (what api does)
  select_for_update  SELECT ... FOR UPDATE, check, UPDATE (the baseline)
each on one hot deal and spread across 1,000 deals. api runs as real uvicorn processes in the prod
profile (outbox relay on, publishing to the real Kafka); the load comes from wrk in a separate
process. Results go to bench/orders/results.md and results.json.

Usage: uv run python bench/orders/run.py [--duration 15] [--connections 64] [--workers 2]
Needs: scripts/infra up (PostgreSQL, Kafka) and wrk (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from servicekit.testing import TokenFactory

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PG = "host=127.0.0.1 port={port} user=magam password=magam dbname=api"

LUA = """
local deals = {%s}
local run_id = "%s"
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function request()
  counter = counter + 1
  local deal = deals[(counter %% #deals) + 1]
  wrk.headers["Idempotency-Key"] = run_id .. "-" .. tostring(tid) .. "-" .. counter
  return wrk.format("POST", "/customer/orders", nil,
    '{"deal_id":"' .. deal .. '","quantity":1}')
end
"""


def _serve_jwks(tokens: TokenFactory) -> tuple[http.server.ThreadingHTTPServer, str]:
    body = json.dumps(tokens.jwks()).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/jwks.json"


def _start_api(
    port: int, reservation: str, workers: int, jwks_url: str, issuer: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MAGAM_PROFILE": "prod",
        "MAGAM_ALLOW_DEV_SECRETS": "1",
        "MAGAM_CONFIG_REPO": str(REPO / "config-repo"),
        "API_DATABASE__PASSWORD": "magam",
        "API_ORDERS__RESERVATION": reservation,
        "API_AUTH__JWKS_URL": jwks_url,
        "API_AUTH__ISSUER": issuer,
        "API_LOG__LEVEL": "WARNING",
    }
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "api.main:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("api did not become ready in 60 s: is `scripts/infra up` running?")


def _prepare(
    port: int, pg_port: int, tokens: TokenFactory, deals: int, stock: int
) -> tuple[dict[str, str], list[str]]:
    store_id = f"B{uuid.uuid4().hex[:19].upper()}"
    manager_id = f"bench-manager-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG.format(port=pg_port), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO stores (id, name, branch, category_code, address, district_code,"
            " dong_code, location, large_category_code, middle_category_code, road_address,"
            " lot_address)"
            " VALUES (%s, 'bench', '', 'I20101', '', '11200', '', 'SRID=4326;POINT(127.04 37.55)',"
            " 'I2', 'I201', '', '')",
            (store_id,),
        )
        conn.execute(
            "INSERT INTO store_managers (store_id, user_id) VALUES (%s, %s)", (store_id, manager_id)
        )
    manager = tokens.headers(manager_id, ["manager"], ttl_s=3600)
    now = datetime.now(UTC)
    ids = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=manager, timeout=30) as client:
        for i in range(deals):
            response = client.post(
                f"/manager/stores/{store_id}/deals",
                json={
                    "name": f"bench {i}",
                    "original_price_krw": 8000,
                    "discount_percent": 30,
                    "quantity": min(stock, 1000),
                    "pickup_start_at": now.isoformat(),
                    "pickup_end_at": (now + timedelta(hours=6)).isoformat(),
                },
            )
            response.raise_for_status()
            deal_id = response.json()["id"]
            for _ in range((stock - 1000) // 1000):  # a deal lists at most 1,000 at once
                client.post(
                    f"/manager/stores/{store_id}/deals/{deal_id}/restock", json={"quantity": 1000}
                ).raise_for_status()
            ids.append(deal_id)
    return manager, ids


def _wrk(
    port: int, deal_ids: list[str], token: str, duration: int, connections: int
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA % (",".join(f'"{d}"' for d in deal_ids), uuid.uuid4().hex))
    out = subprocess.run(
        [
            "wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script.name,
            "-H", f"Authorization: Bearer {token}", "-H", "Content-Type: application/json",
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(script.name)

    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", out, re.M)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=15, help="seconds of load per case")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--port", type=int, default=18100)
    parser.add_argument("--pg-port", type=int, default=int(os.environ.get("MAGAM_PG_PORT", "5433")))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
        return 2

    tokens = TokenFactory()
    jwks_server, jwks_url = _serve_jwks(tokens)
    customer = tokens.token(f"bench-customer-{uuid.uuid4().hex[:8]}", ["customer"], ttl_s=3600)
    results: list[dict[str, Any]] = []
    try:
        for reservation in ("atomic_update", "select_for_update"):
            api = _start_api(args.port, reservation, args.workers, jwks_url, tokens.issuer)
            try:
                _, hot = _prepare(args.port, args.pg_port, tokens, deals=1, stock=200_000)
                _, spread = _prepare(args.port, args.pg_port, tokens, deals=1000, stock=1000)
                for shape, ids in (("one hot deal", hot), ("1,000 deals", spread)):
                    measured = _wrk(args.port, ids, customer, args.duration, args.connections)
                    results.append({"reservation": reservation, "shape": shape, **measured})
                    print(json.dumps(results[-1]), flush=True)
            finally:
                api.terminate()
                api.wait(timeout=30)
    finally:
        jwks_server.shutdown()

    machine = f"{platform.node()} · {os.cpu_count()} cores · {platform.python_version()}"
    command = "uv run python bench/orders/run.py " + " ".join(sys.argv[1:])
    summary = {
        "when": datetime.now(UTC).isoformat(),
        "machine": machine,
        "command": command,
        "workers": args.workers,
        "connections": args.connections,
        "results": results,
    }
    (HERE / "results.json").write_text(json.dumps(summary, indent=2))
    lines = [
        "# Order placement bench",
        "",
        f"- when: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · machine: {machine}",
        f"- command: `{command}`",
        f"- uvicorn workers: {args.workers}, wrk connections: {args.connections},"
        f" {args.duration} s per case",
        "- goal: ≥ 1,000 orders/s at p99 ≤ 50 ms on one hot deal",
        "",
        "| stock taken by | deals | orders/s | p50 ms | p99 ms | non-2xx |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['reservation']} | {r['shape']} | {r['requests_per_s']:.0f} | {r['p50_ms']:.1f} |"
        f" {r['p99_ms']:.1f} | {r['non_2xx']} |"
        for r in results
    ]
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
