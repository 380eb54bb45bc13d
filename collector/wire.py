"""The protobuf wire format read with NumPy, for many messages at once.

Reading a field through the upb Python objects costs ~0.3 µs; a span has ~20 of them. Here every message
of a request (all spans, or all their attributes) lies in one byte buffer, and each step of ``scan``
reads the next field of every message still unfinished: a handful of NumPy operations per field
position, whatever the number of messages.

Only well-formed input is read. Anything unexpected — a truncated field, a group, a varint too long —
raises ``Irregular``; callers then use the reference decoder, which reports real errors properly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

PAD = 16  # bytes of zeros after the data, so fixed-width windows never run off the end
VARINT, I64, LEN, I32 = 0, 1, 2, 5


class Irregular(Exception):
    """Input this reader does not handle; decode it with the reference decoder."""


_STEPS = {width: np.arange(width) for width in range(1, 17)}


def windows(buf: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    """``buf[p:p + width]`` for each ``p`` of ``pos``, one row each (``buf`` padded with ``PAD`` bytes).

    Two NumPy calls; ``sliding_window_view`` did the same in ~35 µs of Python per call, and a request's
    decode makes about ten such calls."""
    return buf[pos[:, None] + _STEPS[width]]


def varints(buf: np.ndarray, pos: np.ndarray, width: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The varints starting at each of ``pos`` (at most ``width`` bytes each): (values, bytes used)."""
    if pos.size == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    first = buf[pos]
    more = first >= 0x80
    if not more.any():
        return first.astype(np.uint64), np.ones(pos.size, np.int64)
    # Two bytes (lengths up to 16 KiB) without the window below.
    second = buf[pos + 1]
    if not (more & (second >= 0x80)).any():
        two = (first & 0x7F).astype(np.uint64) | (second.astype(np.uint64) << np.uint64(7))
        return np.where(more, two, first.astype(np.uint64)), more.astype(np.int64) + 1
    window = windows(buf, pos, width)
    more = window >= 0x80
    used = np.argmin(more, axis=1)
    rows = np.arange(pos.size)
    if more[rows, used].any():
        raise Irregular("varint longer than expected")
    parts = (window & 0x7F).astype(np.uint64) << (7 * np.arange(width, dtype=np.uint64))
    parts[np.arange(width)[None, :] > used[:, None]] = 0
    return np.bitwise_or.reduce(parts, axis=1), used.astype(np.int64) + 1


def fixed(buf: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    """Little-endian unsigned integers of ``width`` (4 or 8) bytes at each of ``pos``."""
    dtype = np.dtype("<u8") if width == 8 else np.dtype("<u4")
    return windows(buf, pos, width).view(dtype).ravel()


@dataclass(frozen=True)
class Fields:
    """Every field of every scanned message, in order of position within each message."""

    message: np.ndarray  # int64: which message
    number: np.ndarray  # int64: field number
    wire: np.ndarray  # int64: wire type
    value: np.ndarray  # uint64: a varint's or fixed field's value; a LEN field's length
    start: np.ndarray  # int64: where a LEN field's bytes start

    def of(self, number: int) -> np.ndarray:
        """Indices (into these arrays) of the fields with ``number``."""
        return (self.number == number).nonzero()[0]


def scan(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> Fields:
    """All fields of the messages ``buf[starts[i]:ends[i]]`` (``buf`` followed by ``PAD`` zero bytes)."""
    # A request's spans take ~25 steps (one per field position), so each step is kept to a dozen NumPy
    # calls: the common shapes (one-byte tags, every remaining field a LEN field — the attributes) take
    # the short paths, and the checks that cannot change the loop's course wait until it is done.
    messages, tags, values, value_starts = [], [], [], []
    active = (ends > starts).nonzero()[0]
    pos = starts.astype(np.int64).copy()
    while active.size:
        at = pos[active]
        first = buf[at]
        if (first < 0x80).all():
            tag = first.astype(np.uint64)
            at += 1
        else:
            tag, used = varints(buf, at, 5)
            at += used
        wire = (tag & np.uint64(7)).astype(np.int64)
        counts = np.bincount(wire, minlength=8)
        if counts[3] or counts[4] or counts[6] or counts[7]:
            raise Irregular("group or unknown wire type")
        if counts[LEN] == active.size:
            value, n = varints(buf, at, 5)
            at += n
            nxt = at + value.astype(np.int64)
        else:
            value = np.zeros(active.size, np.uint64)
            nxt = at.copy()
            if counts[VARINT]:
                is_varint = wire == VARINT
                v, n = varints(buf, at[is_varint])
                value[is_varint] = v
                nxt[is_varint] += n
            if counts[LEN]:
                is_len = wire == LEN
                v, n = varints(buf, at[is_len], 5)
                value[is_len] = v
                at[is_len] += n
                nxt[is_len] = at[is_len] + v.astype(np.int64)
            for wt, width in ((I64, 8), (I32, 4)):
                if counts[wt]:
                    is_fixed = wire == wt
                    value[is_fixed] = fixed(buf, at[is_fixed], width)
                    nxt[is_fixed] += width
        messages.append(active)
        tags.append(tag)
        values.append(value)
        value_starts.append(at)
        pos[active] = nxt
        active = active[nxt < ends[active]]
    # Every message stopped at its end or past it; past it means a field ran over.
    if (pos > np.maximum(ends, starts)).any():
        raise Irregular("field runs past the end of its message")
    if not messages:
        empty = np.zeros(0, np.int64)
        return Fields(empty, empty, empty, np.zeros(0, np.uint64), empty)
    message = np.concatenate(messages)
    # Steps append field positions in order, so a stable sort by message keeps each message's order.
    order = np.argsort(message, kind="stable")
    tag = np.concatenate(tags)[order]
    return Fields(message[order], (tag >> np.uint64(3)).astype(np.int64), (tag & np.uint64(7)).astype(np.int64),
                  np.concatenate(values)[order], np.concatenate(value_starts)[order])


def single(fields: Fields, number: int, wire: int, count: int) -> np.ndarray:
    """The field ``number`` of each of ``count`` messages: indices into ``fields``, -1 where absent. A field
    sent twice (protobuf keeps the last) or with another wire type is left to the reference decoder."""
    idx = fields.of(number)
    if idx.size and (fields.wire[idx] != wire).any():
        raise Irregular(f"field {number} with an unexpected wire type")
    owners = fields.message[idx]
    if idx.size > 1 and (owners[1:] == owners[:-1]).any():
        raise Irregular(f"field {number} repeated")
    at = np.full(count, -1, np.int64)
    at[owners] = idx
    return at


def cut_at(size: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    """Bounds cutting ``[0, size)`` so that range ``k`` of [starts, ends) is piece ``2k + 1`` (the pieces between
    are whatever lies between the ranges); None unless the ranges are in order and do not overlap."""
    if starts.size > 1 and (starts[1:] < ends[:-1]).any():
        return None
    bounds = np.empty(2 * starts.size + 2, np.int64)
    bounds[0], bounds[-1] = 0, size
    bounds[1:-1:2], bounds[2:-1:2] = starts, ends
    return bounds


def lay_out(data: np.ndarray, bounds: np.ndarray, pieces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pieces ``[bounds[i], bounds[i + 1])`` of ``data`` numbered in ``pieces`` (repeats allowed), end to
    end: (int32 Arrow offsets, data). Arrow's ``take`` over ``data`` as a binary array copies each piece whole."""
    parts = pa.BinaryArray.from_buffers(pa.binary(), len(bounds) - 1,
                                        [None, pa.py_buffer(bounds.astype(np.int32)), pa.py_buffer(data)])
    laid = parts.take(pa.array(pieces))
    offsets = np.frombuffer(laid.buffers()[1], np.int32, len(pieces) + 1)
    laid_data = laid.buffers()[2]
    return offsets, (np.frombuffer(laid_data, np.uint8, int(offsets[-1])) if laid_data is not None
                     else np.zeros(0, np.uint8))


# Below this many bytes the per-byte index is cheaper than building an Arrow array and calling ``take``.
_TAKE_FROM_BYTES = 16384


def gather(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The byte ranges [starts, ends) of ``buf`` laid end to end: (int32 Arrow offsets, data)."""
    lengths = ends - starts
    offsets = np.zeros(lengths.size + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    if total == 0:
        return offsets.astype(np.int32), np.zeros(0, np.uint8)
    nonempty = lengths > 0
    s, e = starts[nonempty], ends[nonempty]
    # Ranges in order (the usual case: fields in request order) are whole pieces of ``buf`` cut at their
    # bounds, copied by Arrow's ``take`` — ~5× faster than the per-byte index below.
    bounds = cut_at(len(buf), s, e) if total >= _TAKE_FROM_BYTES else None
    if bounds is not None:
        return offsets.astype(np.int32), lay_out(buf, bounds, np.arange(1, 2 * s.size, 2, dtype=np.int32))[1]
    # Each output byte's source index: +1 steps, jumping at the start of each range.
    step = np.ones(total, np.int64)
    step[offsets[:-1][nonempty]] = s - np.concatenate(([1], e[:-1])) + 1
    step[0] = s[0]
    return offsets.astype(np.int32), buf[np.cumsum(step)]
