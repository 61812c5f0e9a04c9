"""Store files as Arrow columns: pyarrow's C++ CSV reader, with the Python reader behind it.

Only the twelve columns the importer uses are converted (as strings, exactly as the file has
them). The fast path reads UTF-8; a CP949 file is transcoded to UTF-8 first (line breaks stay
where they were, so line numbers hold).

The fast path answers only when it can vouch for every row's line number: one row per physical
line, no blank lines in between, no line break inside a quoted field. Anything else — a parse
error, undecodable bytes, a quoted line break, a blank line — goes to the Python reader
(``formats.read_file``), which either reads the file or raises ``MalformedFile`` naming the line.
Both paths give the same columns, so everything after reading is shared.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.csv as pacsv  # type: ignore[import-untyped]

from api.importer.formats import (
    REQUIRED,
    UTF8_BOM,
    FileFormat,
    MalformedFile,
    RawFile,
    check_header,
    detect_format,
    read_file,
)

# Bytes per read_csv call: progress steps and bounded peak memory; large enough that the
# reader's own threads have blocks to share.
CHUNK_BYTES = 16 << 20
_NEWLINE = 10


@dataclass(frozen=True)
class StoreFile:
    """A whole file read and checked: the ``REQUIRED`` columns as strings, plus ``line``."""

    path: Path
    format: FileFormat
    header: tuple[str, ...]
    columns: pa.Table  # REQUIRED names, raw strings; "line": the 1-based line of each row
    rows: int  # rows in the file, including those a pre-filter skipped unparsed
    reader: str  # "arrow" or "python"
    # Every field of the rows on the given lines (for the rejects file; rarely called).
    raw_rows: Callable[[Sequence[int]], list[list[str]]] = field(repr=False, compare=False)


def read_store_file(
    path: Path,
    encoding: str | None = None,
    delimiter: str | None = None,
    only_codes: tuple[str, ...] = (),
    progress: Callable[[int], None] | None = None,
    *,
    fast: bool = True,
) -> StoreFile:
    """Reads and checks one store file; raises ``MalformedFile`` naming the line.

    ``progress`` is called with the bytes read so far (the file's size in total). ``fast=False``
    uses the Python reader only (the reference the fast path is tested against).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MalformedFile(path, 0, f"cannot read the file: {exc.strerror}") from exc
    if not data or data.isspace():
        raise MalformedFile(path, 1, "the file is empty; expected a header line")
    fmt = detect_format(data, encoding, delimiter)
    if fast:
        utf8 = _as_utf8(data, fmt)
        if utf8 is not None:
            found = _read_arrow(path, fmt, utf8[0], utf8[1], _scaled(progress, len(data), utf8[0]))
            if found is not None:
                return found
    raw = read_file(path, fmt.encoding, fmt.delimiter, only_codes)
    if progress is not None:
        progress(len(data))
    return from_raw(raw)


def from_raw(raw: RawFile) -> StoreFile:
    """The Python reader's rows as the same columns the fast path gives."""
    arrays = {
        name: pa.array([row[raw.index[name]] for row in raw.rows], pa.string()) for name in REQUIRED
    }
    arrays["line"] = pa.array(raw.lines, pa.int64())
    by_line = dict(zip(raw.lines, raw.rows, strict=True))

    def raw_rows(lines: Sequence[int]) -> list[list[str]]:
        return [by_line[line] for line in lines]

    return StoreFile(
        raw.path,
        raw.format,
        raw.header,
        pa.table(arrays),
        len(raw.rows) + raw.skipped,
        "python",
        raw_rows,
    )


def _as_utf8(data: bytes, fmt: FileFormat) -> tuple[bytes, int] | None:
    """(UTF-8 bytes, offset of the text) or None when the bytes do not decode (Python path)."""
    if fmt.encoding.lower().replace("_", "-") not in ("utf-8-sig", "utf-8", "utf8"):
        # CP949 and the like: transcoded whole (a second for 300 MB); line breaks stay put.
        try:
            return data.decode(fmt.encoding, errors="strict").encode("utf-8"), 0
        except (UnicodeDecodeError, LookupError):
            return None
    skip = len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0
    # Arrow's UTF-8 check runs at memory speed; a str of 300 MB would cost seconds and 1 GB.
    buffer = pa.py_buffer(data)
    offsets = pa.array([skip, len(data)], pa.int64()).buffers()[1]
    try:
        pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, buffer]).cast(pa.large_string())
    except pa.ArrowException:
        return None
    return data, skip


def _scaled(
    progress: Callable[[int], None] | None, size: int, data: bytes
) -> Callable[[int], None] | None:
    """Progress in the file's bytes while reading the (maybe transcoded) UTF-8 bytes."""
    if progress is None or len(data) == size:
        return progress
    ratio = size / max(len(data), 1)
    return lambda done: progress(round(done * ratio))


def _text_end(data: bytes) -> int:
    """The end of the text without trailing line breaks (a final blank line is no row)."""
    end = len(data)
    while end and data[end - 1] in (_NEWLINE, 13):
        end -= 1
    return end


def _read_arrow(
    path: Path,
    fmt: FileFormat,
    data: bytes,
    skip: int,
    progress: Callable[[int], None] | None,
) -> StoreFile | None:
    end = _text_end(data)
    header_end = data.find(b"\n", skip, end)
    if header_end < 0:
        header_end = end
    try:
        header_text = data[skip:header_end].decode("utf-8").rstrip("\r")
        header = tuple(
            cell.strip()
            for cell in next(csv.reader([header_text], delimiter=fmt.delimiter, strict=True))
        )
    except (csv.Error, StopIteration, UnicodeDecodeError):
        return None
    index = check_header(path, header, fmt)
    # One row per line, no blank line, no quoted line break: then row n is on line n + 2.
    expected_rows = data.count(b"\n", skip, end) if end > skip else 0
    names = [f"c{i}" for i in range(len(header))]
    wanted = [names[index[name]] for name in REQUIRED]
    read_options = pacsv.ReadOptions(column_names=names, use_threads=True)
    parse_options = pacsv.ParseOptions(delimiter=fmt.delimiter)
    convert_options = pacsv.ConvertOptions(
        include_columns=wanted,
        column_types=dict.fromkeys(wanted, pa.string()),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        check_utf8=False,  # the whole file was checked above
    )
    buffer = pa.py_buffer(data)
    tables = []
    start = header_end + 1
    while start < end:
        stop = data.find(b"\n", min(start + CHUNK_BYTES, end), end)
        stop = end if stop < 0 else stop + 1
        try:
            tables.append(
                pacsv.read_csv(
                    pa.BufferReader(buffer.slice(start, stop - start)),
                    read_options=read_options,
                    parse_options=parse_options,
                    convert_options=convert_options,
                )
            )
        except pa.ArrowException:
            return None
        if progress is not None:
            progress(stop - start)
        start = stop
    if tables:
        table = pa.concat_tables(tables).select(wanted).rename_columns(list(REQUIRED))
    else:
        table = pa.table({name: pa.array([], pa.string()) for name in REQUIRED})
    if table.num_rows != expected_rows:
        return None
    table = table.append_column("line", pa.array(np.arange(2, table.num_rows + 2), pa.int64()))
    if progress is not None:
        progress(len(data) - (end - header_end - 1 if tables else 0))  # all but the rows

    def raw_rows(lines: Sequence[int]) -> list[list[str]]:
        breaks = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == _NEWLINE)
        rows = []
        for line in lines:
            first = skip if line == 1 else int(breaks[line - 2]) + 1
            last = int(breaks[line - 1]) if line - 1 < len(breaks) else len(data)
            text = data[first:last].decode("utf-8").rstrip("\r")
            rows.append(next(csv.reader([text], delimiter=fmt.delimiter)))
        return rows

    return StoreFile(path, fmt, header, table, table.num_rows, "arrow", raw_rows)
