"""Distances as PostGIS measures them on ``geography``, and a fast bound for the hot path.

PostGIS 3 with PROJ ≥ 6 measures point-to-point distance on the WGS84 spheroid with GeographicLib's
``geod_inverse``; ``ST_DWithin(a, b, r)`` is ``distance <= r``. The index first classifies each
candidate with a vectorised mid-latitude approximation whose error is far below ``band_m`` within
our radii, and settles only the candidates inside that band with the exact inverse geodesic, fed
the same degrees PostGIS feeds it (degrees → radians → degrees, as its GEOGRAPHIC_POINT does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from geographiclib.geodesic import Geodesic  # type: ignore[import-untyped]

WGS84_A = 6378137.0
WGS84_RF = 298.257223563
# PostGIS builds its spheroid from a and b = a - a/rf, then f = (a - b)/a.
_B = WGS84_A - WGS84_A / WGS84_RF
_F = (WGS84_A - _B) / WGS84_A
_E2 = (WGS84_A * WGS84_A - _B * _B) / (WGS84_A * WGS84_A)
_GEOD = Geodesic(WGS84_A, _F)

Floats = npt.NDArray[np.float64]


def _postgis_degrees(value: float) -> float:
    return (math.pi * value / 180.0) * 180.0 / math.pi


# Two points whose radian coordinates each differ by no more than this are one point to PostGIS
# (``geographic_point_equals`` with its FP_TOLERANCE), at distance 0: a few tenths of a
# micrometre. Measured on PostGIS 3.3: 2.85e-12° apart is 0, 2.9e-12° is 4e-7 m.
_SAME_POINT_RAD = 5e-14


def geodesic_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The spheroid distance in meters, as PostGIS's ``ST_Distance(geography, geography)``."""
    if (
        abs(math.pi * lat1 / 180.0 - math.pi * lat2 / 180.0) <= _SAME_POINT_RAD
        and abs(math.pi * lon1 / 180.0 - math.pi * lon2 / 180.0) <= _SAME_POINT_RAD
    ):
        return 0.0
    s12 = _GEOD.Inverse(
        _postgis_degrees(lat1),
        _postgis_degrees(lon1),
        _postgis_degrees(lat2),
        _postgis_degrees(lon2),
        Geodesic.DISTANCE,
    )["s12"]
    return float(s12)


def _meridian_m_per_deg(lat: float) -> float:
    s = math.sin(math.radians(lat))
    return WGS84_A * (1 - _E2) / math.sqrt(1 - _E2 * s * s) ** 3 * math.pi / 180


def _parallel_m_per_deg(lat: float) -> float:
    s = math.sin(math.radians(lat))
    return WGS84_A * math.cos(math.radians(lat)) / math.sqrt(1 - _E2 * s * s) * math.pi / 180


@dataclass(frozen=True)
class LocalMetric:
    """Meters per degree around a query point, linear in latitude: mid-latitude distances."""

    lat0: float
    lon0: float
    ky0: float
    ky1: float
    kx0: float
    kx1: float

    @classmethod
    def at(cls, lat0: float, lon0: float) -> LocalMetric:
        h = 0.01
        ky1 = (_meridian_m_per_deg(lat0 + h) - _meridian_m_per_deg(lat0 - h)) / (2 * h)
        kx1 = (_parallel_m_per_deg(lat0 + h) - _parallel_m_per_deg(lat0 - h)) / (2 * h)
        # Evaluated at the midpoint latitude lat0 + dlat/2: the slope halves.
        return cls(
            lat0, lon0, _meridian_m_per_deg(lat0), ky1 / 2, _parallel_m_per_deg(lat0), kx1 / 2
        )

    def squared(self, lat: Floats, lon: Floats) -> Floats:
        """Squared distances in m² (no square root for the candidates that are dropped)."""
        dlat = lat - self.lat0
        dy = dlat * (self.ky0 + self.ky1 * dlat)
        dx = (lon - self.lon0) * (self.kx0 + self.kx1 * dlat)
        dx *= dx
        dy *= dy
        dx += dy
        return dx

    def distances(self, lat: Floats, lon: Floats) -> Floats:
        result: Floats = np.sqrt(self.squared(lat, lon))
        return result

    def degrees_lat(self, meters: float) -> float:
        return meters / self.ky0 * 1.01 + 1e-6

    def degrees_lon(self, meters: float, lat_span: float) -> float:
        # The parallel shrinks towards the pole: use the scale at the far edge.
        far = abs(self.lat0) + lat_span
        return meters / _parallel_m_per_deg(min(far, 89.0)) * 1.01 + 1e-6


def band_m(radius_m: float) -> float:
    """Half-width of the band settled exactly: ≥ 15× the approximation's worst error (tested)."""
    return 0.005 + 1e-6 * radius_m
