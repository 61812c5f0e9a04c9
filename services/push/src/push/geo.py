"""A WGS84 point column: PostGIS ``geography(Point,4326)`` in PostgreSQL, text in SQLite (copied
small from api.geo; services share only contracts).

The local profile runs the same models on SQLite, which has no PostGIS; distance queries there are
computed in Python instead.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from sqlalchemy import String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

_EWKB_SRID_FLAG = 0x20000000
_WKB_POINT = 1


class LonLat(NamedTuple):
    lon: float
    lat: float


class _PostgisGeographyPoint(UserDefinedType[str]):
    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "geography(Point,4326)"


def parse_ewkb_point(hex_ewkb: str) -> LonLat:
    """Decode the hex (E)WKB PostgreSQL returns for a geography point."""
    raw = bytes.fromhex(hex_ewkb)
    order = "<" if raw[0] == 1 else ">"
    (geom_type,) = struct.unpack_from(f"{order}I", raw, 1)
    offset = 5 + (4 if geom_type & _EWKB_SRID_FLAG else 0)
    if geom_type & 0xFF != _WKB_POINT:
        raise ValueError(f"not a point geometry (type {geom_type:#x})")
    lon, lat = struct.unpack_from(f"{order}dd", raw, offset)
    return LonLat(lon, lat)


class GeoPoint(TypeDecorator[LonLat]):
    impl = String(64)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(_PostgisGeographyPoint())
        return dialect.type_descriptor(String(64))

    def process_bind_param(self, value: LonLat | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        lon, lat = value
        if dialect.name == "postgresql":
            # EWKT is geography's text input: no function call needed around the parameter.
            return f"SRID=4326;POINT({lon!r} {lat!r})"
        return f"{lon!r} {lat!r}"

    def process_result_value(self, value: str | None, dialect: Dialect) -> LonLat | None:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return parse_ewkb_point(value)
        lon, lat = value.split()
        return LonLat(float(lon), float(lat))
