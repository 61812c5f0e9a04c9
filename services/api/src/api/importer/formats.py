"""Reading 소상공인시장진흥공단_상가(상권)정보 files of every generation into plain rows.

Generations seen in the wild (see api/data/NOTICE.md and the shared data README):

- 2023 onward: UTF-8 (a BOM may be present), comma, quoted text, 20-character ids, 8-digit dong
  codes, food is 대분류 ``I2``;
- 2019-12 … 2020-12: the same columns, pipe-delimited UTF-8, numeric ids, 10-digit dong codes,
  food is 대분류 ``Q``;
- 2017: the same columns, comma CSV in CP949.

The encoding and delimiter are detected from the bytes and can be forced. A file that cannot be
read whole (wrong header, a short line, undecodable bytes) raises ``MalformedFile`` naming the
line: the importer reads every file completely before it writes anything.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UTF8_BOM = b"\xef\xbb\xbf"

# The 39 columns of the current file, in order (the generator writes exactly these).
COLUMNS: tuple[str, ...] = (
    "상가업소번호",
    "상호명",
    "지점명",
    "상권업종대분류코드",
    "상권업종대분류명",
    "상권업종중분류코드",
    "상권업종중분류명",
    "상권업종소분류코드",
    "상권업종소분류명",
    "표준산업분류코드",
    "표준산업분류명",
    "시도코드",
    "시도명",
    "시군구코드",
    "시군구명",
    "행정동코드",
    "행정동명",
    "법정동코드",
    "법정동명",
    "지번코드",
    "대지구분코드",
    "대지구분명",
    "지번본번지",
    "지번부번지",
    "지번주소",
    "도로명코드",
    "도로명",
    "건물본번지",
    "건물부번지",
    "건물관리번호",
    "건물명",
    "도로명주소",
    "구우편번호",
    "신우편번호",
    "동정보",
    "층정보",
    "호정보",
    "경도",
    "위도",
)

# What the importer reads; every generation has these under the same names.
REQUIRED: tuple[str, ...] = (
    "상가업소번호",
    "상호명",
    "지점명",
    "상권업종대분류코드",
    "상권업종중분류코드",
    "상권업종소분류코드",
    "시군구코드",
    "행정동코드",
    "지번주소",
    "도로명주소",
    "경도",
    "위도",
)


class MalformedFile(Exception):
    """The file cannot be imported as a whole; ``line`` is 1-based (the header is line 1)."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


@dataclass(frozen=True)
class FileFormat:
    encoding: str  # "utf-8-sig" or "cp949" (or what the caller forced)
    delimiter: str  # "," or "|"

    def describe(self) -> str:
        name = {"|": "pipe", ",": "comma", "\t": "tab"}.get(self.delimiter, repr(self.delimiter))
        return f"{self.encoding}, {name}-delimited"


@dataclass(frozen=True)
class RawFile:
    """A whole file decoded and checked: its rows (without the header) keyed by column name."""

    path: Path
    format: FileFormat
    header: tuple[str, ...]
    rows: list[list[str]]
    lines: list[int]  # the 1-based line each row starts on
    index: dict[str, int]  # column name -> position
    size: int
    skipped: int = 0  # well-formed rows the category pre-filter dropped unparsed


def detect_format(
    data: bytes, encoding: str | None = None, delimiter: str | None = None
) -> FileFormat:
    """Guesses the encoding (BOM, then strict UTF-8, then CP949) and the header's delimiter."""
    if encoding is None:
        if data.startswith(UTF8_BOM):
            encoding = "utf-8-sig"
        else:
            try:
                # Incremental: a multi-byte character cut at the sample's end is not an error.
                codecs.getincrementaldecoder("utf-8")(errors="strict").decode(
                    data[: 1 << 16], final=False
                )
                encoding = "utf-8-sig"
            except UnicodeDecodeError:
                encoding = "cp949"
    if delimiter is None:
        first = data.split(b"\n", 1)[0]
        delimiter = "|" if first.count(b"|") > first.count(b",") else ","
    return FileFormat(encoding=encoding, delimiter=delimiter)


def read_file(
    path: Path,
    encoding: str | None = None,
    delimiter: str | None = None,
    only_codes: tuple[str, ...] = (),
) -> RawFile:
    """Reads and checks one store file completely; raises ``MalformedFile`` naming the line.

    ``only_codes`` (category codes) lets it skip, unparsed, the lines that cannot hold any of
    them as a whole field — two thirds of a Seoul file — after checking their field count.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MalformedFile(path, 0, f"cannot read the file: {exc.strerror}") from exc
    if not data.strip():
        raise MalformedFile(path, 1, "the file is empty; expected a header line")
    fmt = detect_format(data, encoding, delimiter)
    # utf-8-sig reports error offsets after the BOM: strip it ourselves and decode the rest.
    skip = len(UTF8_BOM) if fmt.encoding == "utf-8-sig" and data.startswith(UTF8_BOM) else 0
    codec = "utf-8" if fmt.encoding == "utf-8-sig" else fmt.encoding
    try:
        text = data[skip:].decode(codec, errors="strict")
    except UnicodeDecodeError as exc:
        start, end = exc.start + skip, exc.end + skip
        line = data.count(b"\n", 0, start) + 1
        raise MalformedFile(
            path,
            line,
            f"bytes {data[start:end]!r} are not {fmt.encoding}; "
            "pass --encoding if the file uses another one",
        ) from exc
    except LookupError as exc:
        raise MalformedFile(path, 0, f"unknown encoding {fmt.encoding!r}") from exc
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=fmt.delimiter, strict=True)
    try:
        header = tuple(cell.strip() for cell in next(reader))
    except (StopIteration, csv.Error) as exc:
        raise MalformedFile(path, 1, f"unreadable header: {exc}") from exc
    index = check_header(path, header, fmt)
    width = len(header)
    if only_codes:
        fast = _read_selected(path, text, fmt.delimiter, width, reader.line_num + 1, only_codes)
        if fast is not None:
            rows, lines, skipped = fast
            return RawFile(path, fmt, header, rows, lines, index, len(data), skipped)
    rows, lines = _read_all(path, reader, width)
    return RawFile(path, fmt, header, rows, lines, index, len(data))


def check_header(path: Path, header: tuple[str, ...], fmt: FileFormat) -> dict[str, int]:
    """Column name -> position; ``MalformedFile`` (line 1) when a column we read is missing."""
    index = {name: i for i, name in enumerate(header)}
    missing = [name for name in REQUIRED if name not in index]
    if missing:
        shown = ", ".join(missing[:5]) + ("…" if len(missing) > 5 else "")
        raise MalformedFile(
            path,
            1,
            f"wrong header: missing column(s) {shown} (found {len(header)} columns, delimiter "
            f"{fmt.delimiter!r}); is this a 상가(상권)정보 file? pass --delimiter to override",
        )
    return index


def _short_line(path: Path, line: int, width: int, found: int) -> MalformedFile:
    return MalformedFile(
        path,
        line,
        f"expected {width} fields, found {found} (a truncated or broken line); "
        "fix or remove the line and run again",
    )


def _read_all(path: Path, reader: Any, width: int) -> tuple[list[list[str]], list[int]]:
    rows: list[list[str]] = []
    lines: list[int] = []
    start = reader.line_num + 1
    try:
        for row in reader:
            if len(row) != width:
                if not row or row == [""]:  # a blank line, e.g. the file's final newline twice
                    start = reader.line_num + 1
                    continue
                raise _short_line(path, start, width, len(row))
            rows.append(row)
            lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise MalformedFile(path, start, f"broken quoting: {exc}") from exc
    return rows, lines


def _read_selected(
    path: Path, text: str, delimiter: str, width: int, first: int, codes: tuple[str, ...]
) -> tuple[list[list[str]], list[int], int] | None:
    """The fast path: None when a quoted field spans lines (then every line is parsed)."""
    # Category codes are never the first or last column: a match has a delimiter on each side.
    d = re.escape(delimiter)
    wanted = re.compile(
        "|".join(f'{d}"?{re.escape(code)}"?{d}' for code in sorted(codes, key=len, reverse=True))
    ).search
    minimum = width - 1
    physical = text.split("\n")
    kept: list[str] = []
    kept_lines: list[int] = []
    skipped = 0
    for number in range(first - 1, len(physical)):
        line = physical[number]
        if line.endswith("\r"):
            line = line[:-1]
        if not line:
            continue
        if line.count('"') % 2:
            return None
        if line.count(delimiter) < minimum:
            raise _short_line(path, number + 1, width, line.count(delimiter) + 1)
        if wanted(line):
            kept.append(line)
            kept_lines.append(number + 1)
        else:
            skipped += 1
    rows: list[list[str]] = []
    lines: list[int] = []
    parsed = csv.reader(kept, delimiter=delimiter, strict=True)
    try:
        for row, number in zip(parsed, kept_lines, strict=True):
            if len(row) != width:
                raise _short_line(path, number, width, len(row))
            rows.append(row)
            lines.append(number)
    except csv.Error as exc:
        raise MalformedFile(path, kept_lines[len(rows)], f"broken quoting: {exc}") from exc
    return rows, lines, skipped


def iter_column(raw: RawFile, name: str) -> Iterator[str]:
    position = raw.index[name]
    for row in raw.rows:
        yield row[position]
