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
    """Polygons with codes; ``locate`` finds the area of many points at once (STRtree)."""

    def __init__(self, areas: list[Area], geometries: list[Any]) -> None:
        self.areas = areas
        self.by_code = {area.code: area for area in areas}
        self._geometries = np.array(geometries, dtype=object)
        self._tree = shapely.STRtree(self._geometries)

    def locate(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> list[Area | None]:
        """The area holding each point (the first one for a point on a shared border)."""
        found: list[Area | None] = [None] * len(lon)
        if len(lon) == 0:
            return found
        points = shapely.points(lon, lat)
        point_idx, area_idx = self._tree.query(points, predicate="intersects")
        # Assign in reverse so the lowest area index wins for a point on a border.
        for p, a in zip(point_idx[::-1].tolist(), area_idx[::-1].tolist(), strict=True):
            found[p] = self.areas[a]
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
