"""Sans-IO codec tests: round trips, malformed input, limits, bombs, chunk reassembly."""

from __future__ import annotations

import struct
import tracemalloc
import zlib
from typing import Any

import numpy as np
import orjson
import pytest

from aioforest.wire import (
    CLOSED,
    DEFAULT_CONFIG,
    NEED_DATA,
    PREFIX_SIZE,
    BadCompression,
    BadMagic,
    BadSegment,
    ChunkError,
    Decoder,
    DecompressionBomb,
    Encoder,
    FrameTooLarge,
    MalformedFrame,
    MalformedHeader,
    Message,
    ProtocolError,
    TruncatedFrame,
    UnsupportedVersion,
    WireConfig,
)

KiB = 1024
MiB = 1024 * KiB

# Small limits keep chunking tests fast while exercising the same code paths.
SMALL = WireConfig(
    chunk_size=16 * KiB,
    max_header_size=4 * KiB,
    max_frame_size=64 * KiB,
    max_decompressed_size=32 * KiB,
    max_message_size=1 * MiB,
    max_streams=3,
)


# ----------------------------------------------------------------------------- helpers


def raw_frame(
    header: dict[str, Any] | bytes,
    body: bytes = b"",
    *,
    magic: bytes = b"AIOF",
    version: int = 1,
    flags: int = 0,
    reserved: int = 0,
    header_len: int | None = None,
    body_len: int | None = None,
    raw_len: int | None = None,
) -> bytes:
    """Build a frame by hand from the documented layout (independent of the encoder)."""
    hb = header if isinstance(header, bytes) else orjson.dumps(header)
    prefix = struct.pack(
        "!4sBBHIIQ",
        magic,
        version,
        flags,
        reserved,
        len(hb) if header_len is None else header_len,
        len(body) if body_len is None else body_len,
        len(body) if raw_len is None else raw_len,
    )
    return prefix + hb + body


def gz(data: bytes) -> bytes:
    return zlib.compress(data, 6, wbits=31)


def decode_all(data: bytes, config: WireConfig = DEFAULT_CONFIG, *, eof: bool = True) -> list[Any]:
    dec = Decoder(config)
    dec.receive_data(data)
    if eof:
        dec.receive_data(b"")
    events = []
    while True:
        ev = dec.next_event()
        events.append(ev)
        if ev is NEED_DATA or ev is CLOSED:
            return events


def roundtrip(msg: Message, config: WireConfig = DEFAULT_CONFIG) -> Message:
    frames = Encoder(config).encode(msg)
    events = decode_all(b"".join(frames), config)
    assert len(events) == 2 and events[1] is CLOSED
    out = events[0]
    assert isinstance(out, Message)
    return out


def assert_same(a: Message, b: Message) -> None:
    assert a.type == b.type
    assert a.fields == b.fields
    assert len(a.arrays) == len(b.arrays)
    for x, y in zip(a.arrays, b.arrays, strict=True):
        assert x.dtype == y.dtype
        assert x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def zeros_gzip_bomb(total: int, piece: int = MiB) -> bytes:
    """A gzip stream of ``total`` zero bytes, built without allocating ``total`` bytes.

    Each piece is compressed with a full flush, so every piece after the first
    compresses to identical bytes that can simply be repeated.
    """
    zeros = bytes(piece)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    again = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    final_block = comp.flush()[:-8]
    crc = 0
    for _ in range(total // piece):
        crc = zlib.crc32(zeros, crc)
    trailer = struct.pack("<II", crc, total & 0xFFFFFFFF)
    return first + again * (total // piece - 1) + final_block + trailer


# ----------------------------------------------------------------------------- round trips

DTYPES = ["?", "u1", "<u2", "<u4", "<u8", "i1", "<i2", "<i4", "<i8", "<f4", "<f8"]
SHAPES = [(), (0,), (3,), (2, 3), (0, 5), (2, 0, 3), (1, 1, 1, 1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_roundtrip_dtypes_and_shapes(dtype: str, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(42)
    arr = np.asarray(rng.random(shape) * 100).astype(dtype)
    out = roundtrip(Message("data", {"k": 1}, [arr]))
    assert_same(out, Message("data", {"k": 1}, [arr]))
    assert out.arrays[0].flags.c_contiguous


def test_roundtrip_no_arrays_and_rich_fields() -> None:
    fields = {
        "task_id": 17,
        "name": "tr\u00e9e \U0001f332",
        "nested": {"a": [1, 2.5, None, True], "b": {}},
        "numpy_scalar": np.int64(5),
    }
    out = roundtrip(Message("task", fields))
    assert out.arrays == ()
    assert out.fields == {**fields, "numpy_scalar": 5}


def test_roundtrip_mixed_arrays_and_bytes() -> None:
    arrays: list[Any] = [
        b"raw bytes",
        np.arange(7, dtype=np.int16),
        np.zeros(0, dtype=np.float64),
        np.array([True, False, True]),
        bytearray(b"xyz"),
        np.linspace(0, 1, 11),  # at an odd offset: decoded copy must be aligned
    ]
    out = roundtrip(Message("mix", {}, arrays))
    assert out.arrays[0].tobytes() == b"raw bytes"
    assert out.arrays[0].dtype == np.uint8
    np.testing.assert_array_equal(out.arrays[1], np.arange(7, dtype=np.int16))
    assert out.arrays[2].shape == (0,)
    np.testing.assert_array_equal(out.arrays[5], np.linspace(0, 1, 11))
    assert all(a.flags.aligned for a in out.arrays)


def test_big_endian_and_fortran_inputs_arrive_as_equal_c_little_endian() -> None:
    big = np.arange(6, dtype=">f8").reshape(2, 3)
    fortran = np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4))
    strided = np.arange(20, dtype=np.int64)[::3]
    out = roundtrip(Message("m", {}, [big, fortran, strided]))
    assert out.arrays[0].dtype.str == "<f8"
    np.testing.assert_array_equal(out.arrays[0], big)
    np.testing.assert_array_equal(out.arrays[1], fortran)
    assert out.arrays[1].flags.c_contiguous
    np.testing.assert_array_equal(out.arrays[2], strided)


def test_decoded_arrays_are_writable_and_independent_of_decoder_buffer() -> None:
    arr = np.arange(10.0)
    frames = Encoder().encode(Message("m", {}, [arr]))
    dec = Decoder()
    dec.receive_data(frames[0] + frames[0])
    first = dec.next_event()
    second = dec.next_event()
    assert isinstance(first, Message) and isinstance(second, Message)
    first.arrays[0][:] = -1
    np.testing.assert_array_equal(second.arrays[0], arr)


def test_chunked_roundtrip_with_several_arrays() -> None:
    rng = np.random.default_rng(0)
    arrays: list[Any] = [
        rng.random((100, 50)),  # 40000 bytes
        np.zeros(0, dtype=np.int32),
        b"abc",  # leaves the next array misaligned inside the body
        rng.integers(0, 10, size=20_000, dtype=np.int64),  # 160000 bytes
    ]
    msg = Message("dataset", {"rows": 100}, arrays)
    enc = Encoder(SMALL)
    frames = enc.encode(msg)
    assert len(frames) == -(-msg.nbytes // SMALL.chunk_size)
    assert all(len(f) <= SMALL.chunk_size + SMALL.max_header_size + PREFIX_SIZE for f in frames)
    events = decode_all(b"".join(frames), SMALL)
    assert events[1] is CLOSED
    assert_same(events[0], msg)
    assert all(a.flags.aligned and a.flags.writeable for a in events[0].arrays)


def test_chunk_frames_carry_stream_id_seq_last() -> None:
    msg = Message("big", {"id": 9}, [np.ones(5000)])  # 40000 bytes -> 3 chunks of 16 KiB
    frames = Encoder(SMALL).encode(msg)
    headers = []
    for f in frames:
        hl = struct.unpack_from("!I", f, 8)[0]
        headers.append(orjson.loads(f[PREFIX_SIZE : PREFIX_SIZE + hl]))
    assert [h["seq"] for h in headers] == [0, 1, 2]
    assert [h["last"] for h in headers] == [False, False, True]
    assert {h["stream_id"] for h in headers} == {1}
    assert headers[0]["message"]["type"] == "big" and headers[0]["message"]["id"] == 9
    assert all("message" not in h for h in headers[1:])


def test_interleaved_streams_and_control_frames_decode_in_completion_order() -> None:
    enc = Encoder(SMALL)
    a = Message("a", {}, [np.full(6000, 1.0)])  # 3 chunks
    b = Message("b", {}, [np.full(4500, 2.0)])  # 3 chunks
    fa, fb = enc.encode(a), enc.encode(b)
    ping = enc.encode(Message("ping", {"n": 1}))
    stream = fa[0] + fb[0] + ping[0] + fa[1] + fb[1] + fb[2] + ping[0] + fa[2]
    events = decode_all(stream, SMALL)
    assert [e.type for e in events[:-1]] == ["ping", "b", "ping", "a"]
    assert_same(events[1], b)
    assert_same(events[3], a)


def test_byte_at_a_time_feeding() -> None:
    enc = Encoder(SMALL)
    msgs = [
        Message("small", {"x": 1}),
        Message("zeros", {}, [np.zeros(3000)]),  # compressed
        Message("big", {}, [np.arange(5000, dtype=np.float64)]),  # chunked
        Message("tail", {}, [b"end"]),
    ]
    data = b"".join(f for m in msgs for f in enc.encode(m))
    dec = Decoder(SMALL)
    got: list[Message] = []
    for i in range(len(data)):
        dec.receive_data(data[i : i + 1])
        ev = dec.next_event()
        if isinstance(ev, Message):
            got.append(ev)
            assert dec.next_event() is NEED_DATA
        else:
            assert ev is NEED_DATA
    dec.receive_data(b"")
    assert dec.next_event() is CLOSED
    assert dec.next_event() is CLOSED
    assert len(got) == len(msgs)
    for a, b in zip(got, msgs, strict=True):
        assert_same(a, b)
    assert dec.stats.messages == 4


# ----------------------------------------------------------------------------- compression


def test_compressible_body_is_gzipped_and_stats_count_both_sizes() -> None:
    enc = Encoder()
    msg = Message("zeros", {}, [np.zeros(10_000)])
    (frame,) = enc.encode(msg)
    flags = frame[5]
    assert flags == 1
    raw_len = struct.unpack_from("!Q", frame, 16)[0]
    assert raw_len == 80_000
    assert len(frame) < 2000
    assert enc.stats.raw_bytes > 80_000 > 10 * enc.stats.wire_bytes
    assert enc.stats.wire_bytes == len(frame)
    dec = Decoder()
    dec.receive_data(frame)
    out = dec.next_event()
    assert isinstance(out, Message)
    assert_same(out, msg)
    assert dec.stats.raw_bytes == enc.stats.raw_bytes
    assert dec.stats.wire_bytes == len(frame)


def test_incompressible_body_is_sent_raw() -> None:
    rng = np.random.default_rng(1)
    for n in (10_000, 500_000):  # below and above the sampling size
        enc = Encoder()
        (frame,) = enc.encode(Message("noise", {}, [rng.integers(0, 256, n, dtype=np.uint8)]))
        assert frame[5] == 0
        assert enc.stats.raw_bytes == enc.stats.wire_bytes == len(frame)


def test_small_bodies_and_disabled_compression_are_not_compressed() -> None:
    (small,) = Encoder().encode(Message("z", {}, [bytes(1000)]))
    assert small[5] == 0
    (off,) = Encoder(WireConfig(compression=False)).encode(Message("z", {}, [bytes(100_000)]))
    assert off[5] == 0


def test_chunks_are_compressed_independently() -> None:
    frames = Encoder(SMALL).encode(Message("z", {}, [np.zeros(10_000)]))
    assert len(frames) == 5
    assert all(f[5] == 1 for f in frames)
    assert_same(decode_all(b"".join(frames), SMALL)[0], Message("z", {}, [np.zeros(10_000)]))


# ----------------------------------------------------------------------------- encoder errors


def test_message_validation() -> None:
    with pytest.raises(ValueError, match="reserved for chunk frames"):
        Message("chunk")
    with pytest.raises(ValueError, match="non-empty str"):
        Message("")
    with pytest.raises(ValueError, match="'segments' is reserved"):
        Message("m", {"segments": 1})
    with pytest.raises(ValueError, match="'type' is reserved"):
        Message("m", {"type": "x"})
    with pytest.raises(TypeError, match="field names must be str"):
        Message("m", {1: 2})  # type: ignore[dict-item]
    for bad in (
        np.zeros(2, dtype=complex),
        np.array(["a"]),
        np.array([object()]),
        np.zeros(2, "f2"),
    ):
        with pytest.raises(TypeError, match=r"arrays\[0\] has dtype .* cannot be sent"):
            Message("m", {}, [bad])
    with pytest.raises(TypeError, match=r"arrays\[1\] has type list"):
        Message("m", {}, [b"", [1, 2]])  # type: ignore[list-item]


def test_encoder_rejects_unserialisable_fields_and_oversized_headers() -> None:
    with pytest.raises(TypeError, match="'m': fields must be JSON-serialisable"):
        Encoder().encode(Message("m", {"x": object()}))
    with pytest.raises(ValueError, match="over max_header_size"):
        Encoder(SMALL).encode(Message("m", {"x": "y" * 5000}))
    # Checked eagerly for chunked messages too, before the first frame is produced.
    with pytest.raises(ValueError, match="over max_header_size"):
        Encoder(SMALL).iter_frames(Message("m", {"x": "y" * 5000}, [np.zeros(10_000)]))


def test_wire_config_validation() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        WireConfig(chunk_size=2 * MiB, max_decompressed_size=1 * MiB)
    with pytest.raises(ValueError, match="max_frame_size"):
        WireConfig(chunk_size=1 * MiB, max_header_size=64 * KiB, max_frame_size=1 * MiB)
    with pytest.raises(ValueError, match="positive int"):
        WireConfig(max_header_size=0)
    with pytest.raises(ValueError, match="compression_level"):
        WireConfig(compression_level=10)


# ----------------------------------------------------------------------------- malformed prefix


def test_bad_magic_fails_on_the_first_wrong_byte() -> None:
    dec = Decoder()
    dec.receive_data(b"G")
    with pytest.raises(BadMagic, match=r"frame 0 \(stream byte 0\): bad magic b'G'"):
        dec.next_event()


def test_bad_magic_after_valid_frames_names_frame_and_offset() -> None:
    good = Encoder().encode(Message("ok"))[0]
    dec = Decoder()
    dec.receive_data(good + good + b"HTTP/1.1 200 OK\r\n\r\n" + bytes(10))
    assert isinstance(dec.next_event(), Message)
    assert isinstance(dec.next_event(), Message)
    with pytest.raises(BadMagic) as info:
        dec.next_event()
    assert info.value.frame == 2
    assert info.value.offset == 2 * len(good)
    assert f"frame 2 (stream byte {2 * len(good)})" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"magic": b"AIOX"}, BadMagic, "bad magic"),
        ({"version": 2}, UnsupportedVersion, "wire version 2 at prefix byte 4"),
        ({"version": 0}, UnsupportedVersion, "wire version 0"),
        ({"flags": 0x02}, MalformedFrame, "reserved flag bits 0x02"),
        ({"flags": 0x81}, MalformedFrame, "reserved flag bits 0x80"),
        ({"reserved": 1}, MalformedFrame, "reserved field at prefix bytes 6-7"),
        ({"header_len": 0}, MalformedHeader, "header_length at prefix bytes 8-11 is 0"),
        ({"header_len": 2**32 - 1}, FrameTooLarge, "header_length 4294967295 .* max_header_size"),
        ({"body_len": 2**32 - 1, "raw_len": 2**32 - 1}, FrameTooLarge, "exceeds max_frame_size"),
        ({"raw_len": 5}, MalformedFrame, "raw_body_length 5 .* != body_length 0"),
        ({"flags": 1, "body_len": 10, "raw_len": 2**64 - 1}, DecompressionBomb, "max_decompressed"),
        ({"flags": 1, "body_len": 0, "raw_len": 0}, MalformedFrame, "body_length is 0"),
    ],
)
def test_malformed_prefix_rejected_from_the_prefix_alone(
    kwargs: dict[str, Any], error: type[ProtocolError], match: str
) -> None:
    prefix = raw_frame({"type": "x"}, **kwargs)[:PREFIX_SIZE]
    if error is not BadMagic:  # bad magic is reported from the first wrong byte
        dec = Decoder()
        dec.receive_data(prefix[:-1])
        assert dec.next_event() is NEED_DATA
    dec2 = Decoder()
    dec2.receive_data(prefix)  # exactly 24 bytes: nothing of header or body yet
    with pytest.raises(error, match=match) as info:
        dec2.next_event()
    assert info.value.frame == 0


def test_oversized_lengths_do_not_allocate() -> None:
    prefix = raw_frame({"type": "x"}, body_len=2**32 - 1, raw_len=2**32 - 1)[:PREFIX_SIZE]
    bomb = raw_frame({"type": "x"}, flags=1, body_len=100, raw_len=2**63)[:PREFIX_SIZE]
    for data, error in ((prefix, FrameTooLarge), (bomb, DecompressionBomb)):
        dec = Decoder()
        tracemalloc.start()
        try:
            dec.receive_data(data)
            with pytest.raises(error):
                dec.next_event()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 64 * KiB


def test_decoder_stays_broken_after_an_error() -> None:
    dec = Decoder()
    dec.receive_data(b"XXXX")
    with pytest.raises(BadMagic):
        dec.next_event()
    with pytest.raises(ProtocolError, match=r"unusable after an earlier error: .*bad magic"):
        dec.next_event()
    with pytest.raises(ProtocolError, match="unusable"):
        dec.receive_data(Encoder().encode(Message("ok"))[0])


def test_receive_after_eof_is_a_usage_error() -> None:
    dec = Decoder()
    dec.receive_data(b"")
    assert dec.next_event() is CLOSED
    with pytest.raises(RuntimeError, match="after EOF"):
        dec.receive_data(b"x")


# ----------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, got array"),
        (b'"type"', "must be a JSON object, got string"),
        (b"{}", "non-empty string 'type'"),
        (b'{"type": 5}', "non-empty string 'type'"),
        (b'{"type": ""}', "non-empty string 'type'"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_malformed_header(header: bytes, match: str) -> None:
    with pytest.raises(MalformedHeader, match=match):
        decode_all(raw_frame(header))


# ----------------------------------------------------------------------------- segments


def seg(dtype: Any, shape: Any, nbytes: Any) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "nbytes": nbytes}


@pytest.mark.parametrize(
    ("segments", "body", "match"),
    [
        ([seg("<c16", [1], 16)], bytes(16), r"segments\[0\]: dtype '<c16' is not allowed"),
        ([seg("|O", [1], 8)], bytes(8), "dtype '|O' is not allowed"),
        ([seg("<U1", [1], 4)], bytes(4), "dtype '<U1' is not allowed"),
        ([seg("|V8", [1], 8)], bytes(8), "dtype '|V8' is not allowed"),
        ([seg(">f8", [1], 8)], bytes(8), "dtype '>f8' is not allowed"),
        ([seg("f8", [1], 8)], bytes(8), "dtype 'f8' is not allowed"),
        ([seg(5, [1], 8)], bytes(8), "dtype 5 is not allowed"),
        ([seg("<f8", [2], 8)], bytes(8), "nbytes 8 does not match shape \\[2\\]"),
        ([seg("<f8", [-1], 8)], bytes(8), "non-negative ints"),
        ([seg("<f8", [True], 8)], bytes(8), "non-negative ints"),
        ([seg("<f8", [1.0], 8)], bytes(8), "non-negative ints"),
        ([seg("<f8", 1, 8)], bytes(8), "shape must be a list"),
        ([seg("<f8", [1] * 33, 8)], bytes(8), "at most 32"),
        ([seg("<f8", [0, 2**62, 2**62], 0)], b"", "too large"),
        ([seg("<f8", [1], -8)], bytes(8), "nbytes must be a non-negative int"),
        ([seg("<f8", [1], 8)], bytes(16), "describe 8 bytes but the body has 16"),
        ([seg("<f8", [2], 16)], bytes(8), "describe 16 bytes but the body has 8"),
        ([{"dtype": "<f8", "shape": [1]}], bytes(8), "missing \\['nbytes'\\]"),
        ([{**seg("<f8", [1], 8), "x": 1}], bytes(8), "unexpected \\['x'\\]"),
        ([[1]], bytes(8), r"segments\[0\]: must be an object"),
        ({"a": 1}, bytes(8), "'segments' must be a list"),
        ([], bytes(8), "describe 0 bytes but the body has 8"),
        ([seg("|b1", [3], 3)], b"\x00\x01\x02", "bool data contains bytes other than 0 and 1"),
    ],
)
def test_bad_segments(segments: Any, body: bytes, match: str) -> None:
    with pytest.raises(BadSegment, match=match):
        decode_all(raw_frame({"type": "m", "segments": segments}, body))


def test_handwritten_valid_frame_decodes() -> None:
    body = np.arange(4, dtype="<i4").tobytes() + b"\x01\x00"
    header = {"type": "m", "id": 3, "segments": [seg("<i4", [2, 2], 16), seg("|b1", [2], 2)]}
    events = decode_all(raw_frame(header, body) + raw_frame(header, gz(body), flags=1, raw_len=18))
    for ev in events[:2]:
        assert ev.fields == {"id": 3}
        np.testing.assert_array_equal(ev.arrays[0], [[0, 1], [2, 3]])
        np.testing.assert_array_equal(ev.arrays[1], [True, False])
    assert events[2] is CLOSED


# ----------------------------------------------------------------------------- compression errors


def test_gzip_bomb_with_honest_size_is_refused_before_the_body() -> None:
    bomb = zeros_gzip_bomb(100 * MiB)
    assert len(bomb) < 150 * KiB
    frame = raw_frame({"type": "m", "segments": [seg("|u1", [100 * MiB], 100 * MiB)]}, bomb,
                      flags=1, raw_len=100 * MiB)  # fmt: skip
    dec = Decoder()
    dec.receive_data(frame[:PREFIX_SIZE])
    with pytest.raises(DecompressionBomb, match="raw_body_length 104857600"):
        dec.next_event()


@pytest.mark.parametrize("declared", [1 * MiB, 16 * MiB])
def test_gzip_bomb_lying_about_its_size_fails_fast_with_bounded_memory(declared: int) -> None:
    bomb = zeros_gzip_bomb(100 * MiB)
    frame = raw_frame({"type": "m", "segments": [seg("|u1", [declared], declared)]}, bomb,
                      flags=1, raw_len=declared)  # fmt: skip
    dec = Decoder()  # default max_decompressed_size is 16 MiB
    dec.receive_data(frame)
    tracemalloc.start()
    try:
        with pytest.raises(
            DecompressionBomb, match=f"beyond its declared raw_body_length {declared}"
        ):
            dec.next_event()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < declared + 4 * MiB  # far below the 100 MiB the bomb expands to


@pytest.mark.parametrize(
    ("body", "raw_len", "match"),
    [
        (b"not gzip at all", 10, "not a valid gzip stream"),
        (gz(b"hello world")[:-6], 11, "truncated"),
        (gz(b"hello world") + b"junk", 11, "trailing data"),
        (gz(b"hello world") + gz(b"x"), 11, "trailing data"),
        (gz(b"hello world"), 20, "inflates to 11 bytes but raw_body_length declares 20"),
    ],
)
def test_bad_compressed_bodies(body: bytes, raw_len: int, match: str) -> None:
    header = {"type": "m", "segments": [seg("|u1", [raw_len], raw_len)]}
    with pytest.raises(BadCompression, match=match):
        decode_all(raw_frame(header, body, flags=1, raw_len=raw_len))


def test_overlong_inflation_is_a_bomb() -> None:
    header = {"type": "m", "segments": [seg("|u1", [5], 5)]}
    with pytest.raises(DecompressionBomb):
        decode_all(raw_frame(header, gz(b"hello world"), flags=1, raw_len=5))


# ----------------------------------------------------------------------------- truncation


def test_truncated_frames_at_eof() -> None:
    frame = Encoder().encode(Message("m", {"a": 1}, [np.arange(10)]))[0]
    for cut in (1, PREFIX_SIZE - 1, PREFIX_SIZE, PREFIX_SIZE + 3, len(frame) - 1):
        dec = Decoder()
        dec.receive_data(frame + frame[:cut])
        assert isinstance(dec.next_event(), Message)
        assert dec.next_event() is NEED_DATA
        dec.receive_data(b"")
        with pytest.raises(TruncatedFrame, match=f"stream ended after {cut} of the") as info:
            dec.next_event()
        assert info.value.frame == 1
        assert info.value.offset == len(frame)


def test_eof_inside_a_chunked_message() -> None:
    frames = Encoder(SMALL).encode(Message("big", {}, [np.ones(5000)]))
    with pytest.raises(TruncatedFrame, match=r"chunked message stream\(s\) 1 .*16384 of 40000"):
        decode_all(frames[0], SMALL)


# ----------------------------------------------------------------------------- chunk reassembly


def chunk(
    sid: Any, seq: Any, last: Any, body: bytes = b"", message: Any = None, **extra: Any
) -> bytes:
    header: dict[str, Any] = {"type": "chunk", "stream_id": sid, "seq": seq, "last": last, **extra}
    if message is not None:
        header["message"] = message
    return raw_frame(header, body)


def inner(n: int, type_: str = "big") -> dict[str, Any]:
    return {"type": type_, "tag": "t", "segments": [seg("|u1", [n], n)]}


def test_handwritten_chunks_reassemble_and_stream_ids_can_be_reused() -> None:
    data = chunk(7, 0, False, b"abc", inner(6)) + chunk(7, 1, True, b"def")
    events = decode_all(data + data, SMALL)
    for ev in events[:2]:
        assert ev.type == "big" and ev.fields == {"tag": "t"}
        assert ev.arrays[0].tobytes() == b"abcdef"
    assert events[2] is CLOSED


@pytest.mark.parametrize(
    ("frames", "error", "match"),
    [
        (
            [chunk(7, 0, False, b"ab", inner(6)), chunk(7, 2, True, b"cdef")],
            ChunkError,
            r"stream 7: expected chunk seq 1, got seq 2 \(gap",
        ),
        (
            [
                chunk(7, 0, False, b"ab", inner(6)),
                chunk(7, 1, False, b"cd"),
                chunk(7, 1, True, b"ef"),
            ],
            ChunkError,
            r"stream 7: expected chunk seq 2, got seq 1 \(duplicate",
        ),
        (
            [chunk(7, 0, False, b"ab", inner(6)), chunk(7, 0, False, b"ab", inner(6))],
            ChunkError,
            "stream 7: duplicate first chunk",
        ),
        (
            [chunk(9, 3, True, b"x")],
            ChunkError,
            "stream 9 chunk seq 3 arrived but the stream is not open",
        ),
        (
            [chunk(7, 0, False, b"abcd", inner(6)), chunk(7, 1, True, b"efg")],
            ChunkError,
            "stream 7 chunk seq 1: 7 bytes received, more than the 6",
        ),
        (
            [chunk(7, 0, False, b"ab", inner(6)), chunk(7, 1, True, b"cd")],
            ChunkError,
            r"stream 7: last chunk \(seq 1\) ends the message after 4 bytes .* declare 6",
        ),
        (
            [chunk(s, 0, False, b"a", inner(2)) for s in range(4)],
            ChunkError,
            r"stream 3: too many chunked messages in progress \(max_streams 3\)",
        ),
        ([chunk(1, 0, False, b"", inner(2 * MiB))], FrameTooLarge, "exceeds max_message_size"),
        ([chunk(1, 0, False, b"a")], MalformedHeader, "first chunk needs a 'message' object"),
        (
            [chunk(1, 0, False, b"a", inner(2)), chunk(1, 1, True, b"b", inner(2))],
            MalformedHeader,
            "only the first chunk",
        ),
        ([chunk(1, 0, False, b"a", inner(2, "chunk"))], MalformedHeader, "cannot itself be"),
        ([chunk(1, 0, False, b"a", {"segments": []})], MalformedHeader, "stream 1 message header"),
        (
            [chunk(1, 0, False, b"a", {"type": "x", "segments": [seg("<c8", [1], 8)]})],
            BadSegment,
            r"stream 1 message header segments\[0\]",
        ),
        ([chunk("1", 0, False, b"a", inner(2))], MalformedHeader, "non-negative int 'stream_id'"),
        ([chunk(1, -1, False, b"a", inner(2))], MalformedHeader, "non-negative int 'seq'"),
        ([chunk(1, True, False, b"a", inner(2))], MalformedHeader, "non-negative int 'seq'"),
        ([chunk(1, 0, 1, b"a", inner(2))], MalformedHeader, "boolean 'last'"),
        (
            [chunk(1, 0, False, b"a", inner(2), extra=1)],
            MalformedHeader,
            r"unexpected keys \['extra'\]",
        ),
    ],
)
def test_chunk_reassembly_errors(
    frames: list[bytes], error: type[ProtocolError], match: str
) -> None:
    with pytest.raises(error, match=match) as info:
        decode_all(b"".join(frames), SMALL)
    assert info.value.frame == len(frames) - 1


def test_chunking_can_be_forbidden() -> None:
    with pytest.raises(ChunkError, match="max_streams 0"):
        decode_all(chunk(1, 0, False, b"a", inner(2)), WireConfig(max_streams=0))
