"""``import-menus FILE...``: attach menus (name, price) to stores.

Inputs, detected per file:

- Kakao place JSON, the ``panel3`` shape (``menu.menus.items[]``: name, price, is_recommend) or the
  older ``main/v`` shape (``menuInfo.menuList[]``: menu, price, recommend); the store is
  ``--store-id`` or the file name (``<store id>.json``);
- JSON lines written by ``collect-menus`` (``{"store_id", "place_id", "menus": [...]}`` a line);
- CSV with a header ``store_id,name,price_krw[,is_recommended]``.

Items are upserted by (store, name): a re-import updates prices and keeps item ids, so deals
started from an item keep pointing at it. Unknown stores are reported, not created.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from api.importer.writer import ensure_schema, sync_engine
from api.menu.models import MenuItem
from api.settings import ApiSettings
from api.store.models import Store
from servicekit.config import ConfigError


class MenuFileError(Exception):
    """A menu file that cannot be read; nothing from it is imported."""


@dataclass(frozen=True)
class MenuEntry:
    store_id: str
    name: str
    price_krw: int | None
    is_recommended: bool
    position: int
    source: str


def parse_price(value: object) -> int | None:
    """``12000``, ``"12,000"``, ``"12,000원"`` → 12000; ``"변동"``, ``""``, None → None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value) if value >= 0 else None
    digits = re.sub(r"[^0-9]", "", str(value).split("~")[0])
    return int(digits) if digits else None


def from_kakao(
    store_id: str, data: dict[str, Any], source: str = "kakao-panel3"
) -> list[MenuEntry]:
    """Entries from one Kakao place JSON (panel3 or the older main/v shape)."""
    items = ((data.get("menu") or {}).get("menus") or {}).get("items")
    if items is None and "menuInfo" in data:
        items = [
            {"name": m.get("menu"), "price": m.get("price"), "is_recommend": m.get("recommend")}
            for m in (data["menuInfo"] or {}).get("menuList") or []
        ]
        source = "kakao-main-v"
    if items is None:
        raise MenuFileError("no menu.menus.items (panel3) or menuInfo.menuList (main/v) found")
    return list(_entries(store_id, items, source))


def _entries(store_id: str, items: Iterable[dict[str, Any]], source: str) -> Iterable[MenuEntry]:
    seen: set[str] = set()
    for position, item in enumerate(items):
        name = str(item.get("name") or "").strip()
        if not name or name in seen:
            continue
        seen.add(name)
        yield MenuEntry(
            store_id,
            name[:200],
            parse_price(item.get("price", item.get("price_krw"))),
            bool(item.get("is_recommend", item.get("is_recommended", False))),
            position,
            source,
        )


def read_menu_file(path: Path, store_id: str | None = None) -> list[MenuEntry]:
    """Every entry of one file, whatever its shape (see the module's docstring)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise MenuFileError(f"{path}: cannot read as UTF-8 ({exc})") from exc
    if path.suffix.lower() == ".csv":
        return _read_csv(path, text)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        entries: list[MenuEntry] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                # An interrupted collect-menus leaves a cut line; it collects that store again.
                print(f"import-menus: {path}:{number}: not JSON, skipped", file=sys.stderr)
                continue
            entries.extend(
                _entries(str(record["store_id"]), record.get("menus") or [], "kakao-page")
            )
        return entries
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MenuFileError(f"{path}:{exc.lineno}: not JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise MenuFileError(f"{path}: expected a Kakao place JSON object")
    try:
        return from_kakao(store_id or path.stem, data)
    except MenuFileError as exc:
        raise MenuFileError(f"{path}: {exc}") from exc


def _read_csv(path: Path, text: str) -> list[MenuEntry]:
    rows = csv.DictReader(text.splitlines())
    if not rows.fieldnames or not {"store_id", "name"} <= set(rows.fieldnames):
        raise MenuFileError(f"{path}:1: the header must have store_id,name[,price_krw]")
    entries = []
    positions: dict[str, int] = {}
    for row in rows:
        store_id = (row.get("store_id") or "").strip()
        name = (row.get("name") or "").strip()
        if not store_id or not name:
            raise MenuFileError(f"{path}:{rows.line_num}: store_id and name are required")
        position = positions.get(store_id, 0)
        positions[store_id] = position + 1
        recommended = (row.get("is_recommended") or "").strip().lower() in ("1", "true", "y")
        entries.append(
            MenuEntry(
                store_id,
                name[:200],
                parse_price(row.get("price_krw")),
                recommended,
                position,
                "csv",
            )
        )
    return entries


@dataclass
class MenuOutcome:
    items: int = 0
    stores: int = 0
    unknown_stores: tuple[str, ...] = ()


def save_menus(engine: Engine, entries: Sequence[MenuEntry]) -> MenuOutcome:
    """Upserts the entries by (store, name) in one transaction; skips stores we do not know."""
    wanted = sorted({e.store_id for e in entries})
    with engine.begin() as conn:
        known = set(conn.scalars(select(Store.id).where(Store.id.in_(wanted))))
        rows = [
            {
                "store_id": e.store_id,
                "name": e.name,
                "price_krw": e.price_krw,
                "is_recommended": e.is_recommended,
                "position": e.position,
                "source": e.source,
            }
            for e in entries
            if e.store_id in known
        ]
        if rows:
            insert = (postgresql if engine.dialect.name == "postgresql" else sqlite).insert
            statement = insert(MenuItem)
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["store_id", "name"],
                    set_={
                        "price_krw": statement.excluded.price_krw,
                        "is_recommended": statement.excluded.is_recommended,
                        "position": statement.excluded.position,
                        "source": statement.excluded.source,
                    },
                ),
                rows,
            )
    return MenuOutcome(len(rows), len(known), tuple(s for s in wanted if s not in known))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="import-menus",
        description="Attach menus to stores from Kakao place JSON (panel3 or main/v), "
        "collect-menus JSON lines, or a CSV (store_id,name,price_krw[,is_recommended]).",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--store-id", help="the store of a single Kakao JSON file")
    args = parser.parse_args(argv)
    try:
        entries = [e for path in args.files for e in read_menu_file(path, args.store_id)]
    except (MenuFileError, KeyError) as exc:
        print(f"import-menus: {exc}; nothing was imported", file=sys.stderr)
        return 2
    engine: Engine | None = None
    try:
        engine = sync_engine(ApiSettings())
        ensure_schema(engine)
        outcome = save_menus(engine, entries)
    except (ConfigError, OperationalError) as exc:
        print(f"import-menus: cannot use the api database: {exc}", file=sys.stderr)
        return 4
    finally:
        if engine is not None:
            engine.dispose()
    print(f"menu items {outcome.items:,} for {outcome.stores:,} stores")
    if outcome.unknown_stores:
        shown = ", ".join(outcome.unknown_stores[:10])
        print(
            f"unknown stores {len(outcome.unknown_stores):,} skipped (import-stores first): {shown}"
        )
    return 0


def run() -> None:
    """Console entry point."""
    sys.exit(main())
