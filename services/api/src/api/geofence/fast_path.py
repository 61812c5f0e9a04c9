"""``GET /customer/deals/nearby`` without FastAPI's routing and dependency solving.

The nearby search is the hottest endpoint (a map screen asks on every pan). For a well-formed
request from a customer, FastAPI's route matching, dependency solving and request/response
wrappers cost more CPU than the search itself (bench/geofence/results.md). This pure-ASGI
middleware answers exactly that case with the same verifier, the same service call and the same
bytes; anything else — a parameter it does not recognise as plainly valid, a missing or refused
token, a business error — goes on to the FastAPI route unchanged, which answers it (problem+json,
401/403/422) as before. The route stays the documented one (OpenAPI, examples).

It sits inside the metrics and tracing middlewares and names the route for them.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from api.clock import utcnow
from api.geofence import service
from api.geofence.router import NEARBY_PATH, cache_of, nearby_route
from api.geofence.schemas import NearbySort
from api.pagination import MAX_PAGE_SIZE
from servicekit.security import Principal, TokenVerifier

# The plain spellings only (pydantic accepts more; those go to the route and get its answer).
_NUMBER = re.compile(r"-?[0-9]{1,12}(\.[0-9]{1,20})?")
_INT = re.compile(r"[0-9]{1,3}")
_SORTS = {s.value: s for s in NearbySort}
_KNOWN = frozenset({"lat", "lon", "radius", "category", "sort", "cursor", "limit"})
_CONTENT_TYPE = (b"content-type", b"application/json")


def _number(text: str, low: float, high: float) -> float | None:
    if not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if low <= value <= high else None


def _pairs(text: str) -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True)``; split directly when nothing is escaped."""
    if "%" in text or "+" in text:
        return parse_qsl(text, keep_blank_values=True)
    pairs = []
    for pair in text.split("&"):
        if pair:  # as parse_qsl: empty pairs are skipped, a pair without '=' has a blank value
            key, _, value = pair.partition("=")
            pairs.append((key, value))
    return pairs


def parse_nearby(query_string: bytes) -> service.NearbyQuery | None:
    """The query when every parameter is plainly valid; None to let the route decide."""
    try:
        pairs = _pairs(query_string.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in _KNOWN:
            if key in params:
                return None  # repeated: which one counts is the framework's call
            params[key] = value
    lat = _number(params.get("lat", ""), -90, 90)
    lon = _number(params.get("lon", ""), -180, 180)
    radius = _number(params.get("radius", "1000"), 0, service.MAX_RADIUS_M)
    category = params.get("category")
    sort = _SORTS.get(params.get("sort", NearbySort.DISTANCE.value))
    cursor = params.get("cursor")
    limit_text = params.get("limit", "20")
    if (
        lat is None
        or lon is None
        or radius is None
        or sort is None
        or (category is not None and len(category) > 10)
        or (cursor is not None and len(cursor) > 100)
        or not _INT.fullmatch(limit_text)
        or not 1 <= int(limit_text) <= MAX_PAGE_SIZE
    ):
        return None
    return service.NearbyQuery(lat, lon, radius, category or None, sort, cursor, int(limit_text))


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


class NearbyFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == NEARBY_PATH
            and scope["method"] == "GET"
            and await self._answer(scope, send)
        ):
            return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, send: Send) -> bool:
        """True when answered here; False leaves the request, untouched, to the route."""
        query = parse_nearby(scope["query_string"])
        token = _bearer(scope)
        if query is None or token is None:
            return False
        state: Any = scope["app"].state
        verifier: TokenVerifier | None = state.token_verifier
        if verifier is None:
            return False
        try:
            principal: Principal = await verifier.verify(token)
            if not principal.has_role("customer"):
                return False
            body = await service.find_deals_near(cache_of(state), state.sessions, query, utcnow())
        except Exception:
            # A refused token, a bad cursor, the database away: the route raises the same and
            # its handlers answer (401, 422, 503 …) — one place decides what errors look like.
            return False
        scope["route"] = nearby_route()  # metrics and spans name the route, as for any other
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode()), _CONTENT_TYPE],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return True
