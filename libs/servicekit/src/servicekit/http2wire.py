"""HTTP/2 on the wire (RFC 9113), the pieces a client and a server read and write the same way:
frame constants, frame building and splitting, SETTINGS and WINDOW_UPDATE payload validation,
padding, and HPACK coders that spend no CPU on what repeats.

Push's HTTP/2 client (``push.delivery.http2``) and the FCM stand-in's h2c server
(``standins.h2c``) both speak through this; what a role does with a frame (streams, GOAWAY resend
rules, request validation, answers) stays in the role's module. Validation raises
``Http2ConnectionError`` carrying the RFC 9113 §7 error code the connection must close with.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 §6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0x5, 0x6, 0x7, 0x8, 0x9
# Flags.
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
# Settings (§6.5.2).
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS = 0x1, 0x2, 0x3
INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE = 0x4, 0x5, 0x6
# Error codes (§7).
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED = 0x0, 0x1, 0x3, 0x5
FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 0x6, 0x7, 0x8, 0x9

FRAME_HEAD = struct.Struct(">HBBBL")  # 24-bit length as 16 + 8 bits, type, flags, stream id
DEFAULT_FRAME_SIZE = 16_384  # SETTINGS_MAX_FRAME_SIZE's default and minimum
MAX_FRAME_SIZE_LIMIT = 0xFF_FFFF
DEFAULT_WINDOW = 65_535  # SETTINGS_INITIAL_WINDOW_SIZE's default, and a connection's
MAX_WINDOW = 0x7FFF_FFFF
MAX_STREAM_ID = 0x7FFF_FFFF
_CODE = struct.Struct(">L")
_SETTING = struct.Struct(">HL")


class Http2ConnectionError(Exception):
    """A connection error (RFC 9113 §5.4.1): the connection ends with GOAWAY and ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame: its 9-byte header and ``payload``."""
    size = len(payload)
    return FRAME_HEAD.pack(size >> 8, size & 0xFF, kind, flags, stream_id) + payload


def header_frames(stream_id: int, block: bytes, max_size: int, *, end_stream: bool) -> bytes:
    """A header block as HEADERS and, when it is above the peer's ``max_size``, CONTINUATION
    frames (§6.10): to be written in one piece, nothing between them."""
    flags = END_STREAM if end_stream else 0
    if len(block) <= max_size:
        return frame(HEADERS, flags | END_HEADERS, stream_id, block)
    frames = []
    for at in range(0, len(block), max_size):
        last = END_HEADERS if at + max_size >= len(block) else 0
        kind, first_flags = (HEADERS, flags) if at == 0 else (CONTINUATION, 0)
        frames.append(frame(kind, first_flags | last, stream_id, block[at : at + max_size]))
    return b"".join(frames)


def code_payload(code: int) -> bytes:
    """The payload of RST_STREAM (an error code) or WINDOW_UPDATE (an increment)."""
    return _CODE.pack(code)


def read_frames(
    buffer: bytes,
    on_frame: Callable[[int, int, int, bytes], None],
    max_size: int = DEFAULT_FRAME_SIZE,
) -> int:
    """Hands every complete frame in ``buffer`` to ``on_frame(kind, flags, stream_id, payload)``
    (the reserved bit of the stream id cleared) and returns how many bytes it used; the rest is
    the start of a frame still arriving. A frame above ``max_size`` (our SETTINGS_MAX_FRAME_SIZE)
    is a FRAME_SIZE_ERROR (§4.2)."""
    at, end = 0, len(buffer)
    unpack = FRAME_HEAD.unpack_from
    while end - at >= 9:
        high, low, kind, flags, stream_id = unpack(buffer, at)
        size = (high << 8) | low
        if size > max_size:
            raise Http2ConnectionError(FRAME_SIZE_ERROR, "a frame above SETTINGS_MAX_FRAME_SIZE")
        if end - at < 9 + size:
            break
        payload = buffer[at + 9 : at + 9 + size]
        at += 9 + size
        on_frame(kind, flags, stream_id & 0x7FFF_FFFF, payload)
    return at


def unpad(flags: int, payload: bytes) -> bytes:
    """A DATA or HEADERS payload without its padding (§6.1, §6.2)."""
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise Http2ConnectionError(PROTOCOL_ERROR, "padding longer than the frame")
    return payload[1 : len(payload) - payload[0]]


def header_fragment(flags: int, payload: bytes) -> bytes:
    """A HEADERS frame's header block fragment: padding and priority fields removed (§6.2)."""
    block = unpad(flags, payload)
    if flags & PRIORITY_FLAG:
        return block[5:]
    return block


def settings_pairs(flags: int, stream_id: int, payload: bytes) -> list[tuple[int, int]] | None:
    """The (setting, value) pairs of a SETTINGS frame in the order sent, each value checked
    against §6.5.2, or None for an acknowledgement. What a side does with each is its own."""
    if stream_id or len(payload) % 6 or (flags & ACK and payload):
        raise Http2ConnectionError(FRAME_SIZE_ERROR, "a malformed SETTINGS")
    if flags & ACK:
        return None
    pairs = [_SETTING.unpack_from(payload, at) for at in range(0, len(payload), 6)]
    for code, value in pairs:
        if code == INITIAL_WINDOW_SIZE and value > MAX_WINDOW:
            raise Http2ConnectionError(
                FLOW_CONTROL_ERROR, "a SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1"
            )
        if code == MAX_FRAME_SIZE and not DEFAULT_FRAME_SIZE <= value <= MAX_FRAME_SIZE_LIMIT:
            raise Http2ConnectionError(PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE out of range")
    return pairs


def window_increment(stream_id: int, payload: bytes) -> int:
    """A WINDOW_UPDATE's increment (§6.9). One of 0 is a connection error on stream 0; on a
    stream it is returned (0) and ignored by both sides."""
    if len(payload) != 4:
        raise Http2ConnectionError(FRAME_SIZE_ERROR, "a malformed WINDOW_UPDATE")
    increment: int = _CODE.unpack(payload)[0] & 0x7FFF_FFFF
    if not increment and not stream_id:
        raise Http2ConnectionError(PROTOCOL_ERROR, "a WINDOW_UPDATE of 0")
    return increment


def decode_block(decoder: RememberingDecoder, block: bytes) -> list[tuple[bytes, bytes]]:
    """A complete header block decoded (raw bytes); an undecodable one is a COMPRESSION_ERROR
    (§4.3). Every block must be decoded, even of a stream being dropped: it may change the
    table."""
    try:
        headers: list[tuple[bytes, bytes]] = decoder.decode(block, raw=True)
    except hpack.HPACKError as exc:
        raise Http2ConnectionError(
            COMPRESSION_ERROR, f"an undecodable header block: {exc}"
        ) from exc
    return headers


class StatelessEncoder(hpack.Encoder):
    """HPACK that never adds to the dynamic table: each header is a static-table reference or a
    literal marked never-indexed (RFC 7541 §6.2.3), without Huffman coding, so a header block
    depends only on its headers and a repeated list is encoded once. A few hundred bytes more on
    the wire than indexing would send, for most of HPACK's CPU on both ends (the peer copies
    literals instead of decoding them bit by bit)."""

    _MEMO_SIZE = 1024

    def __init__(self) -> None:
        super().__init__()
        self._memo: dict[tuple[Any, ...], bytes] = {}

    def encode(self, headers: Any, huffman: bool = False) -> bytes:
        if self.table_size_changes:  # the block must start with a size update: not memoized
            return super().encode(_never_indexed(headers), huffman=False)
        key = tuple(headers)
        block = self._memo.get(key)
        if block is None:
            if len(self._memo) >= self._MEMO_SIZE:
                self._memo.clear()
            block = self._memo[key] = super().encode(_never_indexed(key), huffman=False)
        return block


def _never_indexed(headers: Any) -> list[hpack.NeverIndexedHeaderTuple]:
    return [hpack.NeverIndexedHeaderTuple(h[0], h[1]) for h in headers]


class RememberingDecoder(hpack.Decoder):
    """hpack's decoder that remembers raw header blocks which neither use nor change the dynamic
    table (static references and non-indexed literals, what ``StatelessEncoder`` sends): such a
    block decodes to the same headers every time, so each distinct one is decoded once. Blocks
    of a peer that indexes (httpx, curl, most servers) take hpack's full path. A remembered list
    is returned as is: callers read it, never change it."""

    _MEMO_SIZE = 1024

    def __init__(self) -> None:
        super().__init__()
        self._memo: dict[bytes, list[tuple[bytes, bytes]]] = {}
        self._memo_limits = (self.header_table.maxsize, self.max_header_list_size)

    def decode(self, data: bytes, raw: bool = False) -> Any:
        table = self.header_table
        if table.dynamic_entries or not raw:
            return super().decode(data, raw)
        limits = (table.maxsize, self.max_header_list_size)
        if limits != self._memo_limits:  # what was remembered was checked against other limits
            self._memo.clear()
            self._memo_limits = limits
        key = bytes(data)
        headers = self._memo.get(key)
        if headers is None:
            headers = [(bytes(n), bytes(v)) for n, v in super().decode(data, raw=True)]
            if table.dynamic_entries or table.maxsize != limits[0]:
                return headers  # the block changed the table: not a function of its bytes
            if len(self._memo) >= self._MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = headers
        return headers
