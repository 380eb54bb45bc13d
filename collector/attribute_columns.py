"""All span attributes of one request, decoded per column from their raw ``KeyValue`` bytes.

The decoder's hot path (``columnar_decode``) finds every attribute's ``KeyValue`` bytes in the request's
span buffer. Decoding those one object at a time in Python cost ~1 µs per attribute; here the protobuf wire
format of all of a request's attributes is read with NumPy at once (``wire``): the key, the ``AnyValue``'s
type from its tag byte, string payload positions, varint integers, little-endian doubles. Arrays, kvlists
and bytes (rare, and often the same few values) are decoded with the official messages.

The attributes column (one JSON object per span) is then assembled in a single gather: every piece of
every object — braces, commas, ``"key":``, the bytes of a string value straight from the request, the text
of a number — is a byte range, either in the request or in a small side buffer, laid end to end.

Only the canonical encoding is read here: ``key`` then ``value``, one ``AnyValue`` field, lengths that add
up, no repeated key within a span, valid UTF-8. Anything else raises ``Irregular`` and the caller decodes the
request with the reference decoder (``otlp_decode.decode_message``), which also produces the right error for
input that is actually malformed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from trajscope.collector.anyvalue import any_value
from trajscope.collector.wire import Irregular, cut_at, fixed, gather, lay_out, varints

# Value types, from the AnyValue field present.
NULL, STR, BOOL, INT, DOUBLE, OTHER = 0, 1, 2, 3, 4, 5
_TAG_TYPE = np.full(256, 255, dtype=np.uint8)
_TAG_TYPE[[0x0A, 0x10, 0x18, 0x21, 0x2A, 0x32, 0x3A]] = [STR, BOOL, INT, DOUBLE, OTHER, OTHER, OTHER]


@dataclass(frozen=True)
class AttributeColumns:
    """One entry per attribute of the request, in span order (``span_starts`` delimits each span's)."""

    span_starts: np.ndarray  # int64, one per span plus the end: attributes of span i are [s[i], s[i+1])
    span_of: np.ndarray  # per entry, its span
    key_index: np.ndarray  # int32 into ``keys``
    keys: list[str]  # the distinct keys of this request
    vtype: np.ndarray  # uint8: NULL, STR, BOOL, INT, DOUBLE, OTHER
    strings: pa.StringArray  # STR values of the keys asked for (``decode``'s ``wanted``); null elsewhere
    string_length: np.ndarray  # int64 byte length of every STR value (0 elsewhere)
    ints: np.ndarray  # int64, valid for INT
    doubles: np.ndarray  # float64, valid for DOUBLE
    bools: np.ndarray  # bool, valid for BOOL
    others: dict[int, Any]  # entry → typed-JSON Python value, for OTHER entries
    objects: pa.StringArray  # per span: its attributes as one typed-JSON object text (see ``anyvalue``)

    def __len__(self) -> int:
        return len(self.vtype)

    def value(self, i: int) -> Any:
        """Entry ``i`` as the reference decoder's typed-JSON Python value (strings only for wanted keys)."""
        kind = self.vtype[i]
        if kind == STR:
            return self.strings[i].as_py()
        if kind == INT:
            return int(self.ints[i])
        if kind == DOUBLE:
            d = float(self.doubles[i])
            return d if math.isfinite(d) else {"$double": repr(d)}
        if kind == BOOL:
            return bool(self.bools[i])
        if kind == OTHER:
            return self.others[i]
        return None

    def values_of(self, spans: np.ndarray, keys: frozenset[str]) -> list[dict[str, Any]]:
        """Per span of ``spans`` (ascending), its attributes whose key is in ``keys``, in the order sent (a
        repeated key keeps its last value); string values only for wanted keys. One pass over the request
        finds them all: building a dict per span from all its attributes cost ~10 µs a span."""
        out: list[dict[str, Any]] = [{} for _ in range(len(spans))]
        ids = [k for k, name in enumerate(self.keys) if name in keys]
        if not ids or not len(spans):
            return out
        chosen = np.zeros(len(self.span_starts) - 1, np.bool_)
        chosen[spans] = True
        at = (np.isin(self.key_index, ids) & chosen[self.span_of]).nonzero()[0]
        kinds = self.vtype[at]
        strings = iter(self.strings.take(pa.array(at[kinds == STR])).to_pylist())
        names = self.keys
        for i, slot, k, kind in zip(at.tolist(), np.searchsorted(spans, self.span_of[at]).tolist(),
                                    self.key_index[at].tolist(), kinds.tolist(), strict=True):
            out[slot][names[k]] = next(strings) if kind == STR else self.value(i)
        return out


def strings_from(offsets: np.ndarray, data: np.ndarray, valid: np.ndarray | None = None) -> pa.StringArray:
    """A string array over gathered bytes; invalid UTF-8 (which upb would have refused) is ``Irregular``."""
    mask = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    array = pa.StringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data), mask)
    try:
        array.validate(full=True)
    except pa.ArrowInvalid as exc:
        raise Irregular(f"invalid UTF-8: {exc}") from exc
    return array


# Repeated nested values (finish reasons, tags) decode once: raw AnyValue bytes → (value, JSON text).
@functools.lru_cache(maxsize=4096)
def _other(raw: bytes) -> tuple[Any, bytes]:
    value = any_value(AnyValue.FromString(raw))
    return value, orjson.dumps(value)


def _needs_escaping(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether each byte range [starts, ends) of ``buf`` holds a byte JSON escapes. One OR per range over a
    mask of those bytes: listing them first (a tenth of a request's bytes are control bytes of the
    protobuf framing) and bisecting cost three times as much."""
    if starts.size == 0:
        return np.zeros(0, np.bool_)
    special = np.less(buf, 0x20)
    special |= buf == 0x22
    special |= buf == 0x5C
    if int(ends.max()) >= special.size:  # reduceat's bounds must index the mask
        special = np.append(special, False)
    bounds = np.empty(2 * starts.size, np.int64)
    bounds[0::2], bounds[1::2] = starts, ends
    # reduceat ORs over [bounds[i], bounds[i+1]); an empty range yields its first byte instead, hence the mask.
    return np.logical_or.reduceat(special, bounds)[0::2] & (ends > starts)


def _number_texts(values: np.ndarray) -> list[bytes]:
    """JSON text of each number, as orjson writes it inside an object (one call for the whole column)."""
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        return [orjson.dumps(v if math.isfinite(v) else {"$double": repr(v)}) for v in values.tolist()]
    return orjson.dumps(values.tolist())[1:-1].split(b",") if values.size else []


def decode(blob: bytes, starts: np.ndarray, ends: np.ndarray, span_starts: np.ndarray,
           wanted: Callable[[list[str]], np.ndarray]) -> AttributeColumns:
    """Decode the attributes whose ``KeyValue`` messages are ``blob[starts[i]:ends[i]]`` (``blob`` padded
    with ``wire.PAD`` zero bytes); those of span ``j`` are entries ``span_starts[j]`` to ``span_starts[j + 1]``.
    ``wanted(keys)`` says, per distinct key, whether its string values are needed as ``strings``."""
    buf = np.frombuffer(blob, np.uint8)
    n = len(starts)
    spans = len(span_starts) - 1
    # KeyValue: 0x0A <len> key [0x12 <len> AnyValue]
    if n and ((ends - starts < 2).any() or (buf[starts] != 0x0A).any()):
        raise Irregular("attribute without a leading key field")
    key_len, used = varints(buf, starts + 1, 5)
    key_start = starts + 1 + used
    key_end = key_start + key_len.astype(np.int64)
    if (key_end > ends).any():
        raise Irregular("key runs past its attribute")
    has_value = key_end < ends
    value_start, value_end = ends.copy(), ends.copy()
    if has_value.any():
        at = key_end[has_value]
        if (buf[at] != 0x12).any():
            raise Irregular("unexpected field after the key")
        vlen, used = varints(buf, at + 1, 5)
        vs = at + 1 + used
        if (vs + vlen.astype(np.int64) != ends[has_value]).any():
            raise Irregular("value length does not match its attribute")
        value_start[has_value] = vs

    keys = strings_from(*gather(buf, key_start, key_end)).dictionary_encode()
    key_index = np.asarray(keys.indices, dtype=np.int32)
    distinct: list[str] = keys.dictionary.to_pylist()
    span_of = np.repeat(np.arange(spans), np.diff(span_starts))
    if n > 1:
        pairs = np.sort(span_of.astype(np.int64) * max(len(distinct), 1) + key_index)
        if (pairs[1:] == pairs[:-1]).any():
            raise Irregular("a key repeated within one span")

    # AnyValue: exactly one field spanning the whole value.
    nonempty = value_end > value_start
    vtype = np.zeros(n, np.uint8)
    vtype[nonempty] = _TAG_TYPE[buf[value_start[nonempty]]]
    if (vtype == 255).any():
        raise Irregular("unknown AnyValue field")

    is_str = vtype == STR
    str_at = is_str.nonzero()[0]
    s_len, used = varints(buf, value_start[str_at] + 1, 5)
    pay_start = value_start[str_at] + 1 + used
    pay_end = value_end[str_at]
    if (pay_start + s_len.astype(np.int64) != pay_end).any():
        raise Irregular("string value length does not match")
    string_length = np.zeros(n, np.int64)
    string_length[str_at] = pay_end - pay_start

    hot = wanted(distinct)[key_index][str_at] if distinct else np.zeros(0, np.bool_)
    hot_start = np.zeros(n, np.int64)
    hot_end = np.zeros(n, np.int64)
    hot_start[str_at[hot]], hot_end[str_at[hot]] = pay_start[hot], pay_end[hot]
    hot_valid = np.zeros(n, np.bool_)
    hot_valid[str_at[hot]] = True
    strings = strings_from(*gather(buf, hot_start, hot_end), hot_valid)

    ints = np.zeros(n, np.int64)
    int_at = (vtype == INT).nonzero()[0]
    if int_at.size:
        values, used = varints(buf, value_start[int_at] + 1, 10)
        if (value_start[int_at] + 1 + used != value_end[int_at]).any():
            raise Irregular("int value length does not match")
        ints[int_at] = values.view(np.int64)

    doubles = np.zeros(n, np.float64)
    double_at = (vtype == DOUBLE).nonzero()[0]
    if double_at.size:
        d_at = value_start[double_at]
        if (value_end[double_at] - d_at != 9).any():
            raise Irregular("double value length does not match")
        doubles[double_at] = fixed(buf, d_at + 1, 8).view("<f8")

    bools = np.zeros(n, np.bool_)
    bool_at = (vtype == BOOL).nonzero()[0]
    if bool_at.size:
        b_at = value_start[bool_at]
        if (value_end[bool_at] - b_at != 2).any() or (buf[b_at + 1] > 1).any():
            raise Irregular("bool value not one byte")
        bools[bool_at] = buf[b_at + 1] == 1

    others: dict[int, Any] = {}
    other_text: dict[int, bytes] = {}
    for i in (vtype == OTHER).nonzero()[0].tolist():
        others[i], other_text[i] = _other(blob[value_start[i]:value_end[i]])

    objects = _objects(blob, buf, span_starts, span_of, key_index, distinct, vtype, str_at, pay_start, pay_end,
                       int_at, ints, double_at, doubles, bool_at, bools, other_text)
    return AttributeColumns(span_starts, span_of, key_index, distinct, vtype, strings, string_length, ints, doubles,
                            bools, others, objects)


# Texts every request's objects use, first among the side texts (so their pieces have fixed numbers).
_CONSTANT_TEXTS = (b"", b"{", b",", b"}", b"{}", b'"', b"null", b"true", b"false")
_NOTHING, _OPEN, _COMMA, _CLOSE, _EMPTY_OBJECT, _QUOTE, _NULL, _TRUE, _FALSE = range(len(_CONSTANT_TEXTS))
_SLOTS = 5  # per attribute: separator, "key":, then a value as quote + request bytes + quote or one text


def _objects(blob: bytes, buf: np.ndarray, span_starts: np.ndarray, span_of: np.ndarray, key_index: np.ndarray,
             keys: list[str], vtype: np.ndarray, str_at: np.ndarray, pay_start: np.ndarray, pay_end: np.ndarray,
             int_at: np.ndarray, ints: np.ndarray, double_at: np.ndarray, doubles: np.ndarray,
             bool_at: np.ndarray, bools: np.ndarray, other_text: dict[int, bytes]) -> pa.StringArray:
    """Each span's attributes as one JSON object, in the order they were sent, in one Arrow ``take``.

    The request's bytes and the side texts (constants, ``"key":`` per distinct key, value texts) are cut
    into pieces so that every piece an object needs is one element of a binary array: the plain string
    values are every other piece of the request, the side texts one piece each. Each object is then five
    pieces per attribute plus its closing brace, and ``take`` lays them end to end (a NumPy gather through
    a per-byte index cost ~4 ms per 2,048 spans; the take ~1)."""
    n, spans = len(vtype), len(span_starts) - 1
    # Strings with a quote, a backslash or a control character need escaping: orjson does those few.
    escaped = _needs_escaping(buf, pay_start, pay_end)

    texts: list[bytes] = list(_CONSTANT_TEXTS)
    key_base = len(texts)
    texts.extend(orjson.dumps(k) + b":" for k in keys)
    # Per attribute that is not a plain string: the side text of its value ("null" unless set below).
    text_of = np.full(n, _NULL, np.int64)
    pieces: list[tuple[np.ndarray, list[bytes]]] = []
    esc_at = str_at[escaped]
    if esc_at.size:
        try:
            pieces.append((esc_at, [orjson.dumps(blob[a:b].decode()) for a, b in
                                    zip(pay_start[escaped].tolist(), pay_end[escaped].tolist(), strict=True)]))
        except UnicodeDecodeError as exc:
            raise Irregular(f"invalid UTF-8: {exc}") from exc
    if int_at.size:
        pieces.append((int_at, _number_texts(ints[int_at])))
    if double_at.size:
        pieces.append((double_at, _number_texts(doubles[double_at])))
    if other_text:
        pieces.append((np.fromiter(other_text, np.int64, len(other_text)), list(other_text.values())))
    for where, items in pieces:
        text_of[where] = len(texts) + np.arange(len(items))
        texts.extend(items)
    if bool_at.size:
        text_of[bool_at] = np.where(bools[bool_at], _TRUE, _FALSE)

    # The request cut at the plain strings' bounds (plain string k is piece 2k + 1), then one piece per side text.
    cuts = cut_at(len(buf), pay_start[~escaped], pay_end[~escaped])
    if cuts is None:
        raise Irregular("string values out of order")
    side_base = len(cuts) - 1
    text_ends = len(buf) + np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)))
    source = np.concatenate((buf, np.frombuffer(b"".join(texts), np.uint8)))

    # Slot layout: attribute i of span j → slots [5i + j, 5i + j + 5); span j closes at slot 5·end(j) + j.
    total_slots = _SLOTS * n + spans
    slot = np.full(total_slots, side_base + _NOTHING, np.int32)
    first = _SLOTS * np.arange(n) + span_of
    is_first = np.zeros(n, np.bool_)
    is_first[span_starts[:-1][np.diff(span_starts) > 0]] = True
    slot[first] = side_base + np.where(is_first, _OPEN, _COMMA)
    slot[first + 1] = side_base + key_base + key_index
    plain = np.zeros(n, np.bool_)
    plain[str_at[~escaped]] = True
    p_first = first[plain]
    slot[p_first + 2] = slot[p_first + 4] = side_base + _QUOTE
    slot[p_first + 3] = 2 * np.arange(p_first.size) + 1
    slot[first[~plain] + 2] = side_base + text_of[~plain]
    closes = _SLOTS * span_starts[1:] + np.arange(spans)
    slot[closes] = side_base + np.where(np.diff(span_starts) == 0, _EMPTY_OBJECT, _CLOSE)

    slot_offsets, data = lay_out(source, np.concatenate((cuts, text_ends)), slot)
    span_first = _SLOTS * span_starts[:-1] + np.arange(spans)
    offsets = np.append(slot_offsets[span_first], slot_offsets[-1]).astype(np.int32)
    return strings_from(offsets, data)
