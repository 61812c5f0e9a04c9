"""The grid index and its distance approximation, without a database."""

from __future__ import annotations

import os
import random
import tempfile

import numpy as np
import pytest

from api.geofence import geodesy, index, kernel
from api.geofence.geodesy import LocalMetric, band_m, geodesic_m
from api.geofence.index import COL_DEG, ROW_DEG, DistrictGrid, GeoIndex, in_box, within


def test_mid_latitude_distance_stays_far_inside_the_exact_band_across_seoul() -> None:
    rng = random.Random(7)
    worst_ratio = 0.0
    for _ in range(200):
        lat0, lon0 = rng.uniform(37.40, 37.72), rng.uniform(126.74, 127.20)
        metric = LocalMetric.at(lat0, lon0)
        lat = lat0 + np.array([rng.uniform(-0.05, 0.05) for _ in range(40)])
        lon = lon0 + np.array([rng.uniform(-0.065, 0.065) for _ in range(40)])
        approx = metric.distances(lat, lon)
        for la, lo, d in zip(lat.tolist(), lon.tolist(), approx.tolist(), strict=True):
            exact = geodesic_m(la, lo, lat0, lon0)
            if exact <= 5_500:
                worst_ratio = max(worst_ratio, abs(exact - d) / band_m(exact))
    assert worst_ratio < 0.1  # the approximation's error is under a tenth of the band


def test_geodesic_matches_a_known_postgis_distance() -> None:
    # PostGIS 3.3 answered 1419.01936495 to SELECT ST_Distance(a, b) of these two geographies.
    assert geodesic_m(37.5, 127.0, 37.51, 127.01) == pytest.approx(1419.01936495, abs=1e-6)


def _brute(points: list[tuple[float, float]], lat0: float, lon0: float, r: float) -> set[str]:
    return {str(i) for i, (la, lo) in enumerate(points) if geodesic_m(la, lo, lat0, lon0) <= r}


def test_within_equals_brute_force_over_several_districts() -> None:
    rng = random.Random(3)
    points = [(rng.uniform(37.50, 37.56), rng.uniform(126.95, 127.02)) for _ in range(600)]
    grids = [
        DistrictGrid(
            [str(i) for i in range(k, 600, 3)],
            [points[i][0] for i in range(k, 600, 3)],
            [points[i][1] for i in range(k, 600, 3)],
        )
        for k in range(3)
    ]
    for _ in range(30):
        lat0, lon0, r = rng.uniform(37.5, 37.56), rng.uniform(126.95, 127.02), rng.uniform(0, 3000)
        hits = within(grids, lat0, lon0, r)
        assert set(hits.keys) == _brute(points, lat0, lon0, r)
        for key, d in zip(hits.keys, hits.distances.tolist(), strict=True):
            la, lo = points[int(key)]
            assert d == pytest.approx(geodesic_m(la, lo, lat0, lon0), abs=band_m(r))


def test_a_point_exactly_on_the_circle_is_inside_and_one_beyond_is_not() -> None:
    grid = DistrictGrid(["a"], [37.5123], [127.0456])
    r = geodesic_m(37.5123, 127.0456, 37.5, 127.0)
    assert within([grid], 37.5, 127.0, r).keys == ["a"]
    assert within([grid], 37.5, 127.0, float(np.nextafter(r, 0))).keys == []


def test_empty_grids_and_far_queries_find_nothing() -> None:
    empty = DistrictGrid([], [], [])
    grid = DistrictGrid(["a"], [37.5], [127.0])
    assert len(within([empty, grid], 35.1, 129.0, 5000)) == 0
    assert in_box([empty, grid], 37.4, 126.9, 37.6, 127.1) == [("a", 37.5, 127.0)]
    assert in_box([grid], 37.6, 126.9, 37.7, 127.1) == []


def test_points_and_queries_on_cell_borders_are_classified_exactly() -> None:
    rng = random.Random(5)
    # Points on row and column borders (as the index computes them), and a few between.
    rows = [round((37.55 + 90) / ROW_DEG) + k for k in range(-40, 40)]
    cols = [round((126.98 + 180) / COL_DEG) + k for k in range(-40, 40)]
    points = [(r * ROW_DEG - 90, c * COL_DEG - 180) for r in rows[::5] for c in cols[::5]]
    points += [(rng.uniform(37.54, 37.56), rng.uniform(126.97, 126.99)) for _ in range(150)]
    index = GeoIndex(
        [
            DistrictGrid(
                [str(i) for i in range(k, len(points), 2)],
                [points[i][0] for i in range(k, len(points), 2)],
                [points[i][1] for i in range(k, len(points), 2)],
            )
            for k in range(2)
        ]
    )
    for _ in range(12):
        lat0, lon0 = rng.choice(points)  # the query itself sits on borders too
        for r in (0.0, rng.uniform(0, 1500), geodesic_m(*rng.choice(points), lat0, lon0)):
            hits = index.within(lat0, lon0, r)
            assert set(hits.keys) == _brute(points, lat0, lon0, r), (lat0, lon0, r)
            assert len(set(hits.keys)) == len(hits)  # each point once


def test_distances_of_wholesale_hits_are_computed_on_demand_and_match() -> None:
    rng = random.Random(9)
    points = [(rng.uniform(37.50, 37.52), rng.uniform(127.00, 127.02)) for _ in range(400)]
    grid = DistrictGrid(
        [str(i) for i in range(400)], [p[0] for p in points], [p[1] for p in points]
    )
    hits = within([grid], 37.51, 127.01, 800)
    assert len(hits) > 100
    for key, d in zip(hits.keys, hits.distances.tolist(), strict=True):
        assert d == pytest.approx(geodesic_m(*points[int(key)], 37.51, 127.01), abs=band_m(800))


def test_the_kernel_keeps_the_grid_constants_of_the_numpy_path() -> None:
    assert (kernel.ROW_DEG, kernel.COL_DEG, kernel.EPS_DEG) == (ROW_DEG, COL_DEG, index._EPS_DEG)


def test_the_kernel_keeps_the_spheroid_of_the_exact_geodesic() -> None:
    assert (kernel._A, kernel._B, kernel._F) == (geodesy.WGS84_A, geodesy._B, geodesy._F)


def test_compiled_vincenty_stays_within_its_slack_of_geographiclib_and_defers_at_the_edge() -> None:
    rng = random.Random(11)
    lat0, lon0 = 37.5665, 126.9780
    lats, lons = [], []
    for _ in range(3000):
        r, angle = rng.uniform(0, 5000), rng.uniform(0, 2 * np.pi)
        lats.append(lat0 + r / 111_000 * np.sin(angle))
        lons.append(lon0 + r / 88_000 * np.cos(angle))
    lat, lon = np.array(lats), np.array(lons)
    exact = np.array([geodesic_m(a, b, lat0, lon0) for a, b in zip(lats, lons, strict=True)])

    distances, close = kernel.settle_band(lat, lon, lat0, lon0, 1000.0)

    worst = float(np.max(np.abs(distances - exact)))
    assert worst < kernel.VINCENTY_SLACK_M / 10, worst
    assert not close.any()
    # A radius equal to a point's distance: too close for Vincenty to decide, GeographicLib does.
    _, close = kernel.settle_band(lat[:1], lon[:1], lat0, lon0, float(exact[0]))
    assert close.all()


@pytest.mark.parametrize("seed", range(4))
def test_the_compiled_kernel_answers_exactly_as_the_numpy_path(seed: int) -> None:
    rng = random.Random(seed)
    # Districts of different densities side by side (and overlapping), some points on cell
    # borders, a few on the very same spot; queries inside, at the edges and far outside.
    grids, points = [], []
    for d in range(rng.randint(1, 6)):
        lat0, lon0 = 37.45 + 0.02 * (d % 3), 126.90 + 0.03 * (d // 3)
        pts = [(rng.uniform(lat0, lat0 + 0.04), rng.uniform(lon0, lon0 + 0.05)) for _ in range(400)]
        row, col = round((lat0 + 90) / ROW_DEG), round((lon0 + 180) / COL_DEG)
        pts += [((row + k) * ROW_DEG - 90, (col + k) * COL_DEG - 180) for k in range(0, 60, 3)]
        pts += pts[:20]
        grids.append(DistrictGrid([f"{d}-{i}" for i in range(len(pts))], *zip(*pts, strict=True)))
        points += pts
    grids.append(DistrictGrid([], [], []))
    geo = GeoIndex(grids)
    for _ in range(150):
        if rng.random() < 0.3:
            lat0, lon0 = rng.choice(points)
        else:
            lat0, lon0 = rng.uniform(37.40, 37.56), rng.uniform(126.85, 127.05)
        cases = [0.0, rng.uniform(0, 5000), geodesic_m(*rng.choice(points), lat0, lon0)]
        for r in [*cases, float(np.nextafter(cases[2], 0))]:
            fast = geo.within(lat0, lon0, r, compiled=True)
            slow = geo.within_numpy(lat0, lon0, r)
            assert fast.position.tolist() == slow.position.tolist(), (lat0, lon0, r)
            assert fast.distances.tolist() == slow.distances.tolist(), (lat0, lon0, r)


def test_the_numpy_path_can_be_chosen_for_the_whole_module(monkeypatch: pytest.MonkeyPatch) -> None:
    grid = DistrictGrid(["a", "b"], [37.5, 37.6], [127.0, 127.0])
    monkeypatch.setattr(index, "KERNEL", False)
    slow = within([grid], 37.5, 127.0, 100)
    monkeypatch.setattr(index, "KERNEL", True)
    fast = within([grid], 37.5, 127.0, 100)
    assert slow.keys == fast.keys == ["a"]


def test_the_kernel_cache_goes_under_the_temp_dir_when_its_source_dir_is_read_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    kernel._cache_dir()
    assert os.environ["NUMBA_CACHE_DIR"].startswith(tempfile.gettempdir())
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/chosen")
    kernel._cache_dir()  # an explicit choice stays
    assert os.environ["NUMBA_CACHE_DIR"] == "/chosen"
