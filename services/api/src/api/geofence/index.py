"""Per-district cell indexes over store points, queried as one structure, with exact distances.

Each district keeps its points sorted by a cell (rows of ``ROW_DEG`` ≈ 133 m, columns of
``COL_DEG`` ≈ 141 m, row-major) and a table ``first[cell]`` = where that cell's points start, so
the points of any run of cells in one row are one slice found by indexing, not by searching.
The cells were 33 m at first: 16× the table and 4× the row look-ups, which a query pays in cache
misses, against a few more edge points to test now (bench/geofence/results.md).
:class:`GeoIndex` lays the districts' arrays end to end (each district one contiguous part);
a query visits only the districts whose point bounds meet the circle's bounding box.

A query computes, for every row the circle touches, two column runs: the *inner* run (cells
entirely inside the circle, with the approximation's safety band) and the *outer* run (cells
that may hold a point inside). Every row of every visited district is looked up in one gather.
Inner points are accepted wholesale; only the thin edge (outer minus inner) gets the vectorised
mid-latitude distance, and only the few edge points within ``band_m`` of the radius get the exact
geodesic of :mod:`api.geofence.geodesy` — the result equals PostGIS ``ST_DWithin`` on geography
(property-tested against the real PostGIS). A query costs a fixed number of NumPy calls whatever
the number of districts, rows or points it touches.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from functools import cached_property

import numpy as np
import numpy.typing as npt

from api.geofence import kernel
from api.geofence.geodesy import Floats, LocalMetric, band_m, geodesic_m

Ints = npt.NDArray[np.int64]

ROW_DEG = 0.0012  # ≈ 133 m
COL_DEG = 0.0016  # ≈ 141 m at Seoul's latitude
# A point's computed cell may be off by one ulp-sized step at a cell's border: every cell is
# treated as reaching this far (in degrees, ≈ 0.1 mm) beyond its nominal border.
_EPS_DEG = 1e-9
# Queries run the compiled kernel; False: the NumPy path everywhere (reference, or no JIT).
KERNEL = True
_EMPTY = np.empty(0, dtype=np.int64)
_NO_FLOATS = np.empty(0, dtype=np.float64)


def _row_spans(n: int) -> Floats:
    """Latitude spans [a, b] of n consecutive rows from 0, widened by the border tolerance."""
    start = np.arange(n) * ROW_DEG
    return np.stack((start - _EPS_DEG, start + (ROW_DEG + _EPS_DEG)))


_ROW_SPANS = _row_spans(128)  # rows of a circle up to ≈ 8 km
# Rows of the column-bound matrix: outer start, inner start, inner end, outer end (in columns).
_SIDE = np.array([[-1.0], [-1.0], [1.0], [1.0]]) / COL_DEG
_NUDGE = np.array([[-_EPS_DEG], [_EPS_DEG], [-_EPS_DEG], [_EPS_DEG]]) / COL_DEG
# floor(x) + 1 for the starts of inner runs (≥ ceil: a cell only partly inside is an edge cell)
# and for the exclusive ends of outer runs.
_OPEN = np.array([[0], [1], [0], [1]], dtype=np.int64)
_OUTER_INNER = np.array([1, 0, 0, 1])
_STARTS = np.array([0, 2, 1])  # edge slices first (left and right), then the inner ones
_ENDS = np.array([1, 3, 2])


def _rows(lat: Floats) -> Ints:
    return np.floor((lat + 90.0) / ROW_DEG).astype(np.int64)


def _cols(lon: Floats) -> Ints:
    return np.floor((lon + 180.0) / COL_DEG).astype(np.int64)


def _ranges(starts: Ints, lengths: Ints) -> tuple[Ints, Ints]:
    """The concatenation of ``arange(s, s + n)`` for every (s, n): one arange, one repeat;
    and the cumulative lengths."""
    ends = np.cumsum(lengths)
    total = int(ends[-1]) if len(ends) else 0
    if total == 0:
        return _EMPTY, ends
    result: Ints = np.arange(total, dtype=np.int64)
    starts -= ends
    starts += lengths
    result += np.repeat(starts, lengths)
    return result, ends


class DistrictGrid:
    """One district's points sorted by fine cell, with the cell table; rebuilt when they change."""

    def __init__(self, keys: Sequence[str], lats: Sequence[float], lons: Sequence[float]) -> None:
        lat = np.asarray(lats, dtype=np.float64)
        lon = np.asarray(lons, dtype=np.float64)
        if not len(lat):
            self.lat, self.lon, self.keys = lat, lon, []
            self.row0, self.nrows, self.col0, self.ncols = 0, 0, 0, 0
            self.first: Ints = np.zeros(1, dtype=np.int64)
            self.bounds = (1.0, 1.0, -1.0, -1.0)  # empty: meets nothing
            return
        rows, cols = _rows(lat), _cols(lon)
        self.row0, self.col0 = int(rows.min()), int(cols.min())
        self.nrows = int(rows.max()) - self.row0 + 1
        self.ncols = int(cols.max()) - self.col0 + 1
        # Row-major cells, with an empty padding row above and below: a query clamps rows the
        # district lacks onto them.
        cell = (rows - self.row0 + 1) * self.ncols + (cols - self.col0)
        order = np.argsort(cell, kind="stable")
        self.lat = lat[order]
        self.lon = lon[order]
        self.keys = [keys[i] for i in order.tolist()]
        # first[c] = how many points lie in cells before c; first[-1] = all of them.
        self.first = np.searchsorted(cell[order], np.arange((self.nrows + 2) * self.ncols + 1))
        self.bounds = (float(lat.min()), float(lon.min()), float(lat.max()), float(lon.max()))

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        return int(self.lat.nbytes + self.lon.nbytes + self.first.nbytes) + 8 * len(self.keys)


class Hits:
    """Points within the radius (unsorted): where they sit, and (on demand) their distances.

    The first ``len(edge_d2)`` hits are edge points, whose squared distances the query computed
    (exact for the band); the others were accepted wholesale and get their distance when asked.
    Keys are looked up only for the hits a caller uses — a page of 50 out of thousands.
    """

    def __init__(
        self,
        index: GeoIndex,
        position: Ints,
        edge_d2: Floats,
        metric: LocalMetric | None,
        compiled: bool = False,
    ) -> None:
        self.index = index
        self.position = position
        self._edge_d2 = edge_d2
        self._metric = metric
        self._compiled = compiled

    def __len__(self) -> int:
        return len(self.position)

    def key(self, i: int) -> str:
        return self.index.key(int(self.position[i]))

    @property
    def keys(self) -> list[str]:
        return self.index.keys_at(self.position)

    @cached_property
    def distances(self) -> Floats:
        """Meters: the mid-latitude distance, or the exact geodesic within the band."""
        result: Floats = np.empty(len(self.position), dtype=np.float64)
        n = len(self._edge_d2)
        np.sqrt(self._edge_d2, out=result[:n])
        m = self._metric
        if m is not None and len(result) > n:
            if self._compiled:
                k = (m.ky0, m.ky1, m.kx0, m.kx1)
                kernel.distances(self.index.points, self.position, n, m.lat0, m.lon0, k, result)
            else:
                inner = self.position[n:]
                result[n:] = m.distances(self.index.lat[inner], self.index.lon[inner])
        return result


class GeoIndex:
    """The districts' grids end to end: one gather answers every row of every visited district."""

    def __init__(self, grids: Iterable[DistrictGrid]) -> None:
        parts = [g for g in grids if len(g)]
        self.grids = parts
        # Keys stay in their districts' lists (a global list would cost a 500k-item copy on
        # every rebuild): a position maps to its district by the parts' offsets.
        self._offsets: list[int] = np.cumsum([0] + [len(g) for g in parts]).tolist()
        self._size: int = self._offsets[-1]
        # (lat, lon) pairs: the edge test gathers both with one index.
        self.points: Floats = np.empty((self._size, 2), dtype=np.float64)
        self.first: Ints = np.zeros(1, dtype=np.int64)
        if parts:
            self.points[:, 0] = np.concatenate([g.lat for g in parts])
            self.points[:, 1] = np.concatenate([g.lon for g in parts])
            self.first = np.concatenate(
                [g.first + o for g, o in zip(parts, self._offsets, strict=False)]
            )
        self.lat: Floats = self.points[:, 0]
        self.lon: Floats = self.points[:, 1]
        sizes = [(g.nrows + 2) * g.ncols + 1 for g in parts]
        # Per district, as rows: first row, last padding row, first column, columns, offset.
        self._meta: Ints = np.array(
            [[g.row0, g.nrows, g.col0, g.ncols] for g in parts], dtype=np.int64
        ).reshape(-1, 4)
        self._meta[:, 1] += 1  # the last padding row
        self._meta = np.column_stack([self._meta, np.cumsum([0, *sizes[:-1]])[: len(parts)]]).T
        self._bounds = [g.bounds for g in parts]
        # The kernel's copies: C-ordered, one typed array each (south, west, north, east rows).
        self._kmeta: Ints = np.ascontiguousarray(self._meta)
        self._kbounds: Floats = np.array(self._bounds, dtype=np.float64).reshape(-1, 4)
        if KERNEL:
            kernel.warm()

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        return int(self.points.nbytes + self.first.nbytes)

    def key(self, position: int) -> str:
        part = bisect.bisect_right(self._offsets, position) - 1
        key: str = self.grids[part].keys[position - self._offsets[part]]
        return key

    def keys_at(self, positions: Ints) -> list[str]:
        parts = np.searchsorted(self._offsets, positions, side="right") - 1
        local = positions - np.asarray(self._offsets).take(parts)
        grids = self.grids
        return [grids[g].keys[i] for g, i in zip(parts.tolist(), local.tolist(), strict=True)]

    def _visited(self, south: float, west: float, north: float, east: float) -> Ints:
        return np.array(
            [
                i
                for i, (s, w, n, e) in enumerate(self._bounds)
                if s <= north and n >= south and w <= east and e >= west
            ],
            dtype=np.int64,
        )

    def _slices(self, visit: Ints, r0: int, nrows: int, cols: Ints) -> Ints:
        """Point positions at the column bounds ``cols`` (m × rows from ``r0``, global columns,
        ascending down a column) of each row, in each visited district: m × districts × rows."""
        row0, last, col0, ncols, base = self._meta.take(visit, axis=1)[:, :, None]
        # A row the district lacks: its padding row (every bound the same, empty slices).
        row = np.arange(r0 + 1, r0 + 1 + nrows) - row0
        np.maximum(row, 0, out=row)
        np.minimum(row, last, out=row)
        row *= ncols
        row += base
        local = cols[:, None, :] - col0
        np.maximum(local, 0, out=local)
        np.minimum(local, ncols, out=local)
        local += row
        found: Ints = self.first.take(local)
        return found

    def within(
        self, lat0: float, lon0: float, radius_m: float, *, compiled: bool | None = None
    ) -> Hits:
        """Every point whose geography distance to (lat0, lon0) is at most ``radius_m``.

        One call of the compiled kernel (:mod:`api.geofence.kernel`), or with ``compiled=False``
        (or the module's ``KERNEL`` off) the NumPy path, :meth:`within_numpy`: the same hits in
        the same order, the same distances.
        """
        if not (KERNEL if compiled is None else compiled):
            return self.within_numpy(lat0, lon0, radius_m)
        metric = LocalMetric.at(lat0, lon0)
        band = band_m(radius_m)
        sure = max(radius_m - band, 0.0) ** 2
        maybe = (radius_m + band) ** 2
        dlat = metric.degrees_lat(radius_m + band)
        dlon = metric.degrees_lon(radius_m + band, dlat)
        r0 = math.floor((lat0 - dlat + 90.0) / ROW_DEG)
        n = math.floor((lat0 + dlat + 90.0) / ROW_DEG) - r0 + 1
        held = math.floor((lat0 + 90.0) / ROW_DEG - r0)
        position, d2, close = kernel.query(
            self.points,
            self.first,
            self._kmeta,
            self._kbounds,
            lat0,
            lon0,
            dlat,
            dlon,
            r0,
            n,
            (max(held - 2, 0), max(held + 2, 0)),
            sure,
            maybe,
            (metric.ky0, metric.ky1, metric.kx0, metric.kx1),
            radius_m,
        )
        if len(close):  # within a hair of the radius: GeographicLib decides, as PostGIS does
            inside = np.ones(len(d2), dtype=bool)
            for j in close.tolist():
                p = int(position[j])
                distance = geodesic_m(float(self.lat[p]), float(self.lon[p]), lat0, lon0)
                inside[j] = distance <= radius_m
                d2[j] = distance * distance
            if not inside.all():
                kept = np.flatnonzero(inside)
                position = np.concatenate((position.take(kept), position[len(d2) :]))
                d2 = d2.take(kept)
        return Hits(self, position, d2, metric, compiled=True)

    def _settle(
        self,
        points: Ints,
        at: Ints,
        lat0: float,
        lon0: float,
        radius_m: float,
        inside: npt.NDArray[np.bool_],
        d2: Floats,
    ) -> None:
        """Band points (``points``, at ``at`` in ``inside``/``d2``): in or out, by the spheroid
        distance — Vincenty compiled, GeographicLib (as PostGIS) where the two could disagree."""
        # Rows of the contiguous points, not ``self.lat.take``: that view is strided, and take()
        # copies all of it first (a millisecond at Seoul scale, per query with a band point).
        picked = self.points[points]
        lats, lons = np.ascontiguousarray(picked[:, 0]), np.ascontiguousarray(picked[:, 1])
        distances, close = kernel.settle_band(lats, lons, lat0, lon0, radius_m)
        for j in np.flatnonzero(close).tolist():
            distances[j] = geodesic_m(float(lats[j]), float(lons[j]), lat0, lon0)
        inside[at] = distances <= radius_m
        d2[at] = distances * distances

    def within_numpy(self, lat0: float, lon0: float, radius_m: float) -> Hits:
        """:meth:`within` in about 60 NumPy calls (the reference the kernel is tested against)."""
        metric = LocalMetric.at(lat0, lon0)
        band = band_m(radius_m)
        sure = max(radius_m - band, 0.0) ** 2
        maybe = (radius_m + band) ** 2
        dlat = metric.degrees_lat(radius_m + band)
        dlon = metric.degrees_lon(radius_m + band, dlat)
        visit = self._visited(lat0 - dlat, lon0 - dlon, lat0 + dlat, lon0 + dlon)
        if not len(visit):
            return Hits(self, _EMPTY, _NO_FLOATS, None)
        r0 = math.floor((lat0 - dlat + 90.0) / ROW_DEG)
        n = math.floor((lat0 + dlat + 90.0) / ROW_DEG) - r0 + 1
        # Each row's latitude span relative to lat0, [a, b], with the cell border tolerance.
        steps = _ROW_SPANS[:, :n] if n <= _ROW_SPANS.shape[1] else _row_spans(n)
        ab = steps + (r0 * ROW_DEG - (90.0 + lat0))
        dy = ab * (metric.ky0 + metric.ky1 * ab)  # increasing in the latitude offset
        dy *= dy
        room = np.empty((2, n))
        np.subtract(sure, np.maximum(dy[0], dy[1]), out=room[0])  # at the row's far latitude
        np.subtract(maybe, np.minimum(dy[0], dy[1]), out=room[1])  # at its near latitude
        # The row holding lat0 (and, within the tolerance, its neighbours) is near at 0.
        held = (lat0 + 90.0) / ROW_DEG - r0
        room[1, max(math.floor(held) - 2, 0) : max(math.floor(held) + 2, 0)] = maybe
        np.maximum(room, 0.0, out=room)
        np.sqrt(room, out=room)
        # Half-widths in degrees of longitude: inner with the widest parallel scale of the row,
        # outer with the narrowest (kx is linear in latitude).
        kx = metric.kx0 + metric.kx1 * ab
        room /= kx if metric.kx1 < 0 else kx[::-1]
        # Column bounds per row: outer start, inner start, inner end, outer end (ends
        # exclusive); a row beyond the circle keeps one cell, whose points the edge test drops.
        x = room.take(_OUTER_INNER, axis=0)
        x *= _SIDE
        x += _NUDGE + (lon0 + 180.0) / COL_DEG
        cols = np.floor(x, out=x).astype(np.int64)
        cols += _OPEN
        np.maximum(cols[2], cols[1], out=cols[2])  # no inner cell: an empty run
        at = self._slices(visit, r0, n, cols).reshape(4, -1)
        starts = at.take(_STARTS, axis=0).ravel()
        lengths = at.take(_ENDS, axis=0).ravel()
        lengths -= starts
        position, ends = _ranges(starts, lengths)
        n_edge = int(ends[2 * at.shape[1] - 1])
        edge = position[:n_edge]
        d = self.points.take(edge, axis=0)
        k = np.array([[lat0, lon0], [metric.ky1, metric.kx1], [metric.ky0, metric.kx0]])
        d -= k[0]
        scale = d[:, :1] * k[1]
        scale += k[2]
        d *= scale
        d *= d
        d2 = np.add(d[:, 0], d[:, 1])  # LocalMetric.squared
        inside = d2 <= sure
        unsure = d2 <= maybe
        if np.count_nonzero(unsure) > np.count_nonzero(inside):
            unsure &= ~inside
            band_at = np.flatnonzero(unsure)  # the band: settled on the spheroid
            self._settle(edge.take(band_at), band_at, lat0, lon0, radius_m, inside, d2)
        kept = np.flatnonzero(inside)
        if len(kept) < n_edge:
            position = np.concatenate((edge.take(kept), position[n_edge:]))
        return Hits(self, position, d2.take(kept), metric)

    def in_box(
        self, south: float, west: float, north: float, east: float
    ) -> list[tuple[str, float, float]]:
        """Points inside a lat/lon box (edges included): key, lat, lon."""
        visit = self._visited(south, west, north, east)
        if not len(visit) or south > north or west > east:
            return []
        r0 = math.floor((south - _EPS_DEG + 90.0) / ROW_DEG)
        r1 = math.floor((north + _EPS_DEG + 90.0) / ROW_DEG)
        cols = np.empty((2, r1 - r0 + 1), dtype=np.int64)
        cols[0] = math.floor((west + 180.0 - _EPS_DEG) / COL_DEG)
        cols[1] = math.floor((east + 180.0 + _EPS_DEG) / COL_DEG) + 1
        at = self._slices(visit, r0, r1 - r0 + 1, cols).reshape(2, -1)
        idx, _ = _ranges(at[0].copy(), at[1] - at[0])
        lat = self.lat[idx]
        lon = self.lon[idx]
        keep = idx[(lat >= south) & (lat <= north) & (lon >= west) & (lon <= east)]
        keys = self.keys_at(keep)
        return [
            (k, float(self.lat[i]), float(self.lon[i]))
            for k, i in zip(keys, keep.tolist(), strict=True)
        ]


def within(grids: Iterable[DistrictGrid], lat0: float, lon0: float, radius_m: float) -> Hits:
    """Every point whose geography distance to (lat0, lon0) is at most ``radius_m``."""
    return GeoIndex(grids).within(lat0, lon0, radius_m)


def in_box(
    grids: Iterable[DistrictGrid], south: float, west: float, north: float, east: float
) -> list[tuple[str, float, float]]:
    """Points inside a lat/lon box (edges included): key, lat, lon."""
    return GeoIndex(grids).in_box(south, west, north, east)
