"""The HTTP/2 wire pieces push's client and the FCM stand-in's server share: frames round-trip,
malformed SETTINGS / WINDOW_UPDATE / padding / header blocks end the connection with the code
RFC 9113 names, and the HPACK coders give hpack's own answers."""

from __future__ import annotations

import struct

import hpack
import pytest

from servicekit.http2wire import (
    ACK,
    COMPRESSION_ERROR,
    CONTINUATION,
    DATA,
    ENABLE_PUSH,
    END_HEADERS,
    END_STREAM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_CONCURRENT_STREAMS,
    MAX_FRAME_SIZE,
    PADDED,
    PRIORITY_FLAG,
    PROTOCOL_ERROR,
    SETTINGS,
    WINDOW_UPDATE,
    Http2ConnectionError,
    RememberingDecoder,
    StatelessEncoder,
    code_payload,
    decode_block,
    frame,
    header_fragment,
    header_frames,
    read_frames,
    settings_pairs,
    unpad,
    window_increment,
)


def _settings(*pairs: tuple[int, int]) -> bytes:
    return b"".join(struct.pack(">HL", code, value) for code, value in pairs)


def test_frames_round_trip_and_a_partial_frame_is_left_for_later() -> None:
    sent = [
        (DATA, END_STREAM, 1, b"x" * 300),  # a length above 255 uses both length bytes
        (SETTINGS, ACK, 0, b""),
        (WINDOW_UPDATE, 0, 0x7FFF_FFFF, code_payload(5)),
    ]
    wire = b"".join(frame(*f) for f in sent)
    partial = frame(HEADERS, 0, 3, b"abc")[:10]
    seen: list[tuple[int, int, int, bytes]] = []
    used = read_frames(wire + partial, lambda *f: seen.append(f))
    assert seen == sent
    assert used == len(wire)


def test_a_header_block_above_the_peers_frame_size_goes_on_in_continuation_frames() -> None:
    seen: list[tuple[int, int, int, bytes]] = []
    block = bytes(range(256)) * 10  # 2,560 bytes in frames of at most 1,000
    wire = header_frames(5, block, 1_000, end_stream=True)
    assert read_frames(wire, lambda *f: seen.append(f)) == len(wire)
    assert [(kind, flags) for kind, flags, _, _ in seen] == [
        (HEADERS, END_STREAM),  # END_STREAM belongs to the HEADERS frame (§8.1)
        (CONTINUATION, 0),
        (CONTINUATION, END_HEADERS),
    ]
    assert {stream_id for _, _, stream_id, _ in seen} == {5}
    assert b"".join(payload for *_, payload in seen) == block
    assert header_frames(5, b"", 1_000, end_stream=False) == frame(HEADERS, END_HEADERS, 5)
    exact = header_frames(5, block[:1_000], 1_000, end_stream=False)
    assert exact == frame(HEADERS, END_HEADERS, 5, block[:1_000])


def test_the_reserved_bit_of_a_stream_id_is_cleared() -> None:
    seen: list[tuple[int, int, int, bytes]] = []
    read_frames(frame(DATA, 0, 0x8000_0003), lambda *f: seen.append(f))
    assert seen == [(DATA, 0, 3, b"")]


def test_a_frame_above_our_max_frame_size_is_a_frame_size_error() -> None:
    head_only = frame(DATA, 0, 1, b"x" * 16_385)[:9]  # refused on its header alone
    with pytest.raises(Http2ConnectionError) as caught:
        read_frames(head_only, lambda *f: None)
    assert caught.value.code == FRAME_SIZE_ERROR
    assert read_frames(frame(DATA, 0, 1, b"x" * 16_384), lambda *f: None) == 9 + 16_384


def test_settings_come_back_as_pairs_in_order_and_an_ack_as_none() -> None:
    payload = _settings((ENABLE_PUSH, 0), (MAX_CONCURRENT_STREAMS, 7), (INITIAL_WINDOW_SIZE, 9))
    assert settings_pairs(0, 0, payload) == [
        (ENABLE_PUSH, 0),
        (MAX_CONCURRENT_STREAMS, 7),
        (INITIAL_WINDOW_SIZE, 9),
    ]
    assert settings_pairs(ACK, 0, b"") is None
    edges = _settings((INITIAL_WINDOW_SIZE, 0x7FFF_FFFF), (MAX_FRAME_SIZE, 0xFF_FFFF))
    assert settings_pairs(0, 0, edges) == [
        (INITIAL_WINDOW_SIZE, 0x7FFF_FFFF),
        (MAX_FRAME_SIZE, 0xFF_FFFF),
    ]


@pytest.mark.parametrize(
    ("flags", "stream_id", "payload", "code"),
    [
        (0, 1, b"", FRAME_SIZE_ERROR),  # not on stream 0
        (0, 0, b"\x00" * 5, FRAME_SIZE_ERROR),  # not a multiple of 6
        (ACK, 0, _settings((ENABLE_PUSH, 0)), FRAME_SIZE_ERROR),  # an ack with a payload
        (0, 0, _settings((INITIAL_WINDOW_SIZE, 0x8000_0000)), FLOW_CONTROL_ERROR),
        (0, 0, _settings((MAX_FRAME_SIZE, 16_383)), PROTOCOL_ERROR),
        (0, 0, _settings((MAX_FRAME_SIZE, 0x100_0000)), PROTOCOL_ERROR),
        # A bad value after good ones still refuses the whole frame.
        (0, 0, _settings((MAX_CONCURRENT_STREAMS, 5), (MAX_FRAME_SIZE, 0)), PROTOCOL_ERROR),
    ],
)
def test_malformed_settings_are_refused_with_their_code(
    flags: int, stream_id: int, payload: bytes, code: int
) -> None:
    with pytest.raises(Http2ConnectionError) as caught:
        settings_pairs(flags, stream_id, payload)
    assert caught.value.code == code


def test_window_increment_reads_31_bits_and_refuses_what_is_malformed() -> None:
    assert window_increment(0, code_payload(10)) == 10
    assert window_increment(3, code_payload(0x8000_0001)) == 1  # the reserved bit is ignored
    assert window_increment(3, code_payload(0)) == 0  # on a stream: returned, ignored by both
    for stream_id, payload, code in [
        (0, code_payload(0), PROTOCOL_ERROR),
        (0, b"\x00\x00\x01", FRAME_SIZE_ERROR),
        (1, b"\x00\x00\x00\x01\x00", FRAME_SIZE_ERROR),
    ]:
        with pytest.raises(Http2ConnectionError) as caught:
            window_increment(stream_id, payload)
        assert caught.value.code == code


def test_padding_and_priority_fields_are_removed_and_overlong_padding_refused() -> None:
    assert unpad(0, b"\x05abc") == b"\x05abc"
    assert unpad(PADDED, b"\x02abc\x00\x00") == b"abc"
    assert header_fragment(PADDED | PRIORITY_FLAG, b"\x01" + b"\x00" * 5 + b"blk\x00") == b"blk"
    for payload in (b"", b"\x03ab", b"\x01"):
        with pytest.raises(Http2ConnectionError) as caught:
            unpad(PADDED, payload)
        assert caught.value.code == PROTOCOL_ERROR


def test_an_undecodable_header_block_is_a_compression_error() -> None:
    with pytest.raises(Http2ConnectionError) as caught:
        decode_block(RememberingDecoder(), b"\xff\xff\xff\xff")  # an index far out of range
    assert caught.value.code == COMPRESSION_ERROR


def test_stateless_encoder_blocks_decode_as_hpack_does_and_are_remembered() -> None:
    headers = [(b":method", b"POST"), (b":path", b"/v1/x"), (b"authorization", b"Bearer t")]
    encoder, decoder = StatelessEncoder(), RememberingDecoder()
    block = encoder.encode(headers)
    assert encoder.encode(headers) is block  # encoded once
    first, again = decode_block(decoder, block), decode_block(decoder, block)
    assert first == again == hpack.Decoder().decode(block, raw=True) == headers
    assert len(decoder._memo) == 1
    assert not decoder.header_table.dynamic_entries  # nothing was indexed


def test_an_indexing_peer_is_decoded_in_full_every_time() -> None:
    headers = [(b":method", b"POST"), (b"x-id", b"1")]
    encoder, decoder = hpack.Encoder(), RememberingDecoder()
    for _ in range(3):
        assert decode_block(decoder, encoder.encode(headers)) == headers
    assert decoder._memo == {}


def test_a_remembered_block_is_checked_again_under_a_smaller_header_list_limit() -> None:
    headers = [(b"x-big", b"v" * 200)]
    block = StatelessEncoder().encode(headers)
    decoder = RememberingDecoder()
    assert decode_block(decoder, block) == headers
    decoder.max_header_list_size = 100
    with pytest.raises(Http2ConnectionError) as caught:
        decode_block(decoder, block)
    assert caught.value.code == COMPRESSION_ERROR
