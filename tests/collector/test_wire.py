"""``wire.scan`` reads every field of many protobuf messages at once: checked against the fields the
messages were built from (Hypothesis), and against input it must refuse."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trajscope.collector import wire


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, wire_type: int, value: int | bytes) -> bytes:
    tag = _varint(number << 3 | wire_type)
    if wire_type == wire.VARINT:
        return tag + _varint(value)
    if wire_type == wire.I64:
        return tag + value.to_bytes(8, "little")
    if wire_type == wire.I32:
        return tag + value.to_bytes(4, "little")
    return tag + _varint(len(value)) + value


_FIELDS = st.one_of(
    st.tuples(st.integers(1, 2**20), st.just(wire.VARINT), st.integers(0, 2**64 - 1)),
    st.tuples(st.integers(1, 40), st.just(wire.I64), st.integers(0, 2**64 - 1)),
    st.tuples(st.integers(1, 40), st.just(wire.I32), st.integers(0, 2**32 - 1)),
    st.tuples(st.integers(1, 40), st.just(wire.LEN), st.binary(max_size=300)),
)
# Most messages end in a run of LEN fields (attributes), which the scanner reads on a shorter path.
_MESSAGES = st.lists(st.tuples(st.lists(_FIELDS, max_size=12),
                               st.lists(st.tuples(st.just(9), st.just(wire.LEN), st.binary(max_size=40)), max_size=8)),
                     min_size=1, max_size=12)


def _scan(messages: list[bytes]) -> wire.Fields:
    blob = b"".join(messages) + bytes(wire.PAD)
    ends = np.cumsum([len(m) for m in messages])
    return wire.scan(np.frombuffer(blob, np.uint8), ends - [len(m) for m in messages], ends)


@settings(max_examples=150, deadline=None)
@given(_MESSAGES)
def test_scan_reads_back_every_field(shapes):
    built = [head + tail for head, tail in shapes]
    messages = [b"".join(_field(*f) for f in fields) for fields in built]
    got = _scan(messages)
    blob = b"".join(messages)
    expected = [(m, number, wt, value if wt != wire.LEN else len(value))
                for m, fields in enumerate(built) for number, wt, value in fields]
    rows = list(zip(got.message.tolist(), got.number.tolist(), got.wire.tolist(), got.value.tolist(), strict=True))
    assert rows == expected
    for i in np.flatnonzero(got.wire == wire.LEN).tolist():
        m, k = got.message[i], sum(got.message[:i] == got.message[i])
        start = int(got.start[i])
        assert blob[start:start + int(got.value[i])] == built[m][k][2]


@pytest.mark.parametrize("message", [
    _field(1, wire.LEN, b"abcdef")[:-2],  # a LEN field running past its message
    _field(2, wire.I64, 7)[:-1],  # a fixed field cut short
    _varint(3 << 3 | 3) + b"\x00",  # a group
    _varint(4 << 3 | 7),  # no such wire type
])
def test_scan_refuses_malformed_messages(message):
    with pytest.raises(wire.Irregular):
        _scan([_field(1, wire.VARINT, 5), message, _field(1, wire.LEN, b"ok")])


def _gathered(data: bytes, ranges: list[tuple[int, int]]) -> tuple[list[int], bytes]:
    buf = np.frombuffer(data + bytes(wire.PAD), np.uint8)
    starts = np.array([a for a, _ in ranges], np.int64)
    ends = np.array([b for _, b in ranges], np.int64)
    offsets, out = wire.gather(buf, starts, ends)
    assert offsets.dtype == np.int32
    return offsets.tolist(), out.tobytes()


def _expected(data: bytes, ranges: list[tuple[int, int]]) -> tuple[list[int], bytes]:
    pieces = [data[a:b] for a, b in ranges]
    return [sum(len(p) for p in pieces[:i]) for i in range(len(pieces) + 1)], b"".join(pieces)


@pytest.fixture(params=["arrow take", "per-byte index"])
def gather_path(request, monkeypatch):
    # Small inputs go through the per-byte index; 0 makes every in-order input take the Arrow path.
    if request.param == "arrow take":
        monkeypatch.setattr(wire, "_TAKE_FROM_BYTES", 0)
    return request.param


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=60), st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)), max_size=12),
       st.booleans())
def test_gather_lays_ranges_end_to_end(gather_path, data, spans, in_order):
    # In order (the Arrow path, when large enough), or as given: out of order and overlapping (per byte).
    ranges = [(min(a, len(data)), min(a + n, len(data))) for a, n in spans]
    if in_order:
        ranges.sort()
        kept, end = [], 0
        for a, b in ranges:
            kept.append((max(a, end), max(b, end)) if a < end else (a, b))
            end = max(end, kept[-1][1])
        ranges = kept
    assert _gathered(data, ranges) == _expected(data, ranges)


def test_gather_skips_empty_ranges_anywhere_and_reaches_the_end(gather_path):
    data = b"0123456789"
    ranges = [(0, 0), (2, 4), (0, 0), (4, 4), (4, 10), (9, 9)]
    assert _gathered(data, ranges) == _expected(data, ranges)
    assert _gathered(data, [(5, 7), (1, 3)]) == _expected(data, [(5, 7), (1, 3)])
    assert _gathered(data, [(0, 0)]) == ([0, 0], b"")
