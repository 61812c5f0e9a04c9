"""The index answers exactly what PostGIS answers: ST_DWithin on geography, edges included.

Hypothesis draws stores (spread over districts), query points and radii; every example is written
to a temporary table with a GiST index on the real PostGIS and compared with the grid index.
Radii equal to PostGIS's own distance of a store (and one float below) put stores on the edge.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from api.geofence.index import DistrictGrid, GeoIndex
from conftest import Infra

pytestmark = pytest.mark.integration

Point = tuple[float, float]


@pytest.fixture(scope="module")
def pg(infra: Infra) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(
        host=infra.pg_host,
        port=infra.pg_port,
        user=infra.pg_user,
        password=infra.pg_password,
        dbname="api",
        autocommit=True,
    ) as conn:
        conn.execute("CREATE TEMP TABLE geofence_points (id int PRIMARY KEY, g geography)")
        conn.execute("CREATE INDEX ON geofence_points USING gist (g)")
        conn.execute("SET enable_seqscan = off")  # the GiST path, as with a large table
        yield conn


def _point(lat: float, lon: float) -> str:
    return f"SRID=4326;POINT({lon!r} {lat!r})"


def _postgis_within(conn: psycopg.Connection[tuple[object, ...]], q: Point, r: float) -> set[str]:
    rows = conn.execute(
        "SELECT id FROM geofence_points WHERE ST_DWithin(g, %s::geography, %s)",
        (_point(*q), r),
    ).fetchall()
    return {str(row[0]) for row in rows}


def _distance(conn: psycopg.Connection[tuple[object, ...]], q: Point, store_id: int) -> float:
    row = conn.execute(
        "SELECT ST_Distance(g, %s::geography) FROM geofence_points WHERE id = %s",
        (_point(*q), store_id),
    ).fetchone()
    assert row is not None
    return float(row[0])  # type: ignore[arg-type]


# Seoul and a margin; offsets keep a store cloud within a few km of its query points.
centers = st.tuples(st.floats(37.42, 37.70), st.floats(126.76, 127.18))
offsets = st.tuples(st.floats(-0.05, 0.05), st.floats(-0.06, 0.06))


@settings(
    max_examples=int(os.environ.get("GEOFENCE_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    center=centers,
    store_offsets=st.lists(offsets, min_size=1, max_size=80),
    districts=st.integers(1, 6),
    query_offsets=st.lists(offsets, min_size=1, max_size=4),
    radii=st.lists(st.floats(0, 5000), min_size=1, max_size=3),
    edge_picks=st.lists(st.integers(0, 10_000), min_size=1, max_size=3),
)
# Found by this test: PostGIS holds points within 5e-14 rad of each other for the same point
# (distance 0, so within radius 0; a geodesic says 9 nm), and 1.3e-13 rad apart for two.
@example(
    center=(37.5, 127.0),
    store_offsets=[(0.0, 0.0)],
    districts=1,
    query_offsets=[(0.0, 1e-13)],
    radii=[0.0],
    edge_picks=[0],
)
@example(
    center=(37.5, 127.0),
    store_offsets=[(0.0, 0.0)],
    districts=1,
    query_offsets=[(0.0, 7.337962824750993e-12)],
    radii=[0.0],
    edge_picks=[0],
)
def test_index_equals_postgis_st_dwithin_on_geography(
    pg: psycopg.Connection[tuple[object, ...]],
    center: Point,
    store_offsets: list[Point],
    districts: int,
    query_offsets: list[Point],
    radii: list[float],
    edge_picks: list[int],
) -> None:
    stores = [(center[0] + a, center[1] + b) for a, b in store_offsets]
    stores += stores[: len(stores) // 10]  # a few stores on the very same spot
    pg.execute("TRUNCATE geofence_points")
    with pg.cursor() as cur:
        cur.executemany(
            "INSERT INTO geofence_points VALUES (%s, %s::geography)",
            [(i, _point(*p)) for i, p in enumerate(stores)],
        )
    grids = [
        DistrictGrid(
            [str(i) for i in range(k, len(stores), districts)],
            [stores[i][0] for i in range(k, len(stores), districts)],
            [stores[i][1] for i in range(k, len(stores), districts)],
        )
        for k in range(districts)
    ]
    index = GeoIndex(grids)
    queries = [(center[0] + a, center[1] + b) for a, b in query_offsets]
    for q in queries:
        cases = list(radii)
        for pick in edge_picks:
            on_edge = _distance(pg, q, pick % len(stores))
            if on_edge <= 5000:
                cases += [
                    on_edge,
                    float(np.nextafter(on_edge, 0)),
                    float(np.nextafter(on_edge, 1e9)),
                ]
        for r in cases:
            hits = index.within(q[0], q[1], r)
            assert set(hits.keys) == _postgis_within(pg, q, r), (q, r)
            # The compiled kernel and the NumPy path: the same hits, in the same order.
            assert index.within_numpy(q[0], q[1], r).keys == hits.keys, (q, r)
