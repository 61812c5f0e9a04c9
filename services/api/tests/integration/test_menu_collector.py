"""collect-menus in headless Chromium against saved Kakao pages served from 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from api.menu.collector import (
    Collector,
    RateLimiter,
    StoreToFind,
    chromium,
    collect_all,
    same_place,
)
from api.menu.importer import read_menu_file

pytestmark = pytest.mark.integration

PAGES = Path(__file__).resolve().parents[1] / "fixtures" / "kakao"
STORES = [
    StoreToFind("MA0106202201A2069228", "쥬씨&고망고", "서울특별시 성동구 왕십리로 114"),
    StoreToFind("MA0106202201A1955471", "루42", "서울특별시 마포구 홍익로 5-1"),
    StoreToFind("MA0106202201A0016575", "언더아머", "서울특별시 강남구 강남대로 464"),
    StoreToFind("MA0000000000000000Z9", "없는가게", "서울특별시 중구 세종대로 110"),
]


class _Pages(ThreadingHTTPServer):
    requested: list[str]


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        assert isinstance(self.server, _Pages)
        if self.path != "/favicon.ico":
            self.server.requested.append(unquote(self.path))


@pytest.fixture
def pages() -> Iterator[_Pages]:
    server = _Pages(("127.0.0.1", 0), partial(_Handler, directory=str(PAGES)))
    server.requested = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    if not Path("/usr/bin/chromium").exists():
        pytest.fail("chromium is missing: run scripts/install-browser (make test does)")
    with chromium() as browser:
        yield browser


def _collector(driver: Any, pages: _Pages) -> Collector:
    base = f"http://127.0.0.1:{pages.server_address[1]}"
    return Collector(
        driver,
        RateLimiter(0.0),
        search_url=base + "/search/{query}.html",
        place_url=base + "/place/{place_id}.html",
    )


def test_the_collector_finds_places_by_name_and_address_and_reads_both_menu_layouts(
    driver: Any, pages: _Pages, tmp_path: Path
) -> None:
    output = tmp_path / "menus.jsonl"

    assert collect_all(_collector(driver, pages), STORES, output) == 4

    records = {r["store_id"]: r for r in map(json.loads, output.read_text().splitlines())}
    assert records["MA0106202201A2069228"]["place_id"] == "1748293040"  # the 2nd result
    assert records["MA0106202201A2069228"]["menus"] == [
        {"name": "생과일 망고주스", "price_krw": 4500, "is_recommended": True},
        {"name": "딸기바나나", "price_krw": 3800, "is_recommended": False},
        {"name": "계절 과일컵", "price_krw": None, "is_recommended": False},
    ]
    assert records["MA0106202201A1955471"]["place_id"] == "8150436"
    assert [(m["name"], m["price_krw"]) for m in records["MA0106202201A1955471"]["menus"]] == [
        ("립밤", 7000),
        ("핸드크림 세트", 15000),
    ]
    # A namesake at another address is not our store; no search page is no place.
    assert records["MA0106202201A0016575"]["status"] == "not_found"
    assert records["MA0000000000000000Z9"]["status"] == "not_found"
    assert "/place/99999.html" not in pages.requested
    # The output is what import-menus reads.
    assert len(read_menu_file(output)) == 5


def test_an_interrupted_collection_resumes_where_it_stopped(
    driver: Any, pages: _Pages, tmp_path: Path
) -> None:
    output = tmp_path / "menus.jsonl"

    assert collect_all(_collector(driver, pages), STORES, output, limit=1) == 1
    first_run = list(pages.requested)
    with output.open("a") as out:
        out.write('{"store_id": "MA0106202201A1955')  # a line cut by the interrupt
    assert collect_all(_collector(driver, pages), STORES, output) == 3

    lines = output.read_text().splitlines()
    assert [json.loads(line)["store_id"] for line in lines if line.endswith("}")] == [
        s.store_id for s in STORES
    ]

    assert first_run == ["/search/쥬씨&고망고.html", "/place/1748293040.html"]
    assert pages.requested.count("/search/쥬씨&고망고.html") == 1  # not fetched again
    assert "/search/루42.html" in pages.requested


def test_the_rate_limiter_spaces_calls_by_the_interval() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(3.0, clock=lambda: now[0], sleep=sleep)
    limiter.wait()
    now[0] += 1.0
    limiter.wait()
    now[0] += 5.0
    limiter.wait()

    assert slept == [2.0]


def test_addresses_match_without_province_spaces_or_floor() -> None:
    assert same_place("서울특별시 성동구 왕십리로 114", "서울 성동구 왕십리로 114 1층")
    assert not same_place("서울특별시 성동구 왕십리로 114", "서울 성동구 왕십리로 410")
    assert not same_place("", "서울 성동구 왕십리로 114")
