"""Bench: the nearby index vs PostGIS vs a NumPy scan; the HTTP endpoint; freshness across replicas.

    uv run python bench/geofence/run.py all            # prepare + index + http + freshness
    uv run python bench/geofence/run.py index --help   # one part

Same run, same data, real PostGIS: a Seoul-sized store file from ``generate-stores`` (554,092
stores) imported with ``import-stores`` into its own database (``geofence_bench``), one deal per
store; the 150,000 scale keeps the deals of a fixed random 150,000 stores live and closes the rest.

- index: p50/p99 of ``GeoCache.within`` (every store with live deals within r, exact) and of the
  first page of 50 by distance (the endpoint's work without HTTP), vs PostGIS ``ST_DWithin`` on a
  GiST-indexed table of the same live stores (psycopg, prepared), vs a NumPy scan of all points with
  the same exact classification; 1 km and 3 km; query points at stores with a jitter.
- http: ``magam-api`` under uvicorn, one worker, prod profile, relay off; ``wrk`` (Debian) from a
  separate process, 1 km, limit 50, random points; then the same with API_GEOFENCE__FORCE_POSTGIS;
  then the floor: ``floor_app.py`` (a constant answer of the same size, same uvicorn settings).
- freshness: two replicas; deals created through one; the other polled every 2 ms until the deal is
  listed; commit (the writer's 201) to visible.

Writes bench/geofence/results.json and results.md (machine, load, command).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from api.clock import utcnow
from api.geofence.cache import GeoCache
from api.geofence.follower import BusStockFeed, CacheFollower
from api.geofence.geodesy import LocalMetric, band_m, geodesic_m
from api.geofence.schemas import NearbySort
from api.geofence.service import NearbyQuery, _from_cache
from servicekit.bus import InProcessBus
from servicekit.testing import (
    TEST_AUDIENCE,
    TEST_ISSUER,
    ServiceProcess,
    TokenFactory,
    free_port,
    jwks_server,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DB = "geofence_bench"
PG = {"host": "127.0.0.1", "port": 5433, "user": "magam", "password": "magam"}
SCALES = (150_000, 554_092)
RADII = (1_000, 3_000)
GOALS = {"index_p99_us": {150_000: 100, 554_092: 250}, "vs_postgis": 50, "vs_numpy": 5}


def _log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def _connect(dbname: str = DB, autocommit: bool = True) -> psycopg.Connection[Any]:
    return psycopg.connect(dbname=dbname, autocommit=autocommit, **PG)  # type: ignore[arg-type]


def _api_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "MAGAM_PROFILE": "prod",
        "MAGAM_ALLOW_DEV_SECRETS": "1",
        "MAGAM_CONFIG_REPO": str(REPO / "config-repo"),
        "API_DATABASE__HOST": PG["host"],  # type: ignore[dict-item]
        "API_DATABASE__PORT": str(PG["port"]),
        "API_DATABASE__USER": PG["user"],  # type: ignore[dict-item]
        "API_DATABASE__PASSWORD": PG["password"],  # type: ignore[dict-item]
        "API_DATABASE__NAME": DB,
        "API_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "API_LOG__LEVEL": "WARNING",
        **(extra or {}),
    }


# -- prepare ---------------------------------------------------------------------------------


def prepare(args: argparse.Namespace) -> None:
    """Generate the file, import it, give every store one deal."""
    with _connect("postgres") as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone():
            conn.execute(f"CREATE DATABASE {DB}")
    with _connect() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    csv = Path(args.file)
    if not csv.exists():
        _log(f"generating {csv} (generate-stores, 554,092 rows)")
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from api.importer.generate import run; run()",
                str(csv),
                "--no-progress",
                "--seed",
                "6",
            ],
            check=True,
        )
    _log("importing (import-stores)")
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from api.importer.cli import run; run()",
            str(csv),
            "--no-progress",
            "--categories",
            "all",
        ],
        check=True,
        env=_api_env(),
    )
    # The app creates what the importer does not (deals, outbox…): start it once.
    _log("creating the remaining tables")
    code = (
        "import asyncio\nfrom api.main import create_app\nfrom api.settings import ApiSettings\n"
        "app = create_app(ApiSettings(geofence={'enabled': False},\n"
        "                             outbox={'relay_enabled': False}))\n"
        "async def main():\n    async with app.router.lifespan_context(app):\n        pass\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=_api_env())
    with _connect() as conn:
        conn.execute("DELETE FROM deals WHERE created_by = 'bench'")
        conn.execute(
            """
            INSERT INTO deals (id, store_id, name, description, original_price_krw, price_krw,
                quantity, stock, pickup_start_at, pickup_end_at, allergens, tags, markdown,
                return_stock_on_expiry, created_by, closed_at)
            SELECT gen_random_uuid(), id, '마감 세트', '', 10000,
                7000 - (abs(hashtext(id)) % 40) * 100, 10, 1 + abs(hashtext(id)) % 10,
                now() - interval '1 hour', now() + interval '2 days',
                '[]', '[]', '[{"minutes_before_end": 60, "percent_off": 60}]', true, 'bench', now()
            FROM stores WHERE closed_at IS NULL
            """
        )
        conn.execute("ANALYZE")
        n = conn.execute("SELECT count(*) FROM deals WHERE created_by = 'bench'").fetchone()
    _log(f"{n[0] if n else 0} deals")


def set_live(stores: int) -> int:
    """Open the deals of ``stores`` stores (a fixed random choice), close every other."""
    with _connect() as conn:
        conn.execute("UPDATE deals SET closed_at = now() WHERE created_by = 'bench'")
        conn.execute(
            """
            UPDATE deals SET closed_at = NULL WHERE created_by = 'bench' AND store_id IN (
                SELECT id FROM stores WHERE closed_at IS NULL ORDER BY md5(id) LIMIT %s)
            """,
            (stores,),
        )
        conn.execute("DROP TABLE IF EXISTS bench_live_points")
        conn.execute(
            """
            CREATE TABLE bench_live_points AS
            SELECT DISTINCT s.id, s.location FROM stores s JOIN deals d ON d.store_id = s.id
            WHERE d.closed_at IS NULL AND d.stock > 0 AND d.pickup_end_at > now()
            """
        )
        conn.execute("CREATE INDEX ON bench_live_points USING gist (location)")
        conn.execute("VACUUM ANALYZE bench_live_points")
        conn.execute("VACUUM ANALYZE deals")
        row = conn.execute("SELECT count(*) FROM bench_live_points").fetchone()
    return int(row[0]) if row else 0


# -- index -----------------------------------------------------------------------------------


async def _load_cache() -> tuple[GeoCache, float]:
    engine = create_async_engine(
        f"postgresql+psycopg://magam:magam@127.0.0.1:5433/{DB}", pool_size=2
    )
    cache = GeoCache()
    follower = CacheFollower(
        cache, async_sessionmaker(engine), BusStockFeed(InProcessBus()), utcnow
    )
    started = time.perf_counter()
    await follower.load()
    seconds = time.perf_counter() - started
    await engine.dispose()
    return cache, seconds


def _percentiles(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e6
    return {
        "p50_us": round(float(np.percentile(a, 50)), 1),
        "p99_us": round(float(np.percentile(a, 99)), 1),
        "mean_us": round(float(a.mean()), 1),
        "n": len(samples),
    }


def _timed(repeat: int, f: Any, *args: Any) -> float:
    """Seconds of one call; with ``repeat`` > 1 the fastest of that many (scheduler noise out)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        f(*args)
        best = min(best, time.perf_counter() - t)
    return best


def _postgis(conn: psycopg.Connection[Any], sql: str, point: str, radius: float) -> list[Any]:
    return conn.execute(sql, {"p": point, "r": radius}, prepare=True).fetchall()


def _numpy_scan(lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float, r: float) -> np.ndarray:
    """The baseline: every point, the same exact classification."""
    metric = LocalMetric.at(lat0, lon0)
    d = metric.distances(lat, lon)
    inside = d <= r - band_m(r)
    for i in np.flatnonzero(np.abs(d - r) <= band_m(r)).tolist():
        inside[i] = geodesic_m(float(lat[i]), float(lon[i]), lat0, lon0) <= r
    return np.flatnonzero(inside)


def index(args: argparse.Namespace) -> dict[str, Any]:
    # The top-level command/at belong to whichever part ran last: the index part keeps its own.
    results: dict[str, Any] = {
        "command": " ".join(["uv run python bench/geofence/run.py", *sys.argv[1:]]),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_avg_at_start": os.getloadavg(),
    }
    rng = random.Random(11)
    for scale in SCALES:
        live = set_live(scale)
        cache, load_s = asyncio.run(_load_cache())
        _log(f"{live} stores with live deals; cache loaded in {load_s:.1f} s")
        stores = list(cache.stores.values())
        lat = np.array([s.lat for s in stores])
        lon = np.array([s.lon for s in stores])
        points = []
        for _ in range(args.queries):
            s = rng.choice(stores)
            points.append((s.lat + rng.uniform(-0.003, 0.003), s.lon + rng.uniform(-0.003, 0.003)))
        entry: dict[str, Any] = {
            "stores_with_live_deals": live,
            "cold_load_s": round(load_s, 2),
            "cache_bytes": sum(d.nbytes() for d in cache.districts.values()),
            "index_bytes": cache.index.nbytes,
            "districts": len(cache.districts),
            "load_avg_before": os.getloadavg(),
        }
        now = datetime.now(UTC)
        with _connect() as conn:
            conn.execute("SET jit = off")
            for radius in RADII:
                for lat0, lon0 in points[:50]:  # warm-up
                    cache.within(lat0, lon0, radius)
                    cache.index.within_numpy(lat0, lon0, radius)
                t_index, t_numpy_path, t_page, t_pg, t_np, sizes = [], [], [], [], [], []
                sql = (
                    "SELECT id, ST_Distance(location, ST_GeogFromText(%(p)s)) "
                    "FROM bench_live_points "
                    "WHERE ST_DWithin(location, ST_GeogFromText(%(p)s), %(r)s)"
                )
                mismatches = 0
                # Each method in its own pass over the same points: interleaving a 300 ms PostGIS
                # query or a full scan before an index query leaves the CPU caches cold for it,
                # and that, not the index, became the index's p99.
                for lat0, lon0 in points:
                    t_index.append(_timed(args.repeat, cache.within, lat0, lon0, radius))
                for lat0, lon0 in points:
                    # The same index answered by its NumPy path (A/B of the compiled kernel).
                    t_numpy_path.append(
                        _timed(args.repeat, cache.index.within_numpy, lat0, lon0, radius)
                    )
                for lat0, lon0 in points:
                    query = NearbyQuery(lat0, lon0, radius, None, NearbySort.DISTANCE, None, 50)
                    t_page.append(_timed(args.repeat, _from_cache, cache, query, None, now))
                for query_point, (lat0, lon0) in enumerate(points):
                    hits = cache.within(lat0, lon0, radius)
                    sizes.append(len(hits))
                    if query_point < args.baseline_queries:
                        p = f"SRID=4326;POINT({lon0!r} {lat0!r})"
                        rows = _postgis(conn, sql, p, radius)
                        t_pg.append(_timed(args.repeat, _postgis, conn, sql, p, radius))
                        t_np.append(_timed(args.repeat, _numpy_scan, lat, lon, lat0, lon0, radius))
                        if {r[0] for r in rows} != set(hits.keys):
                            mismatches += 1
                idx, pg = _percentiles(t_index), _percentiles(t_pg)
                scan = _percentiles(t_np)
                row: dict[str, Any] = {
                    "returns": "every hit's position (int64 array, materialised); "
                    "distances computed on demand",
                    "index": idx,
                    "index_numpy_path": _percentiles(t_numpy_path),
                    "first_page_50": _percentiles(t_page),
                    "postgis_st_dwithin_gist": pg,
                    "numpy_scan": scan,
                    "mean_results": round(float(np.mean(sizes)), 1),
                    "results_differing_from_postgis": mismatches,
                }
                row["p99_vs_postgis"] = round(pg["p99_us"] / idx["p99_us"], 1)
                row["p99_vs_numpy"] = round(scan["p99_us"] / idx["p99_us"], 1)
                row["timing"] = "single call" if args.repeat == 1 else f"best of {args.repeat}"
                entry[f"{radius}m"] = row
                _log(f"{scale} stores, {radius} m: {json.dumps(row)}")
        entry["load_avg_after"] = os.getloadavg()
        results[str(scale)] = entry
        del cache
    return results


# -- http ------------------------------------------------------------------------------------


@contextmanager
def _replica(jwks_url: str, extra: dict[str, str]) -> Iterator[str]:
    with _replica_process(jwks_url, extra) as (url, _):
        yield url


@contextmanager
def _replica_process(
    jwks_url: str, extra: dict[str, str]
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    env = _api_env(
        {
            "API_AUTH__JWKS_URL": jwks_url,
            "API_AUTH__ISSUER": TEST_ISSUER,
            "API_AUTH__AUDIENCE": TEST_AUDIENCE,
            **extra,
        }
    )
    port = free_port()
    log = Path(tempfile.gettempdir()) / f"geofence-bench-{port}.log"
    replica = ServiceProcess.start("api", env, log, port=port)
    try:
        yield replica.url, replica.process
    finally:
        replica.stop(timeout_s=20)


def _wait_warm(url: str, admin: dict[str, str], want_cache: bool) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            stats = httpx.get(f"{url}/admin/geofence/cache", headers=admin, timeout=5).json()
            if stats.get("warm") or not want_cache:
                return
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} never warmed its cache")


_WRK_LUA = """
local lats, lons = {}, {}
math.randomseed(7)
for i = 1, 5000 do
  lats[i] = 37.48 + math.random() * 0.16
  lons[i] = 126.90 + math.random() * 0.20
end
local n = 0
request = function()
  n = n % 5000 + 1
  local path = string.format("/customer/deals/nearby?lat=%.6f&lon=%.6f&radius=1000&limit=50",
    lats[n], lons[n])
  return wrk.format("GET", path, {["Authorization"] = "AUTH"})
end
local answered = 0
response = function()
  answered = answered + 1
  if STOP_AFTER > 0 and answered >= STOP_AFTER then wrk.thread:stop() end
end
"""
QUERY_POINTS = 5000  # the Lua script's points, asked in turn


def _wrk(
    url: str, auth: str, seconds: int, connections: int, stop_after: int = 0
) -> dict[str, Any]:
    """wrk's figures; with ``stop_after``, it stops after that many answers (or ``seconds``)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_LUA.replace("AUTH", auth).replace("STOP_AFTER", str(stop_after)))
    # A 10 s timeout: wrk's default (2 s) would drop, not count, PostGIS's slowest answers.
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    out = subprocess.run(
        [*command, "--latency", "-s", script.name, url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = {"raw": out}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            result["requests_per_s"] = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            value = parts[1]
            unit = 1e-3 if value.endswith("us") else (1.0 if value.endswith("ms") else 1e3)
            result[f"p{parts[0][:-1]}_ms"] = round(float(value.rstrip("usm")) * unit, 2)
        elif "Non-2xx" in line:
            result["non_2xx"] = int(parts[-1])
        elif " requests in " in line and line.rstrip().endswith(" read"):
            # Mean bytes per answer: a page of 50 is ~20 KB; an empty page (no live deals) ~170 B.
            read = re.fullmatch(r"([0-9.]+)([KMG]?)B", parts[-2])
            if read and int(parts[0]):
                scale = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[read.group(2)]
                result["mean_response_bytes"] = round(float(read.group(1)) * scale / int(parts[0]))
    return result


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _live_deals() -> int:
    with _connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM deals WHERE created_by = 'bench' AND closed_at IS NULL"
        ).fetchone()
    return int(row[0]) if row else 0


_RESPONSE_HEAD_BYTES = 130  # status line, date, server, content-length, content-type


def _floor(auth: str, response_bytes: int, args: argparse.Namespace) -> dict[str, Any]:
    """The floor: floor_app.py (a constant answer of the same size, the same uvicorn settings)
    under the same wrk command; its CPU per request is what no app on this stack goes below."""
    port = free_port()
    body = max(response_bytes - _RESPONSE_HEAD_BYTES, 16)
    command = [sys.executable, str(HERE / "floor_app.py"), "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--body-bytes", str(body)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("floor_app.py did not start") from None
                time.sleep(0.2)
        _wrk(url, auth, 3, args.connections)  # warm-up
        cpu = _cpu_s(process.pid)
        row = _wrk(url, auth, args.seconds, args.connections)
        served = row.get("requests_per_s", 0.0) * args.seconds
        if served:
            row["server_cpu_us_per_request"] = round((_cpu_s(process.pid) - cpu) / served * 1e6)
        row["load_avg_after"] = round(os.getloadavg()[0], 2)
        _log(f"http floor: { ({k: v for k, v in row.items() if k != 'raw'}) }")
        return row
    finally:
        process.terminate()
        process.wait(10)


def http(args: argparse.Namespace) -> dict[str, Any]:
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    load_at_start = os.getloadavg()
    if _live_deals() != args.http_scale:  # set_live rewrites every bench deal: only when needed
        set_live(args.http_scale)
    tokens = TokenFactory(kid="geofence-bench")
    admin = tokens.headers("bench-admin", ["admin"])
    auth = tokens.headers("bench-customer", ["customer"], ttl_s=3600)["Authorization"]
    results: dict[str, dict[str, Any]] = {}
    # Both modes: same server, same fast path, same tracing; only the source of the answer differs.
    common = {
        "API_OUTBOX__RELAY_ENABLED": "false",
        "API_TRACING__SAMPLE_RATIO": str(args.trace_sample_ratio),
    }
    with jwks_server(tokens) as jwks_url:
        for mode, extra in (
            ("cache", {}),
            ("postgis", {"API_GEOFENCE__FORCE_POSTGIS": "true"}),
        ):
            with _replica_process(jwks_url, {**common, **extra}) as (url, process):
                _wait_warm(url, admin, want_cache=mode == "cache")
                if mode == "cache":
                    # Every query point asked once first, so every deal a page lists has its JSON
                    # fragments (made once per deal, kept with its entry: in service a deal is
                    # listed many times; here each of the 150k would be new in the timed run).
                    _wrk(url, auth, 60, args.connections, stop_after=QUERY_POINTS + 3_000)
                else:
                    _wrk(url, auth, 3, args.connections)  # warm-up
                cpu = _cpu_s(process.pid)
                row = _wrk(url, auth, args.seconds, args.connections)
                served = row.get("requests_per_s", 0.0) * args.seconds
                if served:
                    # Steadier than req/s on a shared machine: what one request costs the server.
                    row["server_cpu_us_per_request"] = round(
                        (_cpu_s(process.pid) - cpu) / served * 1e6
                    )
                row["load_avg_after"] = round(os.getloadavg()[0], 2)
                _log(f"http {mode}: { ({k: v for k, v in row.items() if k != 'raw'}) }")
                results[mode] = row
    if "mean_response_bytes" in results.get("cache", {}):
        # Same wrk, same answer size, no application: what uvicorn and the kernel cost alone.
        results["floor"] = _floor(auth, results["cache"]["mean_response_bytes"], args)
    summary: dict[str, Any] = {
        # The top-level command/at belong to whichever part ran last: the http part keeps its own.
        "command": " ".join(["uv run python bench/geofence/run.py", *sys.argv[1:]]),
        "at": started_at,
        "load_avg_at_start": load_at_start,
        "stores_with_live_deals": args.http_scale,
        "wrk": f"-t1 -c{args.connections} -d{args.seconds}s, 1 km, limit 50, random points",
        "trace_sample_ratio": args.trace_sample_ratio,
        **results,
    }
    if "requests_per_s" in results.get("postgis", {}):
        summary["rps_vs_postgis"] = round(
            results["cache"]["requests_per_s"] / results["postgis"]["requests_per_s"], 1
        )
    return summary


# -- freshness -------------------------------------------------------------------------------


def freshness(args: argparse.Namespace) -> dict[str, Any]:
    set_live(args.http_scale)
    tokens = TokenFactory(kid="geofence-bench")
    admin = tokens.headers("bench-admin", ["admin"])
    customer = tokens.headers("bench-customer", ["customer"], ttl_s=3600)
    manager = "bench-manager"
    as_manager = tokens.headers(manager, ["customer", "manager"], ttl_s=3600)
    with _connect() as conn:
        rows = conn.execute(
            "SELECT id, ST_Y(location::geometry), ST_X(location::geometry) FROM stores "
            "WHERE closed_at IS NULL ORDER BY md5(id) DESC LIMIT %s",
            (args.changes,),
        ).fetchall()
        conn.execute("DELETE FROM store_managers WHERE user_id = %s", (manager,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO store_managers (store_id, user_id) VALUES (%s, %s)",
                [(r[0], manager) for r in rows],
            )
    lags: list[float] = []
    with (
        jwks_server(tokens) as jwks_url,
        _replica(jwks_url, {}) as writer,
        _replica(jwks_url, {"API_OUTBOX__RELAY_ENABLED": "false"}) as reader,
    ):
        _wait_warm(writer, admin, True)
        _wait_warm(reader, admin, True)
        with httpx.Client(timeout=10) as client:
            for store_id, lat, lon in rows:
                now = datetime.now(UTC)
                created = client.post(
                    f"{writer}/manager/stores/{store_id}/deals",
                    json={
                        "name": "신선도 측정",
                        "original_price_krw": 9000,
                        "discount_percent": 30,
                        "quantity": 3,
                        "pickup_start_at": (now - timedelta(minutes=1)).isoformat(),
                        "pickup_end_at": (now + timedelta(hours=1)).isoformat(),
                    },
                    headers=as_manager,
                )
                committed = time.perf_counter()
                created.raise_for_status()
                deal_id = created.json()["id"]
                while True:
                    body = client.get(
                        f"{reader}/customer/deals/nearby",
                        params={"lat": lat, "lon": lon, "radius": 1, "limit": 100},
                        headers=customer,
                    ).json()
                    if any(i["deal_id"] == deal_id for i in body["items"]):
                        lags.append(time.perf_counter() - committed)
                        break
                    if time.perf_counter() - committed > 30:
                        raise SystemExit(f"deal {deal_id} never showed on the reader")
                    time.sleep(0.002)
    with _connect() as conn:
        conn.execute("DELETE FROM deals WHERE name = '신선도 측정'")
    a = np.asarray(lags) * 1e3
    return {
        "changes": len(lags),
        "p50_ms": round(float(np.percentile(a, 50)), 1),
        "p99_ms": round(float(np.percentile(a, 99)), 1),
        "max_ms": round(float(a.max()), 1),
        "note": "commit = the writer's 201 (the transaction commits before the response); "
        "includes the outbox relay's poll (idle 50 ms), Kafka, the reader's reload, 2 ms polling",
    }


# -- main ------------------------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_at_start": os.getloadavg(),
        "postgis": "3.3 (PostgreSQL 15)",
    }


def _write(results: dict[str, Any]) -> None:
    path = HERE / "results.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update(results)
    path.write_text(json.dumps(old, indent=2, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["prepare", "index", "http", "freshness", "all"])
    parser.add_argument("--file", default=str(Path(tempfile.gettempdir()) / "geofence-seoul.csv"))
    parser.add_argument("--queries", type=int, default=3000, help="index queries per radius")
    parser.add_argument("--baseline-queries", type=int, default=300)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="index: time each query this many times and keep the fastest (for a shared "
        "machine; applies to the index and both baselines alike)",
    )
    parser.add_argument("--http-scale", type=int, default=150_000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--trace-sample-ratio",
        type=float,
        default=0.01,
        help="http: API_TRACING__SAMPLE_RATIO of the server (new traces sampled; 1.0 = all)",
    )
    parser.add_argument("--changes", type=int, default=200)
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": _machine(),
        "command": " ".join(["uv run python bench/geofence/run.py", *sys.argv[1:]]),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if args.part in ("prepare", "all"):
        prepare(args)
    if args.part in ("index", "all"):
        results["index"] = index(args)
        _write(results)
    if args.part in ("http", "all"):
        results["http"] = http(args)
        _write(results)
    if args.part in ("freshness", "all"):
        results["freshness"] = freshness(args)
        _write(results)


if __name__ == "__main__":
    main()
