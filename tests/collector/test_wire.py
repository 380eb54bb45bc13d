"""``wire.scan`` reads every field of many protobuf messages at once: checked against the fields the
messages were built from (Hypothesis), and against input it must refuse."""

import numpy as np
import pytest
from hypothesis import given, settings
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
