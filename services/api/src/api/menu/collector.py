"""``collect-menus``: find each store's Kakao place by name and address, read its menu.

A headless Chromium (Debian's ``/usr/bin/chromium`` + ``/usr/bin/chromedriver``, never a
Selenium Manager download) opens the search page for the store's name, picks the result whose
address matches the store's, opens that place page and reads the rendered menu:
``div.wrap_goods ul.list_goods > li`` (newer pages) or ``ul.list_menu > li`` (older ones).

Kakao has no public menu API and its pages change without notice: the base URLs are options (the
tests serve saved pages from 127.0.0.1), requests are spaced by ``--min-interval`` seconds, and
the output is JSON lines appended one store at a time — a re-run skips the stores already in it.
``import-menus OUTPUT.jsonl`` loads the result.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from api.menu.importer import parse_price

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SEARCH_URL = "https://map.kakao.com/?q={query}"
PLACE_URL = "https://place.map.kakao.com/{place_id}"

# Search results (map.kakao.com's place list) and place pages, newest layout first.
RESULT_ITEMS = "li.PlaceItem"
RESULT_NAME = "[data-id='name'], .link_name"
RESULT_ADDRESS = "[data-id='address'], .addr p"
RESULT_LINK = "a.moreview, a[href*='place']"
MENU_ITEMS = ("div.wrap_goods ul.list_goods > li", "ul.list_menu > li")
MENU_NAME = ".tit_item, .loss_word, .name_menu"
MENU_PRICE = ".desc_item, .price_menu, .price"
MENU_RECOMMENDED = ".ico_recommend, .tag_recommend"


@dataclass(frozen=True)
class StoreToFind:
    store_id: str
    name: str
    address: str


class RateLimiter:
    """At most one call per ``interval`` seconds (the clock and sleep are injectable for tests)."""

    def __init__(
        self,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._last: float | None = None

    def wait(self) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self.interval:
            self._sleep(self.interval - (now - self._last))
            now = self._clock()
        self._last = now


def normalise_address(address: str) -> str:
    """Comparable form: no province prefix, no spaces, no floor/unit suffix."""
    text = re.sub(r"^(서울특별시|서울시|서울)\s*", "", address.strip())
    text = re.sub(r"\(.*?\)|,.*$", "", text)
    return re.sub(r"\s+", "", text)


def same_place(store_address: str, result_address: str) -> bool:
    a, b = normalise_address(store_address), normalise_address(result_address)
    return bool(a and b) and (a == b or a.startswith(b) or b.startswith(a))


@contextmanager
def chromium(page_timeout: float = 20.0) -> Iterator[Any]:
    """A headless Chromium that cannot reach anything but 127.0.0.1 unless told otherwise."""
    from selenium import webdriver  # noqa: PLC0415 - only the collector needs selenium
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="magam-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in HEADLESS_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        driver.set_page_load_timeout(page_timeout)
        try:
            yield driver
        finally:
            driver.quit()


class Collector:
    def __init__(
        self,
        driver: Any,
        limiter: RateLimiter,
        search_url: str = SEARCH_URL,
        place_url: str = PLACE_URL,
    ) -> None:
        self.driver = driver
        self.limiter = limiter
        self.search_url = search_url
        self.place_url = place_url

    def _open(self, url: str) -> None:
        self.limiter.wait()
        self.driver.get(url)

    def _all(self, selector: str, root: Any | None = None) -> list[Any]:
        from selenium.webdriver.common.by import By  # noqa: PLC0415

        return list((root or self.driver).find_elements(By.CSS_SELECTOR, selector))

    def _text(self, root: Any, selector: str) -> str:
        found = self._all(selector, root)
        return str(found[0].text).strip() if found else ""

    def find_place(self, store: StoreToFind) -> str | None:
        """The place id of the search result at the store's address, if any."""
        self._open(self.search_url.format(query=quote(store.name)))
        for item in self._all(RESULT_ITEMS):
            if not same_place(store.address, self._text(item, RESULT_ADDRESS)):
                continue
            place_id = item.get_attribute("data-id")
            if not place_id:
                links = self._all(RESULT_LINK, item)
                href = links[0].get_attribute("href") if links else ""
                found = re.search(r"(\d+)(?:\.html?)?/?$", href or "")
                place_id = found[1] if found else None
            if place_id and place_id.isdigit():
                return str(place_id)
        return None

    def read_menu(self, place_id: str) -> list[dict[str, Any]]:
        self._open(self.place_url.format(place_id=place_id))
        for selector in MENU_ITEMS:
            items = self._all(selector)
            if items:
                break
        menus = []
        for item in items:
            name = self._text(item, MENU_NAME)
            if name:
                menus.append(
                    {
                        "name": name,
                        "price_krw": parse_price(self._text(item, MENU_PRICE)),
                        "is_recommended": bool(self._all(MENU_RECOMMENDED, item)),
                    }
                )
        return menus

    def collect(self, store: StoreToFind) -> dict[str, Any]:
        place_id = self.find_place(store)
        if place_id is None:
            return {
                "store_id": store.store_id,
                "place_id": None,
                "status": "not_found",
                "menus": [],
            }
        menus = self.read_menu(place_id)
        return {"store_id": store.store_id, "place_id": place_id, "status": "found", "menus": menus}


def done_store_ids(output: Path) -> set[str]:
    """Stores already in the output (found or not): a re-run skips them."""
    if not output.exists():
        return set()
    done = set()
    for line in output.read_text(encoding="utf-8").splitlines():
        try:
            done.add(str(json.loads(line)["store_id"]))
        except (json.JSONDecodeError, KeyError):
            continue  # a line cut by an interrupt: that store is collected again
    return done


def read_stores(path: Path) -> list[StoreToFind]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [
            StoreToFind(row["store_id"], row["name"], row["address"])
            for row in csv.DictReader(handle)
        ]


def collect_all(
    collector: Collector,
    stores: Iterable[StoreToFind],
    output: Path,
    limit: int | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> int:
    """Appends one line per store not yet in ``output``; returns how many were collected."""
    done = done_store_ids(output)
    collected = 0
    cut = output.exists() and not output.read_bytes().endswith(b"\n") and output.stat().st_size
    with output.open("a", encoding="utf-8") as out:
        if cut:
            out.write("\n")  # end the line an interrupt cut short; it is skipped when read
        for store in stores:
            if store.store_id in done:
                continue
            if limit is not None and collected >= limit:
                break
            record = collector.collect(store)
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
            collected += 1
            log(f"{store.store_id} {store.name}: {record['status']}, {len(record['menus'])} items")
    return collected


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="collect-menus",
        description="Find stores' Kakao places by name and address and read their menus "
        "(headless Chromium). Output: JSON lines for import-menus; re-runs resume.",
    )
    parser.add_argument("stores", type=Path, help="CSV with store_id,name,address")
    parser.add_argument("output", type=Path, help="JSON lines file (appended)")
    parser.add_argument("--limit", type=int, help="collect at most this many stores this run")
    parser.add_argument(
        "--min-interval", type=float, default=3.0, help="seconds between page loads (default 3)"
    )
    parser.add_argument("--search-url", default=SEARCH_URL, help="default: %(default)s")
    parser.add_argument("--place-url", default=PLACE_URL, help="default: %(default)s")
    args = parser.parse_args(argv)
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not Path(binary).exists():
            print(
                f"collect-menus: {binary} is missing; run scripts/install-browser", file=sys.stderr
            )
            return 1
    stores = read_stores(args.stores)
    with chromium() as driver:
        collector = Collector(
            driver, RateLimiter(args.min_interval), args.search_url, args.place_url
        )
        count = collect_all(
            collector, stores, args.output, args.limit, lambda m: print(m, file=sys.stderr)
        )
    print(f"collected {count} stores into {args.output}")
    return 0


def run() -> None:
    """Console entry point."""
    sys.exit(main())
