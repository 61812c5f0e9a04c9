"""import-menus into PostgreSQL, then GET /stores/{id}/menu and get_menu_item for deals."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from api.importer.cli import main as import_stores
from api.menu.importer import main as import_menus
from api.menu.repository import get_menu_item
from api.menu.router import router as menu_router
from api.settings import ApiSettings
from conftest import Infra
from servicekit.db import build_engine, session_factory
from servicekit.errors import install_error_handlers

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SEOUL = FIXTURES / "import" / "seoul_202606_head3.csv"


@pytest.fixture(scope="module")
def database(infra: Infra) -> Iterator[str]:
    with infra.scratch_database("api_menu_test") as name:
        yield name


@pytest.fixture
def stores_imported(prod_profile: Infra, database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("API_DATABASE__NAME", database)
    assert import_stores([str(SEOUL), "--categories", "all", "--no-progress"]) == 0
    return database


@pytest.fixture
async def client(stores_imported: str) -> AsyncIterator[httpx.AsyncClient]:
    engine = build_engine(ApiSettings())
    app = FastAPI()
    app.state.sessions = session_factory(engine)
    install_error_handlers(app)
    app.include_router(menu_router)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as http:
        yield http
    await engine.dispose()


async def test_imported_menus_are_served_in_menu_order_and_unknown_stores_are_reported(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        import_menus(
            [
                str(FIXTURES / "menu" / "panel3_1748293040.json"),
                "--store-id",
                "MA0106202201A2069228",
            ]
        )
        == 0
    )
    assert import_menus([str(FIXTURES / "menu" / "menus.csv")]) == 0
    out = capsys.readouterr().out
    assert "unknown stores 1 skipped" in out
    assert "NOSUCHSTORE000000001" in out

    answer = await client.get("/stores/MA0106202201A2069228/menu")

    assert answer.status_code == 200
    body = answer.json()
    assert body["store_id"] == "MA0106202201A2069228"
    assert [(i["name"], i["price_krw"], i["is_recommended"]) for i in body["items"]] == [
        ("생과일 망고주스", 4500, True),
        ("딸기바나나", 3800, False),
        ("계절 과일컵", None, False),
    ]
    other = (await client.get("/stores/MA0106202201A0016575/menu")).json()
    assert [i["name"] for i in other["items"]] == ["시그니처 샐러드", "오늘의 수프"]


async def test_a_reimport_updates_prices_and_keeps_item_ids(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    path = tmp_path / "m.csv"
    path.write_text("store_id,name,price_krw\nMA0106202201A1955471,립밤,7000\n", encoding="utf-8")
    assert import_menus([str(path)]) == 0
    before = (await client.get("/stores/MA0106202201A1955471/menu")).json()["items"]
    path.write_text("store_id,name,price_krw\nMA0106202201A1955471,립밤,6500\n", encoding="utf-8")
    assert import_menus([str(path)]) == 0

    after = (await client.get("/stores/MA0106202201A1955471/menu")).json()["items"]

    assert [(i["id"], i["price_krw"]) for i in after] == [(before[0]["id"], 6500)]


async def test_get_menu_item_only_finds_an_item_of_that_store(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "store_id,name,price_krw\nMA0106202201A1955471,핸드크림,9000\n", encoding="utf-8"
    )
    assert import_menus([str(path)]) == 0
    item_id = next(
        i["id"]
        for i in (await client.get("/stores/MA0106202201A1955471/menu")).json()["items"]
        if i["name"] == "핸드크림"
    )
    engine = build_engine(ApiSettings())
    try:
        async with session_factory(engine)() as session:
            own = await get_menu_item(session, "MA0106202201A1955471", item_id)
            foreign = await get_menu_item(session, "MA0106202201A2069228", item_id)
    finally:
        await engine.dispose()

    assert own is not None
    assert (own.name, own.price_krw) == ("핸드크림", 9000)
    assert foreign is None


async def test_the_menu_of_an_unknown_or_closed_store_is_a_404_problem(
    client: httpx.AsyncClient,
) -> None:
    engine = build_engine(ApiSettings())
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE stores SET closed_at = now() WHERE id = 'MA0106202201A0016575'")
            )
    finally:
        await engine.dispose()

    for store_id in ("NOSUCHSTORE000000001", "MA0106202201A0016575"):
        answer = await client.get(f"/stores/{store_id}/menu")
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "store_not_found"
