"""Menu files of every supported shape read into the same entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.menu.importer import MenuEntry, MenuFileError, parse_price, read_menu_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "menu"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4500, 4500),
        ("3,800", 3800),
        ("12,000원", 12000),
        ("10,000~15,000", 10000),
        ("시가", None),
        ("", None),
        (None, None),
        (True, None),
        (-1, None),
    ],
)
def test_prices_are_whole_won_or_none(value: object, expected: int | None) -> None:
    assert parse_price(value) == expected


def test_kakao_panel3_json_gives_named_priced_items_once_each() -> None:
    entries = read_menu_file(FIXTURES / "panel3_1748293040.json", store_id="MA0106202201A2069228")

    assert entries == [
        MenuEntry("MA0106202201A2069228", "생과일 망고주스", 4500, True, 0, "kakao-panel3"),
        MenuEntry("MA0106202201A2069228", "딸기바나나", 3800, False, 1, "kakao-panel3"),
        MenuEntry("MA0106202201A2069228", "계절 과일컵", None, False, 2, "kakao-panel3"),
    ]


def test_the_older_kakao_main_v_json_is_read_too_and_the_store_comes_from_the_name(
    tmp_path: Path,
) -> None:
    path = tmp_path / "MA010120220805431535.json"
    path.write_bytes((FIXTURES / "mainv_8150436.json").read_bytes())

    entries = read_menu_file(path)

    assert [(e.store_id, e.name, e.price_krw, e.is_recommended, e.source) for e in entries] == [
        ("MA010120220805431535", "찹쌀꽈배기", 2000, True, "kakao-main-v"),
        ("MA010120220805431535", "꽈배기 세트 (6개)", 12000, False, "kakao-main-v"),
    ]


def test_a_csv_lists_items_of_several_stores() -> None:
    entries = read_menu_file(FIXTURES / "menus.csv")

    assert [(e.store_id, e.name, e.price_krw, e.is_recommended, e.position) for e in entries] == [
        ("MA0106202201A0016575", "시그니처 샐러드", 9900, True, 0),
        ("MA0106202201A0016575", "오늘의 수프", 5500, False, 1),
        ("NOSUCHSTORE000000001", "유령 메뉴", 1000, False, 0),
    ]


def test_collector_json_lines_are_read(tmp_path: Path) -> None:
    path = tmp_path / "collected.jsonl"
    path.write_text(
        '{"store_id": "S1", "place_id": "1", "menus": [{"name": "김밥", "price_krw": 3000}]}\n'
        '{"store_id": "S2", "place_id": "2", "menus": []}\n',
        encoding="utf-8",
    )

    assert read_menu_file(path) == [MenuEntry("S1", "김밥", 3000, False, 0, "kakao-page")]


def test_a_json_without_a_menu_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "S1.json"
    path.write_text('{"basicInfo": {}}', encoding="utf-8")

    with pytest.raises(MenuFileError, match=r"S1\.json: no menu"):
        read_menu_file(path)


def test_a_csv_without_the_header_is_an_error_naming_line_one(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("가게,메뉴\nS1,김밥\n", encoding="utf-8")

    with pytest.raises(MenuFileError, match=r"m\.csv:1: the header"):
        read_menu_file(path)
