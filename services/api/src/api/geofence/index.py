"""Per-district grid indexes over store points: the circle's candidate rows, then exact distances.

Each district keeps its points sorted by a global grid cell key (row-major), so the cells of one
grid row inside the query's bounding box are one contiguous slice found with ``searchsorted``. A
query visits only districts whose point bounds meet the circle's bounding box. Distances are
classified by :mod:`api.geofence.geodesy` — the result equals PostGIS ``ST_DWithin`` on
geography (property-tested against the real PostGIS).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from api.geofence.geodesy import Floats, LocalMetric, band_m, geodesic_m

Ints = npt.NDArray[np.int64]

CELL_DEG_LAT = 0.0025  # ≈ 278 m
CELL_DEG_LON = 0.003  # ≈ 265 m at Seoul's latitude
_ROW_WIDTH = 1 << 20  # cells per grid row: the key is row * _ROW_WIDTH + column


def _rows(lat: Floats) -> Ints:
    return np.floor((lat + 90.0) / CELL_DEG_LAT).astype(np.int64)


def _cols(lon: Floats) -> Ints:
    return np.floor((lon + 180.0) / CELL_DEG_LON).astype(np.int64)


@dataclass(frozen=True)
class Hits:
    """Points within the radius (unsorted): where they sit, and their distances in meters.

    Keys are looked up only for the hits a caller uses — a page of 50 out of thousands.
    """

    grids: list[DistrictGrid]
    grid_of: Ints
    position: Ints
    distances: Floats

    def __len__(self) -> int:
        return len(self.position)

    def key(self, i: int) -> str:
        return self.grids[int(self.grid_of[i])].keys[int(self.position[i])]

    @property
    def keys(self) -> list[str]:
        return [
            self.grids[g].keys[p]
            for g, p in zip(self.grid_of.tolist(), self.position.tolist(), strict=True)
        ]


class DistrictGrid:
    """An immutable grid over one district's points; rebuilt when its point set changes."""

    def __init__(self, keys: Sequence[str], lats: Sequence[float], lons: Sequence[float]) -> None:
        lat = np.asarray(lats, dtype=np.float64)
        lon = np.asarray(lons, dtype=np.float64)
        cell = _rows(lat) * _ROW_WIDTH + _cols(lon)
        order = np.argsort(cell, kind="stable")
        self.cells: Ints = cell[order]
        self.lat: Floats = lat[order]
        self.lon: Floats = lon[order]
        self.keys: list[str] = [keys[i] for i in order.tolist()]
        if len(lat):
            self.bounds = (float(lat.min()), float(lon.min()), float(lat.max()), float(lon.max()))
        else:
            self.bounds = (1.0, 1.0, -1.0, -1.0)  # empty: meets nothing

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        return int(self.cells.nbytes + self.lat.nbytes + self.lon.nbytes) + 8 * len(self.keys)

    def meets(self, south: float, west: float, north: float, east: float) -> bool:
        s, w, n, e = self.bounds
        return s <= north and n >= south and w <= east and e >= west

    def candidates(self, south: float, west: float, north: float, east: float) -> Ints:
        """Positions of the points in the grid cells the box touches (a superset of the box)."""
        r0 = math.floor((south + 90.0) / CELL_DEG_LAT)
        r1 = math.floor((north + 90.0) / CELL_DEG_LAT)
        c0 = math.floor((west + 180.0) / CELL_DEG_LON)
        c1 = math.floor((east + 180.0) / CELL_DEG_LON)
        rows = np.arange(r0, r1 + 1, dtype=np.int64) * _ROW_WIDTH
        starts = np.searchsorted(self.cells, rows + c0, side="left")
        ends = np.searchsorted(self.cells, rows + c1, side="right")
        lengths = ends - starts
        total = int(lengths.sum())
        if total == 0:
            return np.empty(0, dtype=np.int64)
        # One arange over all rows' slices, shifted back to each slice's start.
        shift = starts - (np.cumsum(lengths) - lengths)
        result: Ints = np.arange(total, dtype=np.int64) + np.repeat(shift, lengths)
        return result


def within(grids: Iterable[DistrictGrid], lat0: float, lon0: float, radius_m: float) -> Hits:
    """Every point whose geography distance to (lat0, lon0) is at most ``radius_m``."""
    metric = LocalMetric.at(lat0, lon0)
    dlat = metric.degrees_lat(radius_m)
    dlon = metric.degrees_lon(radius_m, dlat)
    south, west, north, east = lat0 - dlat, lon0 - dlon, lat0 + dlat, lon0 + dlon
    band = band_m(radius_m)
    sure = max(radius_m - band, 0.0) ** 2
    maybe = (radius_m + band) ** 2
    used: list[DistrictGrid] = []
    owners: list[Ints] = []
    positions: list[Ints] = []
    parts: list[Floats] = []
    for grid in grids:
        if not grid.meets(south, west, north, east):
            continue
        idx = grid.candidates(south, west, north, east)
        if not len(idx):
            continue
        lat = grid.lat[idx]
        lon = grid.lon[idx]
        d2 = metric.squared(lat, lon)
        inside = d2 <= sure
        edge = np.flatnonzero((d2 <= maybe) & ~inside)
        chosen_d2 = d2
        if len(edge):
            chosen_d2 = d2.copy()
            for i in edge.tolist():  # the thin band: settled by the exact geodesic
                exact = geodesic_m(float(lat[i]), float(lon[i]), lat0, lon0)
                inside[i] = exact <= radius_m
                chosen_d2[i] = exact * exact
        chosen = np.flatnonzero(inside)
        if not len(chosen):
            continue
        owners.append(np.full(len(chosen), len(used), dtype=np.int64))
        used.append(grid)
        positions.append(idx[chosen])
        parts.append(np.sqrt(chosen_d2[chosen]))
    if not used:
        empty = np.empty(0, dtype=np.int64)
        return Hits([], empty, empty, np.empty(0, dtype=np.float64))
    if len(used) == 1:
        return Hits(used, owners[0], positions[0], parts[0])
    return Hits(used, np.concatenate(owners), np.concatenate(positions), np.concatenate(parts))


def in_box(
    grids: Iterable[DistrictGrid], south: float, west: float, north: float, east: float
) -> list[tuple[str, float, float]]:
    """Points inside a lat/lon box (edges included): key, lat, lon."""
    found: list[tuple[str, float, float]] = []
    for grid in grids:
        if not grid.meets(south, west, north, east):
            continue
        idx = grid.candidates(south, west, north, east)
        lat = grid.lat[idx]
        lon = grid.lon[idx]
        keep = idx[(lat >= south) & (lat <= north) & (lon >= west) & (lon <= east)]
        found.extend((grid.keys[i], float(grid.lat[i]), float(grid.lon[i])) for i in keep.tolist())
    return found
