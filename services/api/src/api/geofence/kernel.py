"""The index query's hot loop as one compiled kernel (numba): one call per query, no NumPy calls.

It does exactly what :meth:`api.geofence.index.GeoIndex.within_numpy` does with its ~60 NumPy
calls — the same floating-point operations in the same order (no fast-math, so no reassociation
and no fused multiply-adds), hence the same cells, the same classification and the same order of
hits: for every row the circle's box touches, the inner and outer column runs; for every visited
district, the four slice bounds from the cell table (a row the district lacks, or whose run misses
its columns, is skipped without a read); edge points (outer minus inner) tested with the
mid-latitude distance; inner runs emitted wholesale. The few edge points within the band are
settled in the same loop by Vincenty's inverse (compiled); only a point within ten micrometres
of the radius is left to GeographicLib (as PostGIS), by the caller.

Compiled once per machine and cached beside this file (``__pycache__``; in the image, where that
is read-only, under the temp dir); :func:`warm` loads or compiles it when an index is built, so
no request pays for it.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


def _cache_dir() -> None:
    """Where numba keeps the compiled kernel: beside this file when that is writable (dev, CI),
    else a directory under the temp dir (the image: read-only root, writable /tmp); an explicit
    ``NUMBA_CACHE_DIR`` wins. Must run before numba is imported (it reads its config then)."""
    if "NUMBA_CACHE_DIR" in os.environ:
        return
    here = Path(__file__).parent
    if not os.access(here / "__pycache__" if (here / "__pycache__").exists() else here, os.W_OK):
        os.environ["NUMBA_CACHE_DIR"] = str(Path(tempfile.gettempdir()) / "magam-numba")


_cache_dir()

import numba  # noqa: E402 — after the cache directory is chosen


def _jit(f: Callable[..., Any]) -> Any:
    try:
        return numba.njit(cache=True, nogil=True)(f)
    except RuntimeError:  # no writable cache location at all: compiled once per process
        return numba.njit(nogil=True)(f)


Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

# The grid's constants, duplicated from index.py (which imports this module); a unit test keeps
# them equal. Derived ones are computed here in Python exactly as index.py's NumPy arrays are.
ROW_DEG = 0.0012
COL_DEG = 0.0016
EPS_DEG = 1e-9
_ROW_END = ROW_DEG + EPS_DEG
_SIDE_LO = -1.0 / COL_DEG
_SIDE_HI = 1.0 / COL_DEG
_NUDGE_LO = -EPS_DEG / COL_DEG
_NUDGE_HI = EPS_DEG / COL_DEG


# WGS84 as PostGIS builds it (b = a - a/rf, then f), duplicated from geodesy.py (which imports
# nothing from here); a unit test keeps them equal.
_A = 6378137.0
_B = _A - _A / 298.257223563
_F = (_A - _B) / _A
_EP2 = (_A * _A - _B * _B) / (_B * _B)
# Vincenty's inverse below differs from GeographicLib's by at most 5e-7 m on lines up to 5 km
# (measured over 200,000 random Seoul lines); a point this close to the radius is left to
# GeographicLib, as PostGIS measures it.
VINCENTY_SLACK_M = 1e-5


@_jit
def _vincenty_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Vincenty's inverse on the spheroid: the distance in meters (short lines, not antipodes)."""
    d2r = math.pi / 180.0
    big_l = (lon2 - lon1) * d2r
    u1 = math.atan((1.0 - _F) * math.tan(lat1 * d2r))
    u2 = math.atan((1.0 - _F) * math.tan(lat2 * d2r))
    su1, cu1, su2, cu2 = math.sin(u1), math.cos(u1), math.sin(u2), math.cos(u2)
    lam = big_l
    ss = cs = sig = c2a = c2sm = 0.0
    for _ in range(100):
        sl, cl = math.sin(lam), math.cos(lam)
        t1 = cu2 * sl
        t2 = cu1 * su2 - su1 * cu2 * cl
        ss = math.sqrt(t1 * t1 + t2 * t2)
        if ss == 0.0:
            return 0.0
        cs = su1 * su2 + cu1 * cu2 * cl
        sig = math.atan2(ss, cs)
        sa = cu1 * cu2 * sl / ss
        c2a = 1.0 - sa * sa
        c2sm = cs - 2.0 * su1 * su2 / c2a if c2a != 0.0 else 0.0
        c = _F / 16.0 * c2a * (4.0 + _F * (4.0 - 3.0 * c2a))
        previous = lam
        lam = big_l + (1.0 - c) * _F * sa * (
            sig + c * ss * (c2sm + c * cs * (-1.0 + 2.0 * c2sm * c2sm))
        )
        if abs(lam - previous) < 1e-13:
            break
    uu = c2a * _EP2
    a = 1.0 + uu / 16384.0 * (4096.0 + uu * (-768.0 + uu * (320.0 - 175.0 * uu)))
    b = uu / 1024.0 * (256.0 + uu * (-128.0 + uu * (74.0 - 47.0 * uu)))
    ds = (
        b
        * ss
        * (
            c2sm
            + b
            / 4.0
            * (
                cs * (-1.0 + 2.0 * c2sm * c2sm)
                - b / 6.0 * c2sm * (-3.0 + 4.0 * ss * ss) * (-3.0 + 4.0 * c2sm * c2sm)
            )
        )
    )
    return _B * a * (sig - ds)


@_jit
def _query(  # noqa: PLR0912 — one flat kernel is the point: no calls in the hot loop
    points: Floats,
    first: Ints,
    meta: Ints,
    bounds: Floats,
    lat0: float,
    lon0: float,
    dlat: float,
    dlon: float,
    r0: int,
    n: int,
    held_lo: int,
    held_hi: int,
    sure: float,
    maybe: float,
    ky0: float,
    ky1: float,
    kx0: float,
    kx1: float,
    radius_m: float,
) -> tuple[Ints, Floats, Ints]:
    # Districts whose point bounds meet the circle's box, in index order.
    south, north = lat0 - dlat, lat0 + dlat
    west, east = lon0 - dlon, lon0 + dlon
    nd = bounds.shape[0]
    visit = np.empty(nd, dtype=np.int64)
    nv = 0
    for d in range(nd):
        if (
            bounds[d, 0] <= north
            and bounds[d, 2] >= south
            and bounds[d, 1] <= east
            and bounds[d, 3] >= west
        ):
            visit[nv] = d
            nv += 1
    # Column bounds per row: outer start, inner start, inner end, outer end (ends exclusive).
    cols = np.empty((4, n), dtype=np.int64)
    off = r0 * ROW_DEG - (90.0 + lat0)
    lon_c = (lon0 + 180.0) / COL_DEG
    nudge_lo = _NUDGE_LO + lon_c
    nudge_hi = _NUDGE_HI + lon_c
    for i in range(n):
        start = i * ROW_DEG
        a = (start - EPS_DEG) + off
        b = (start + _ROW_END) + off
        dya = a * (ky0 + ky1 * a)
        dya *= dya
        dyb = b * (ky0 + ky1 * b)
        dyb *= dyb
        room0 = sure - max(dya, dyb)
        room1 = maybe - min(dya, dyb)
        if held_lo <= i < held_hi:
            room1 = maybe
        room0 = math.sqrt(max(room0, 0.0))
        room1 = math.sqrt(max(room1, 0.0))
        kxa = kx0 + kx1 * a
        kxb = kx0 + kx1 * b
        if kx1 < 0:
            room0 /= kxa
            room1 /= kxb
        else:
            room0 /= kxb
            room1 /= kxa
        cols[0, i] = math.floor(room1 * _SIDE_LO + nudge_lo)
        cols[1, i] = math.floor(room0 * _SIDE_LO + nudge_hi) + 1
        cols[2, i] = max(math.floor(room0 * _SIDE_HI + nudge_lo), cols[1, i])
        cols[3, i] = math.floor(room1 * _SIDE_HI + nudge_hi) + 1
    # Slice bounds of the (district, row) pairs that can hold a point, district-major: a row the
    # district lacks, or whose outer run misses the district's columns, is skipped unread (its
    # slices would all be empty: the padding row, or one clamped column).
    at = np.empty((4, nv * n), dtype=np.int64)
    m = 0
    n_edge = 0
    n_inner = 0
    for v in range(nv):
        d = visit[v]
        row0 = meta[0, d]
        last = meta[1, d]
        col0 = meta[2, d]
        ncols = meta[3, d]
        base = meta[4, d]
        # Rows 1 .. last - 1 of the district's table hold points (0 and last are padding).
        i_lo = max(row0 - r0, 0)
        i_hi = min(row0 + last - 1 - r0, n)
        for i in range(i_lo, i_hi):
            if cols[3, i] <= col0 or cols[0, i] >= col0 + ncols:
                continue
            row = (r0 + 1 + i - row0) * ncols + base
            for j in range(4):
                at[j, m] = first[min(max(cols[j, i] - col0, 0), ncols) + row]
            n_edge += max(at[1, m] - at[0, m], 0) + max(at[3, m] - at[2, m], 0)
            n_inner += max(at[2, m] - at[1, m], 0)
            m += 1
    position = np.empty(n_edge + n_inner, dtype=np.int64)
    d2 = np.empty(n_edge, dtype=np.float64)
    close = np.empty(n_edge, dtype=np.int64)
    kept = 0
    nc = 0
    # Edge slices first (every left one, then every right one), as the NumPy path orders them.
    # A point in the band (within ``maybe`` but not ``sure``) is settled here on the spheroid:
    # Vincenty; and one within VINCENTY_SLACK_M of the radius is kept and listed in ``close``
    # for GeographicLib, as PostGIS measures it.
    for side in range(2):
        lo = 2 * side
        for k in range(m):
            for p in range(at[lo, k], at[lo + 1, k]):
                y = points[p, 0] - lat0
                x = points[p, 1] - lon0
                sy = y * ky1 + ky0
                sx = y * kx1 + kx0
                y *= sy
                x *= sx
                q = y * y + x * x
                if q <= maybe:
                    if q > sure:
                        dist = _vincenty_m(points[p, 0], points[p, 1], lat0, lon0)
                        if abs(dist - radius_m) <= VINCENTY_SLACK_M:
                            close[nc] = kept
                            nc += 1
                        elif dist > radius_m:
                            continue
                        q = dist * dist
                    position[kept] = p
                    d2[kept] = q
                    kept += 1
    total = kept
    for k in range(m):
        for p in range(at[1, k], at[2, k]):
            position[total] = p
            total += 1
    return position[:total], d2[:kept], close[:nc]


def query(
    points: Floats,
    first: Ints,
    meta: Ints,
    bounds: Floats,
    lat0: float,
    lon0: float,
    dlat: float,
    dlon: float,
    r0: int,
    n: int,
    held: tuple[int, int],
    sure: float,
    maybe: float,
    k: tuple[float, float, float, float],
    radius_m: float,
) -> tuple[Ints, Floats, Ints]:
    """Positions of the edge points within the radius (first; band points settled by Vincenty)
    and of every inner point; the edge points' squared distances (exact for band points); which
    edge points lie so close to the radius that only GeographicLib may decide (indexes into them,
    kept for now, their squared Vincenty distance in place)."""
    result: tuple[Ints, Floats, Ints] = _query(
        points, first, meta, bounds, lat0, lon0, dlat, dlon, r0, n, *held, sure, maybe, *k, radius_m
    )
    return result


@_jit
def _distances(
    points: Floats,
    position: Ints,
    start: int,
    lat0: float,
    lon0: float,
    ky0: float,
    ky1: float,
    kx0: float,
    kx1: float,
    out: Floats,
) -> None:
    for i in range(start, len(position)):
        p = position[i]
        dlat = points[p, 0] - lat0
        dy = dlat * (ky0 + ky1 * dlat)
        dx = (points[p, 1] - lon0) * (kx0 + kx1 * dlat)
        out[i] = math.sqrt(dx * dx + dy * dy)


def distances(
    points: Floats,
    position: Ints,
    start: int,
    lat0: float,
    lon0: float,
    k: tuple[float, float, float, float],
    out: Floats,
) -> None:
    """``out[start:]``: the mid-latitude distances of the points at ``position[start:]`` — the
    same operations as :meth:`api.geofence.geodesy.LocalMetric.distances`, one pass, no copies."""
    _distances(points, position, start, lat0, lon0, *k, out)


@_jit
def _settle(lats: Floats, lons: Floats, lat0: float, lon0: float) -> Floats:
    out = np.empty(len(lats), dtype=np.float64)
    for i in range(len(lats)):
        out[i] = _vincenty_m(lats[i], lons[i], lat0, lon0)
    return out


def settle_band(
    lats: Floats, lons: Floats, lat0: float, lon0: float, radius_m: float
) -> tuple[Floats, npt.NDArray[np.bool_]]:
    """Spheroid distances of the band's points (Vincenty, compiled), and which of them lie so
    close to the radius (within :data:`VINCENTY_SLACK_M`) that only GeographicLib may decide."""
    distances: Floats = _settle(lats, lons, lat0, lon0)
    return distances, np.abs(distances - radius_m) <= VINCENTY_SLACK_M


_NEAREST_BUCKETS = 256


@_jit
def _nearest(
    distances: Floats, position: Ints, lower: float, k: int, max_text_m: float
) -> tuple[Ints, Floats, Ints, bool]:
    n = len(distances)
    chosen = np.empty(n, dtype=np.int64)
    m = 0
    low = math.inf
    high = -math.inf
    for i in range(n):
        d = distances[i]
        if d >= lower:
            chosen[m] = i
            m += 1
            low = min(low, d)
            high = max(high, d)
    # A bucket sort over [low, high]: the bucket is monotone in the distance, so the buckets up
    # to the one holding the k-th nearest are a prefix of the distance order with every tie of
    # its last distance; stable placement and insertion sort keep ties in hit order.
    buckets = _NEAREST_BUCKETS
    scale = (buckets - 1) / (high - low) if m and high > low else 0.0
    starts = np.zeros(buckets + 1, dtype=np.int64)
    for j in range(m):
        starts[int((distances[chosen[j]] - low) * scale) + 1] += 1
    last = buckets - 1
    for b in range(buckets):
        starts[b + 1] += starts[b]
        if starts[b + 1] >= k and last == buckets - 1:
            last = b
    taken = starts[last + 1]
    order = np.empty(taken, dtype=np.int64)
    for j in range(m):
        i = chosen[j]
        b = int((distances[i] - low) * scale)
        if b <= last:
            order[starts[b]] = i
            starts[b] += 1
    for j in range(1, taken):  # items move within their bucket only: a few steps each
        i = order[j]
        d = distances[i]
        t = j
        while t > 0 and distances[order[t - 1]] > d:
            order[t] = order[t - 1]
            t -= 1
        order[t] = i
    out_position = np.empty(taken, dtype=np.int64)
    out_distance = np.empty(taken, dtype=np.float64)
    out_text = np.empty(taken, dtype=np.int64)
    for j in range(taken):
        i = order[j]
        d = distances[i]
        out_position[j] = position[i]
        out_distance[j] = d
        tenths = d * 10.0
        nearest = math.floor(tenths + 0.5)
        plain = 0.0 < d <= max_text_m and -0.499999 < tenths - nearest < 0.499999
        out_text[j] = int(nearest) if plain else -1
    return out_position, out_distance, out_text, taken < m


def nearest(
    distances: Floats, position: Ints, lower: float, k: int, max_text_m: float
) -> tuple[Ints, Floats, Ints, bool]:
    """The hits not nearer than ``lower`` in distance order (stable: ties by hit order), cut
    after the ``k`` nearest: a prefix of that order with at least k hits (or all), ending with
    every tie of its last distance (``cut``: whether any hit was left out). Their positions,
    distances and each distance's tenths of a metre, ``round(d, 1) * 10``, where that is plainly
    so (in (0, max_text_m], not within rounding error of a half), else -1."""
    result: tuple[Ints, Floats, Ints, bool] = _nearest(distances, position, lower, k, max_text_m)
    return result


_warmed = False


def warm() -> None:
    """Load (or compile, once per machine) the kernel for the index's array types."""
    global _warmed  # noqa: PLW0603 — once per process
    if _warmed:
        return
    points = np.array([[37.5, 127.0]], dtype=np.float64)
    first = np.zeros(4, dtype=np.int64)
    first[2:] = 1
    meta = np.ascontiguousarray(np.array([[0], [2], [0], [1], [0]], dtype=np.int64))
    bounds = np.array([[37.5, 127.0, 37.5, 127.0]], dtype=np.float64)
    corner = (37.5, 127.0, 0.01, 0.01, 0, 1, (0, 0), 1.0, 2.0, (1.0,) * 4, 1.0)
    query(points, first, meta, bounds, *corner)
    settle_band(points[:, 0].copy(), points[:, 1].copy(), 37.51, 127.01, 1000.0)
    distances(points, np.zeros(1, dtype=np.int64), 0, 37.5, 127.0, (1.0,) * 4, np.empty(1))
    nearest(np.ones(3), np.arange(3, dtype=np.int64), -math.inf, 1, 5000.0)
    _warmed = True
