"""Which trace ids the store may already hold: a Bloom filter over the ``traces`` table's ids.

Every load asks the store for the stored spans of its traces (dedup, and summaries of traces that arrive
over several loads). Most traces of a load are new, and the question is costly even when the answer is
"none": DuckDB binds an ``IN`` list of ~3,600 literals in ~20 ms and probes the ART index for each (42–82 ms
of CPU per 32k-span load at 10M stored spans). The filter answers "certainly new" for almost all of them
(no false negatives; ~0.2 % false positives at 16 bits per trace), so only the others are looked up.

Ids are 32 hex characters (as the decoders write them); other ids are always reported as "maybe stored".
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

BITS_PER_TRACE = 16
PROBES = 4
_MIN_BITS = 1 << 16
_HEX_VALUE = np.zeros(256, np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX_VALUE[_c] = _i
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_PROBE_STEPS = np.arange(PROBES, dtype=np.uint64)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: sequential or patterned ids spread over the whole filter."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _hashes(ids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Two 64-bit hashes of each 32-character id, and which ids had that form (others are not hashed)."""
    ids = ids.cast(pa.string())  # the offsets below are int32
    # Bytes, not characters: the 32 bytes of each id are read as one row below.
    regular = pc.binary_length(ids).fill_null(0).to_numpy(zero_copy_only=False) == 32
    if not regular.any():
        return np.zeros((0, 2), np.uint64), regular
    kept = ids.filter(pa.array(regular)) if not regular.all() else ids
    offsets = np.frombuffer(kept.buffers()[1], np.int32, len(kept) + 1, kept.offset * 4)
    data = np.frombuffer(kept.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]
    nibbles = _HEX_VALUE[data].reshape(-1, 32)
    # Two hex digits per byte, the 16 bytes read as two uint64 (their byte order does not matter to a hash).
    halves = np.ascontiguousarray((nibbles[:, 0::2] << 4) | nibbles[:, 1::2]).view(np.uint64)
    a = _mix(halves[:, 0] ^ (halves[:, 1] * _GOLDEN))
    b = _mix(a ^ halves[:, 1]) | np.uint64(1)  # odd: the probes of double hashing stay distinct
    return np.stack([a, b], axis=1), regular


class KnownTraces:
    """A Bloom filter of trace ids that grows (rebuilt by the caller from all ids) past its capacity."""

    def __init__(self, capacity: int) -> None:
        bits = _MIN_BITS
        while bits < capacity * BITS_PER_TRACE:
            bits <<= 1
        self.capacity = bits // BITS_PER_TRACE
        self.count = 0
        self._mask = np.uint64(bits - 1)
        self._bits = np.zeros(bits // 8, np.uint8)

    def _positions(self, hashes: np.ndarray) -> np.ndarray:
        return (hashes[:, :1] + _PROBE_STEPS * hashes[:, 1:]) & self._mask

    def add(self, ids: pa.Array) -> None:
        hashes, _ = _hashes(ids)
        if not len(hashes):
            return
        pos = self._positions(hashes).ravel()
        if len(pos) > 1 << 16:  # a rebuild: ufunc.at would take seconds for a million ids
            flags = np.zeros(len(self._bits) * 8, np.bool_)
            flags[pos.astype(np.int64)] = True
            self._bits |= np.packbits(flags, bitorder="little")
        else:
            np.bitwise_or.at(self._bits, (pos >> np.uint64(3)).astype(np.int64),
                             np.uint8(1) << (pos & np.uint64(7)).astype(np.uint8))
        self.count += len(hashes)

    def might_contain(self, ids: pa.Array) -> np.ndarray:
        """Per id: False only if it was never added."""
        hashes, regular = _hashes(ids)
        out = np.ones(len(regular), np.bool_)
        if len(hashes):
            pos = self._positions(hashes)
            hit = (self._bits[(pos >> np.uint64(3)).astype(np.int64)] >> (pos & np.uint64(7)).astype(np.uint8)) & 1
            out[regular] = hit.all(axis=1)
        return out
