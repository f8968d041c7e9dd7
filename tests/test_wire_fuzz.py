"""Property-based tests of the sans-IO decoder and handshake.

Whatever bytes arrive, the decoder either yields messages or raises a
ProtocolError: never another exception, never an endless loop, and never more
memory than its limits allow.  A short run is the default; the long run is
marked ``slow``.
"""

from __future__ import annotations

import itertools
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aioforest.wire import (
    CLOSED,
    MAGIC,
    NEED_DATA,
    ClientHandshake,
    Decoder,
    Encoder,
    Message,
    ProtocolError,
    ServerHandshake,
    WireConfig,
)

KiB = 1024

# Tiny limits: chunking and compression kick in for small examples, and the memory
# bound below is meaningful.
FUZZ = WireConfig(
    chunk_size=256,
    max_header_size=1 * KiB,
    max_frame_size=4 * KiB,
    max_decompressed_size=4 * KiB,
    max_message_size=64 * KiB,
    max_streams=4,
    compression_threshold=64,
)
MEMORY_BOUND = 2 * 1024 * KiB

DTYPES = ["?", "u1", "<u2", "<u4", "<u8", "i1", "<i2", "<i4", "<i8", "<f4", "<f8"]

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=4,
)
field_names = st.text(min_size=1, max_size=8).filter(lambda k: k not in ("type", "segments"))


def make_array(dtype: str, shape: tuple[int, ...], fill: str, seed: int) -> np.ndarray[Any, Any]:
    # Cheaper to generate than hypothesis.extra.numpy element strategies; "zeros" and
    # "ramp" bodies compress, "random" ones (any bit pattern, NaNs included) do not.
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if fill == "zeros":
        return np.zeros(shape, dt)
    if fill == "ramp":
        return (np.arange(n) % 7).astype(dt).reshape(shape)
    raw = np.random.default_rng(seed).integers(0, 256, n * dt.itemsize, dtype=np.uint8)
    if dt == np.bool_:
        raw &= 1  # only 0 and 1 are valid bool bytes
    return raw.view(dt).reshape(shape)


wire_arrays = st.builds(
    make_array,
    st.sampled_from(DTYPES),
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=12),
    st.sampled_from(["zeros", "ramp", "random"]),
    st.integers(0, 2**32 - 1),
)
messages = st.builds(
    Message,
    st.text(min_size=1, max_size=10).filter(lambda t: t != "chunk"),
    st.dictionaries(field_names, json_values, max_size=3),
    st.lists(wire_arrays | st.binary(max_size=300), max_size=3),
)


def feed_and_drain(dec: Decoder, data: bytes, cuts: list[int]) -> list[Message]:
    """Feed ``data`` split at ``cuts``, then EOF; pull every event with a hard bound."""
    out: list[Message] = []
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)] + [b""]
    calls = 0
    for piece in pieces:
        dec.receive_data(piece)
        while True:
            calls += 1
            assert calls <= len(data) + len(pieces) + 2, "decoder made no progress"
            ev = dec.next_event()
            if ev is NEED_DATA or ev is CLOSED:
                break
            assert isinstance(ev, Message)
            out.append(ev)
        if ev is CLOSED:
            assert piece == b""
    return out


def decode_only_protocol_errors(data: bytes, cuts: list[int]) -> list[Message]:
    dec = Decoder(FUZZ)
    tracemalloc.start()
    try:
        try:
            return feed_and_drain(dec, data, cuts)
        except ProtocolError:
            with pytest.raises(ProtocolError):  # and it stays broken
                dec.next_event()
            return []
        finally:
            _, peak = tracemalloc.get_traced_memory()
            assert peak < MEMORY_BOUND, f"decoder used {peak} bytes"
    finally:
        tracemalloc.stop()


def mutate(data: bytearray, draw: Callable[[Any], Any]) -> bytearray:
    kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "field", "dup"]))
    if not data:
        return bytearray(draw(st.binary(max_size=64)))
    pos = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        data[pos] ^= 1 << draw(st.integers(0, 7))
    elif kind == "set":
        data[pos] = draw(st.integers(0, 255))
    elif kind == "insert":
        data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    elif kind == "delete":
        del data[pos : pos + draw(st.integers(1, 16))]
    elif kind == "truncate":
        del data[pos:]
    elif kind == "field":
        # Overwrite a prefix length field (of the first frame) with an extreme value.
        start, width = draw(st.sampled_from([(8, 4), (12, 4), (16, 8)]))
        value = draw(st.sampled_from([0, 1, 2**31, 2**32 - 1, 2 ** (8 * width) - 1]))
        value = value % (2 ** (8 * width))
        if len(data) >= start + width:
            data[start : start + width] = value.to_bytes(width, "big")
    else:
        data[pos:pos] = data[: draw(st.integers(1, len(data)))]
    return data


@st.composite
def mutated_streams(draw: Callable[[Any], Any]) -> bytes:
    enc = Encoder(FUZZ)
    data = bytearray()
    for msg in draw(st.lists(messages, min_size=1, max_size=3)):
        for frame in enc.encode(msg):
            data += frame
    for _ in range(draw(st.integers(1, 4))):
        data = mutate(data, draw)
    return bytes(data)


cut_lists = st.lists(st.integers(0, 10_000), max_size=6)


def check_random_bytes(data: bytes, cuts: list[int]) -> None:
    decode_only_protocol_errors(data, cuts)
    # The same garbage behind a valid magic and version reaches the deeper checks.
    decode_only_protocol_errors(MAGIC + b"\x01" + data, cuts)


def check_roundtrip(msgs: list[Message], cuts: list[int]) -> None:
    enc = Encoder(FUZZ)
    data = b"".join(f for m in msgs for f in enc.encode(m))
    got = feed_and_drain(Decoder(FUZZ), data, cuts)
    assert len(got) == len(msgs)
    for a, b in zip(got, msgs, strict=True):
        assert a.type == b.type
        assert a.fields == b.fields
        assert [x.dtype for x in a.arrays] == [y.dtype for y in b.arrays]
        for x, y in zip(a.arrays, b.arrays, strict=True):
            np.testing.assert_array_equal(x, y)


def check_handshake_garbage(data: bytes, server: bool) -> None:
    hs = ServerHandshake(b"secret") if server else ClientHandshake(b"secret")
    hs.data_to_send()
    try:
        hs.receive_data(data)
        hs.receive_data(b"")
    except ProtocolError:
        return
    raise AssertionError("handshake accepted garbage")  # pragma: no cover


FAST = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LONG = settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FAST
@given(st.binary(max_size=3000), cut_lists)
def test_random_bytes_only_raise_protocol_errors(data: bytes, cuts: list[int]) -> None:
    check_random_bytes(data, cuts)


@FAST
@given(mutated_streams(), cut_lists)
def test_mutated_frames_only_raise_protocol_errors(data: bytes, cuts: list[int]) -> None:
    decode_only_protocol_errors(data, cuts)


@FAST
@given(st.lists(messages, max_size=4), cut_lists)
def test_valid_streams_roundtrip_with_any_split(msgs: list[Message], cuts: list[int]) -> None:
    check_roundtrip(msgs, cuts)


@FAST
@given(st.binary(max_size=2000), st.booleans())
def test_handshake_garbage_only_raises_protocol_errors(data: bytes, server: bool) -> None:
    check_handshake_garbage(data, server)


@pytest.mark.slow
@LONG
@given(st.binary(max_size=20_000), cut_lists)
def test_random_bytes_long(data: bytes, cuts: list[int]) -> None:
    check_random_bytes(data, cuts)


@pytest.mark.slow
@LONG
@given(mutated_streams(), cut_lists)
def test_mutated_frames_long(data: bytes, cuts: list[int]) -> None:
    decode_only_protocol_errors(data, cuts)


@pytest.mark.slow
@LONG
@given(st.lists(messages, max_size=6), cut_lists)
def test_valid_streams_roundtrip_long(msgs: list[Message], cuts: list[int]) -> None:
    check_roundtrip(msgs, cuts)


@pytest.mark.slow
@LONG
@given(st.binary(max_size=5000), st.booleans())
def test_handshake_garbage_long(data: bytes, server: bool) -> None:
    check_handshake_garbage(data, server)
