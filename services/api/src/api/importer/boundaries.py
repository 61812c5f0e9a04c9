"""Seoul's district (자치구) and administrative dong (행정동) boundaries, for vectorised lookups.

The polygons ship with the package (api/data/seoul, provenance in api/data/NOTICE.md); nothing is
read from outside the package at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

DISTRICTS_FILE = "seoul_districts_2015_simple.geojson"
DONGS_FILE = "seoul_admin_dongs_2021-04.geojson"


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    district_code: str


class AreaIndex:
    """Polygons with codes; ``locate`` finds the area of many points at once."""

    def __init__(self, areas: list[Area], geometries: list[Any]) -> None:
        self.areas = areas
        self.by_code = {area.code: area for area in areas}
        self._geometries = np.array(geometries, dtype=object)
        shapely.prepare(self._geometries)
        self._bounds = shapely.bounds(self._geometries)

    def locate(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> list[Area | None]:
        """The area holding each point (the first one for a point on a shared border)."""
        return [self.areas[i] if i >= 0 else None for i in self.locate_index(lon, lat).tolist()]

    def locate_index(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> NDArray[np.int64]:
        """The position in ``areas`` of the area holding each point, -1 for none (the lowest
        position for a point on a shared border)."""
        count = len(self.areas)
        found = np.full(len(lon), count, dtype=np.int64)
        # Points sorted by longitude: each area tests only the points inside its bounding box,
        # against its prepared polygon (several times faster than STRtree.query on Points).
        order = np.argsort(lon, kind="stable")
        by_lon = lon[order]
        for position, (west, south, east, north) in enumerate(self._bounds.tolist()):
            first = int(np.searchsorted(by_lon, west, side="left"))
            last = int(np.searchsorted(by_lon, east, side="right"))
            candidates = order[first:last]
            near = (lat[candidates] >= south) & (lat[candidates] <= north)
            candidates = candidates[near]
            hits = candidates[
                shapely.intersects_xy(self._geometries[position], lon[candidates], lat[candidates])
            ]
            np.minimum.at(found, hits, position)
        found[found == count] = -1
        return found

    def geometry(self, code: str) -> Any:
        return self._geometries[self.areas.index(self.by_code[code])]


def _load(name: str) -> dict[str, Any]:
    text = resources.files("api.data").joinpath("seoul", name).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def districts() -> AreaIndex:
    """The 25 districts; code = SIG_CD (the store file's 5-digit 시군구코드)."""
    areas, geometries = [], []
    for feature in _load(DISTRICTS_FILE)["features"]:
        props = feature["properties"]
        areas.append(Area(props["SIG_CD"], props["SIG_KOR_NM"], props["SIG_CD"]))
        geometries.append(shapely.from_geojson(json.dumps(feature["geometry"])))
    return AreaIndex(areas, geometries)


@cache
def dongs() -> AreaIndex:
    """The 425 administrative dongs; code = adm_cd2[:8] (the file's 8-digit 행정동코드)."""
    areas, geometries = [], []
    for feature in _load(DONGS_FILE)["features"]:
        props = feature["properties"]
        name = str(props["adm_nm"]).rsplit(" ", 1)[-1]
        areas.append(Area(str(props["adm_cd2"])[:8], name, str(props["sgg"])))
        geometries.append(shapely.from_geojson(json.dumps(feature["geometry"])))
    return AreaIndex(areas, geometries)
