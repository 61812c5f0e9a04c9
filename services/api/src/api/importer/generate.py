"""``generate-stores``: a realistic Seoul-sized store file, for the bench and for demo data.

Stores sit inside the real district polygons, clustered like a city (commercial streets around
random centres, denser in busy districts), with plausible names, categories, codes and addresses.
It writes the current format exactly (39 columns, quoted text, unquoted numbers, UTF-8 with a
BOM) or one of the older generations the importer also reads.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import shapely

from api.importer import boundaries
from api.importer.formats import COLUMNS
from api.importer.progress import Progress

SEOUL_ROWS = 554_092
GENERATIONS = ("current", "2020-pipe", "2017-cp949")
NUMERIC = frozenset({"지번본번지", "지번부번지", "건물본번지", "건물부번지", "경도", "위도"})

# Busier districts get more stores (a rough shape of the real file, not its numbers).
_BUSY = {"11680": 3.0, "11440": 2.2, "11650": 2.0, "11560": 1.8, "11140": 1.8, "11710": 1.7}

# (small code, small name, standard industry code, name) for the non-I2 part of the file.
_FOOD_RETAIL = (
    ("G2", "소매", "G204", "종합 소매", "G20404", "슈퍼마켓", "G47121", "슈퍼마켓"),
    ("G2", "소매", "G204", "종합 소매", "G20405", "편의점", "G47122", "체인화 편의점"),
    (
        "G2",
        "소매",
        "G205",
        "식료품 소매",
        "G20501",
        "채소/과일 소매업",
        "G47211",
        "과실 및 채소 소매업",
    ),
    ("G2", "소매", "G205", "식료품 소매", "G20502", "정육점", "G47212", "육류 소매업"),
)
_OTHER = (
    (
        "G2",
        "소매",
        "G209",
        "섬유·의복·신발 소매",
        "G20901",
        "남성 의류 소매업",
        "G47412",
        "남자용 겉옷 소매업",
    ),
    (
        "G2",
        "소매",
        "G215",
        "의약·화장품 소매",
        "G21503",
        "화장품 소매업",
        "G47813",
        "화장품 소매업",
    ),
    (
        "G2",
        "소매",
        "G221",
        "기타 상품 소매",
        "G22199",
        "그 외 기타 상품 전문 소매업",
        "G47859",
        "그 외 기타 상품 소매업",
    ),
    ("S2", "수리·개인", "S207", "이용·미용", "S20701", "미용실", "S96112", "두발 미용업"),
    ("S2", "수리·개인", "S208", "세탁", "S20801", "세탁소", "S96911", "가정용 세탁업"),
    (
        "R1",
        "예술·스포츠",
        "R103",
        "스포츠 서비스",
        "R10310",
        "헬스장",
        "R91113",
        "체력 단련시설 운영업",
    ),
    ("P1", "교육", "P105", "일반 교육", "P10501", "입시·교과학원", "P85501", "일반 교과 학원"),
    (
        "L1",
        "부동산",
        "L102",
        "부동산 서비스",
        "L10203",
        "부동산 중개/대리업",
        "L68221",
        "부동산 중개 및 대리업",
    ),
    ("I1", "숙박", "I101", "일반 숙박", "I10102", "여관/모텔", "I55102", "여관업"),
    ("M1", "과학·기술", "M111", "법무관련 서비스", "M11101", "변호사", "M71101", "변호사업"),
    ("Q1", "보건의료", "Q102", "의원", "Q10201", "내과/외과/의원", "Q86201", "일반 의원"),
    (
        "N1",
        "시설관리·임대",
        "N101",
        "사업시설 유지·관리 서비스",
        "N10101",
        "건물 관리",
        "N74100",
        "사업시설 유지관리 서비스업",
    ),
)
_FOOD_STD = {
    "I201": "I56111",
    "I202": "I56121",
    "I203": "I56122",
    "I204": "I56123",
    "I205": "I56129",
}
_FOOD_WORDS = {
    "I201": (
        "한정식",
        "국밥",
        "찌개",
        "칼국수",
        "냉면",
        "삼겹살",
        "갈비",
        "곱창",
        "닭갈비",
        "보쌈",
    ),
    "I202": ("반점", "짜장", "마라탕", "훠궈", "중화요리"),
    "I203": ("스시", "돈카츠", "라멘", "우동", "이자카야"),
    "I204": ("파스타", "스테이크", "비스트로", "키친"),
    "I205": ("쌀국수", "포", "반미", "타이"),
    "I206": ("케밥", "타코", "커리"),
    "I207": ("구내식당", "뷔페"),
    "I210": (
        "베이커리",
        "빵집",
        "떡집",
        "피자",
        "버거",
        "샌드위치",
        "치킨",
        "김밥",
        "분식",
        "빙수",
    ),
    "I211": ("호프", "포차", "주막", "와인바", "이자카야"),
    "I212": ("커피", "카페", "로스터스", "티하우스"),
}
_PREFIXES = (
    "할매",
    "원조",
    "옛날",
    "우리",
    "서울",
    "한강",
    "정든",
    "행복한",
    "맛있는",
    "바른",
    "소문난",
    "진",
    "명가",
    "청담",
    "을지로",
    "성수",
    "골목",
    "동네",
    "오늘",
    "엄마손",
    "봄날",
    "달빛",
)
_CHAINS = {
    "G20404": ("GS더프레시", "롯데슈퍼", "이마트에브리데이", "홈플러스익스프레스", "동네마트"),
    "G20405": ("GS25", "CU", "세븐일레븐", "이마트24", "미니스톱"),
}
_ROAD_SUFFIX = ("로", "길", "대로")


@dataclass(frozen=True)
class _Category:
    large: str
    large_name: str
    middle: str
    middle_name: str
    small: str
    small_name: str
    std: str
    std_name: str


def _food_categories() -> list[_Category]:
    text = resources.files("api.data").joinpath("seoul", "sangkwon_upjong_2023_I2_food.csv")
    rows = csv.DictReader(text.read_text(encoding="utf-8").splitlines())
    out = []
    for row in rows:
        if not row["소분류코드"]:
            continue
        middle = row["중분류코드"]
        std = _FOOD_STD.get(middle, "I56199")
        out.append(
            _Category(
                "I2",
                "음식",
                middle,
                row["중분류명_CSV값(짧은명)"],
                row["소분류코드"],
                row["소분류명"],
                std,
                row["중분류_코드표명(긴명)"] or row["소분류명"],
            )
        )
    return out


def generate_rows(
    count: int, seed: int = 20260601, progress: Progress | None = None
) -> list[dict[str, str]]:
    """``count`` current-format rows (column name → text) inside Seoul's districts."""
    rng = np.random.default_rng(seed)
    lon, lat = _clustered_points(rng, count)
    district_index, dong_index = boundaries.districts(), boundaries.dongs()
    districts = district_index.locate(lon, lat)
    dongs = dong_index.locate(lon, lat)
    food = _food_categories()
    food_retail = [_Category(*c) for c in _FOOD_RETAIL]
    other = [_Category(*c) for c in _OTHER]
    kind = rng.choice(3, size=count, p=[0.34, 0.06, 0.60])
    pick = rng.integers(0, 1 << 30, size=(count, 6))
    rows: list[dict[str, str]] = []
    step = max(1, count // 100)
    for i in range(count):
        if progress is not None and i % step == 0:
            progress(min(step, count - i))
        district = districts[i]
        dong = dongs[i]
        assert district is not None  # points are drawn inside the districts
        gu = district.name
        dong_code = dong.code if dong is not None else f"{district.code}000"
        dong_name = dong.name if dong is not None else gu
        r = pick[i]
        table = (food, food_retail, other)[kind[i]]
        cat = table[r[0] % len(table)]
        name, branch = _name(cat, dong_name, r)
        root = dong_name.rstrip("0123456789.·동가") or dong_name
        road = f"{root}{_ROAD_SUFFIX[r[3] % 3]}" + (f"{r[4] % 40 + 1}길" if r[3] % 2 else "")
        building = r[4] % 300 + 1
        lot_main, lot_sub = r[5] % 900 + 1, r[5] % 7
        legal_dong = f"{root}동"
        legal_code = f"{district.code}{10100 + r[2] % 60 * 100:05d}"
        rows.append(
            {
                "상가업소번호": f"MA0101{2015 + r[1] % 11}{r[1] % 12 + 1:02d}{r[2] % 28 + 1:02d}"
                f"{i:06d}",
                "상호명": name,
                "지점명": branch,
                "상권업종대분류코드": cat.large,
                "상권업종대분류명": cat.large_name,
                "상권업종중분류코드": cat.middle,
                "상권업종중분류명": cat.middle_name,
                "상권업종소분류코드": cat.small,
                "상권업종소분류명": cat.small_name,
                "표준산업분류코드": cat.std,
                "표준산업분류명": cat.std_name,
                "시도코드": "11",
                "시도명": "서울특별시",
                "시군구코드": district.code,
                "시군구명": gu,
                "행정동코드": dong_code,
                "행정동명": dong_name,
                "법정동코드": legal_code,
                "법정동명": legal_dong,
                "지번코드": f"{legal_code}1{lot_main:04d}{lot_sub:04d}",
                "대지구분코드": "1",
                "대지구분명": "대지",
                "지번본번지": str(lot_main),
                "지번부번지": str(lot_sub) if lot_sub else "",
                "지번주소": f"서울특별시 {gu} {legal_dong} {lot_main}"
                + (f"-{lot_sub}" if lot_sub else ""),
                "도로명코드": f"{district.code}{3000000 + r[3] % 999999:07d}",
                "도로명": f"서울특별시 {gu} {road}",
                "건물본번지": str(building),
                "건물부번지": "",
                "건물관리번호": f"{district.code}{10100 + r[2] % 60 * 100:05d}1{lot_main:04d}"
                f"{lot_sub:04d}{r[4] % 999999:06d}",
                "건물명": "",
                "도로명주소": f"서울특별시 {gu} {road} {building}",
                "구우편번호": f"{100000 + r[5] % 60000}",
                "신우편번호": f"{r[5] % 9000 + 1000:05d}",
                "동정보": "",
                "층정보": str(r[2] % 5 + 1) if r[2] % 3 else "",
                "호정보": "",
                "경도": repr(float(lon[i])),
                "위도": repr(float(lat[i])),
            }
        )
    return rows


def _name(cat: _Category, dong_name: str, r: np.ndarray) -> tuple[str, str]:
    if cat.small in _CHAINS:
        chains = _CHAINS[cat.small]
        return chains[r[1] % len(chains)], f"{dong_name.rstrip('0123456789')}점"
    words = _FOOD_WORDS.get(cat.middle)
    if words is None:
        word = cat.small_name.split("/")[0].replace(" 소매업", "").replace("업", "")
        return f"{_PREFIXES[r[1] % len(_PREFIXES)]}{word}", ""
    name = f"{_PREFIXES[r[1] % len(_PREFIXES)]}{words[r[2] % len(words)]}"
    branch = f"{dong_name.rstrip('0123456789')}점" if r[3] % 9 == 0 else ""
    return name, branch


def _clustered_points(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Cluster centres uniform in area-weighted districts; stores Gaussian around the centres."""
    index = boundaries.districts()
    geoms = [index.geometry(area.code) for area in index.areas]
    weights = np.array(
        [shapely.area(g) * _BUSY.get(a.code, 1.0) for a, g in zip(index.areas, geoms, strict=True)]
    )
    weights /= weights.sum()
    clusters = max(1, count // 150)
    centre_district = rng.choice(len(geoms), size=clusters, p=weights)
    centres = np.empty((clusters, 2))
    for d, geom in enumerate(geoms):
        wanted = np.flatnonzero(centre_district == d)
        centres[wanted] = _uniform_in(rng, geom, len(wanted))
    # Street-sized clusters: a few big ones (station areas), many small ones.
    sizes = rng.pareto(1.5, size=clusters) + 1
    owner = rng.choice(clusters, size=count, p=sizes / sizes.sum())
    spread = rng.uniform(0.0008, 0.003, size=clusters)[owner]
    lon = centres[owner, 0] + rng.normal(0, 1, count) * spread * 1.26
    lat = centres[owner, 1] + rng.normal(0, 1, count) * spread
    union = shapely.union_all(geoms)
    shapely.prepare(union)
    outside = np.flatnonzero(~shapely.contains_xy(union, lon, lat))
    while len(outside):
        # Stores spilling over the city limit move back towards their centre.
        jitter = rng.normal(0, 1, (len(outside), 2)) * spread[outside, None] * 0.3
        lon[outside] = centres[owner[outside], 0] + jitter[:, 0]
        lat[outside] = centres[owner[outside], 1] + jitter[:, 1]
        outside = outside[~shapely.contains_xy(union, lon[outside], lat[outside])]
    return np.round(lon, 9), np.round(lat, 9)


def _uniform_in(rng: np.random.Generator, geom: object, n: int) -> np.ndarray:
    minx, miny, maxx, maxy = shapely.bounds(geom)
    out = np.empty((0, 2))
    while len(out) < n:
        xs = rng.uniform(minx, maxx, n * 3)
        ys = rng.uniform(miny, maxy, n * 3)
        inside = shapely.contains_xy(geom, xs, ys)
        out = np.vstack([out, np.column_stack([xs[inside], ys[inside]])])
    return out[:n]


# --- the older generations ---------------------------------------------------------------------

_I2_TO_Q = {
    "I201": ("Q01", "한식"),
    "I202": ("Q02", "중식"),
    "I203": ("Q03", "일식/수산물"),
    "I204": ("Q06", "양식"),
    "I205": ("Q10", "별식/퓨전요리"),
    "I206": ("Q10", "별식/퓨전요리"),
    "I207": ("Q15", "부페"),
    "I208": ("Q13", "음식배달서비스"),
    "I209": ("Q14", "기타음식업"),
    "I210": ("Q04", "분식"),
    "I211": ("Q09", "유흥주점"),
    "I212": ("Q12", "커피점/카페"),
}
_SMALL_TO_Q = {
    "I21001": ("Q08", "제과제빵떡케익"),
    "I21002": ("Q08", "제과제빵떡케익"),
    "I21003": ("Q07", "패스트푸드"),
    "I21004": ("Q07", "패스트푸드"),
    "I21006": ("Q05", "닭/오리요리"),
}


def to_generation(row: dict[str, str], generation: str, number: int) -> dict[str, str]:
    """The same store as an older file would have listed it (old codes, ids, dong codes)."""
    if generation == "current":
        return dict(row)
    old = dict(row)
    old["상가업소번호"] = str(10_000_000 + number)
    dong = row["행정동코드"]
    old["행정동코드"] = dong + "00" if len(dong) == 8 else dong
    if row["상권업종대분류코드"] == "I2":
        middle, middle_name = _SMALL_TO_Q.get(
            row["상권업종소분류코드"],
            _I2_TO_Q.get(row["상권업종중분류코드"], ("Q14", "기타음식업")),
        )
        old |= {
            "상권업종대분류코드": "Q",
            "상권업종대분류명": "음식",
            "상권업종중분류코드": middle,
            "상권업종중분류명": middle_name,
            "상권업종소분류코드": f"{middle}A01",
        }
    elif row["상권업종대분류코드"] == "G2":
        old |= {
            "상권업종대분류코드": "D",
            "상권업종중분류코드": "D03",
            "상권업종소분류코드": "D03A01",
        }
    return old


def write_rows(
    rows: Iterable[dict[str, str]], path: Path, generation: str = "current", *, bom: bool = True
) -> None:
    """Writes rows as the given generation writes them (see api.importer.formats)."""
    if generation == "current":
        with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as out:
            out.write(",".join(f'"{c}"' for c in COLUMNS) + "\n")
            for row in rows:
                out.write(",".join(_current_cell(c, row[c]) for c in COLUMNS) + "\n")
    elif generation == "2020-pipe":
        with path.open("w", encoding="utf-8", newline="") as out:
            out.write("|".join(COLUMNS) + "\n")
            for row in rows:
                out.write("|".join(row[c] for c in COLUMNS) + "\n")
    elif generation == "2017-cp949":
        with path.open("w", encoding="cp949", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(COLUMNS)
            for row in rows:
                writer.writerow([row[c] for c in COLUMNS])
    else:
        raise ValueError(f"unknown generation {generation!r}; one of {GENERATIONS}")


def _current_cell(column: str, value: str) -> str:
    if column in NUMERIC:
        return value
    return '"' + value.replace('"', '""') + '"'


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="generate-stores",
        description="Write a realistic Seoul 상가(상권)정보 store file for benches and demos.",
    )
    parser.add_argument("out", type=Path, help="the file to write")
    parser.add_argument("--rows", type=int, default=SEOUL_ROWS, help="default: %(default)s")
    parser.add_argument("--seed", type=int, default=20260601, help="same seed, same file")
    parser.add_argument("--generation", choices=GENERATIONS, default="current")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    progress = Progress("generating", args.rows, enabled=not args.no_progress)
    rows = generate_rows(args.rows, args.seed, progress)
    progress.finish()
    if args.generation != "current":
        rows = [to_generation(row, args.generation, n) for n, row in enumerate(rows)]
    write_rows(rows, args.out, args.generation)
    print(f"wrote {len(rows):,} rows ({args.generation}) to {args.out}", file=sys.stderr)
    return 0


def run() -> None:
    """Console entry point."""
    sys.exit(main())
