"""An append-only, fsynced log of records: the staging writer's decoded span batches (Arrow IPC streams),
and the ingest pipeline's raw export bodies (``collector.ack_log``), each in its own directory.

An export is acknowledged once its record is in this log and the log is fsynced; loading into DuckDB
happens behind it in large batches (``loader``). DuckDB writes an insert of a full row group or
more straight to the database file, which is ~3× cheaper per span than many small WAL commits, and
acknowledgements no longer wait on inserts or checkpoints.

Layout: ``DIR/seg-<n>.log``, each a sequence of records ``[u32 length][u32 crc32][payload]``. A record is
whole or absent: a torn tail (crash mid-write, never acknowledged) fails its length or checksum and is
cut off on replay. Segments are deleted once every record in them is loaded.
"""

from __future__ import annotations

import logging
import os
import queue
import struct
import zlib
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

import numpy as np

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")
SEGMENT_BYTES = 32 * 2**20


_T = TypeVar("_T")


def queued_behind(first: _T, waiting: queue.SimpleQueue[_T | None]) -> tuple[list[_T], bool]:
    """``first`` and everything that queued behind it (to share one append's fsync), and whether the stop
    marker (None) was among them."""
    items = [first]
    while True:
        try:
            item = waiting.get_nowait()
        except queue.Empty:
            return items, False
        if item is None:
            return items, True
        items.append(item)


def running_future() -> Future[int]:
    """A future for an append's waiter that the waiter cannot cancel: the record is written whether or not
    anyone still waits (a client going away cancels ``asyncio.wrap_future``'s wrapper, which cancels what
    it wraps), and resolving a cancelled future raised in the appending thread, which then stopped
    acknowledging every export after it."""
    future: Future[int] = Future()
    future.set_running_or_notify_cancel()
    return future


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a new, renamed or deleted file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _record_at(data: bytes, offset: int) -> bytes | None:
    """The payload of a whole record starting at ``offset``, or None."""
    if offset + _HEADER.size > len(data):
        return None
    length, crc = _HEADER.unpack_from(data, offset)
    start = offset + _HEADER.size
    if start + length > len(data):
        return None
    payload = data[start:start + length]
    return payload if zlib.crc32(payload) == crc else None


def _next_record(data: bytes, offset: int, chunk: int = 1 << 22) -> int | None:
    """The first offset at or after ``offset`` where a whole record starts whose successor is also whole or
    the segment's end (so that a chance checksum match in damaged bytes is not taken for a record). Offsets
    whose length field overruns the segment are ruled out in NumPy, a chunk at a time."""
    view = np.frombuffer(data, np.uint8)
    end = len(data) - _HEADER.size + 1  # offsets where a header fits
    while offset < end:
        stop = min(end, offset + chunk)
        length = view[offset:stop].astype(np.uint32)
        for shift in (1, 2, 3):
            length |= view[offset + shift:stop + shift].astype(np.uint32) << np.uint32(8 * shift)
        fits = length.astype(np.int64) <= len(data) - _HEADER.size - np.arange(offset, stop, dtype=np.int64)
        for candidate in np.flatnonzero(fits).tolist():
            record = _record_at(data, offset + candidate)
            if record is not None:
                after = offset + candidate + _HEADER.size + len(record)
                if after == len(data) or _record_at(data, after) is not None:
                    return offset + candidate
        offset = stop
    return None


def _segment_number(path: Path) -> int:
    return int(path.stem.split("-", 1)[1])


class StagingLog:
    """Not thread-safe: one thread appends (the acknowledging one); ``discard_before`` may run on another
    because it only unlinks files the appender has moved past."""

    def __init__(self, directory: str | Path, *, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._segment_bytes = segment_bytes
        existing = self.segments()
        self.segment = (existing[-1] + 1) if existing else 1
        self._fd = self._open(self.segment)
        self._size = 0
        self.damaged_bytes = 0  # skipped by ``replay`` because they failed their checksum

    def segments(self) -> list[int]:
        return sorted(_segment_number(p) for p in self.directory.glob("seg-*.log"))

    def _path(self, segment: int) -> Path:
        return self.directory / f"seg-{segment:08d}.log"

    def _open(self, segment: int) -> int:
        fd = os.open(self._path(segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        # The new file's directory entry must be durable too, or a crash could lose the whole segment.
        fsync_dir(self.directory)
        return fd

    def append(self, payloads: list[bytes | bytearray]) -> int:
        """Write the records and fsync once; returns the segment they are in. Durable on return."""
        if self._size >= self._segment_bytes:
            self._next_segment()
        start = self._size
        try:
            for payload in payloads:
                # Header and payload written as they are: joining them first copied every payload once more.
                self._write(_HEADER.pack(len(payload), zlib.crc32(payload)))
                self._write(payload)
                self._size += _HEADER.size + len(payload)
            os.fdatasync(self._fd)
        except BaseException:
            self._forget_since(start)
            raise
        return self.segment

    def _forget_since(self, start: int) -> None:
        """After a failed append (disk full, say): none of it was acknowledged, and a torn record left in
        the segment would end its replay there, losing every record acknowledged after it. Cut the segment
        back, or if even that fails, continue in a new one."""
        try:
            os.ftruncate(self._fd, start)
            self._size = start
        except OSError:
            log.exception("staging log %s: could not cut a failed append; continuing in a new segment",
                          self._path(self.segment).name)
            self._next_segment()

    def _next_segment(self) -> None:
        os.close(self._fd)
        self.segment += 1
        self._fd = self._open(self.segment)
        self._size = 0

    def _write(self, data: bytes | bytearray) -> None:
        view = memoryview(data)
        written = 0
        while written < len(view):  # os.write may write less than asked
            written += os.write(self._fd, view[written:])

    def replay(self) -> Iterator[tuple[int, bytes]]:
        """Every whole record of the segments before the current one, oldest first. A damaged record with
        whole records after it (a bit flip, a bad block) is skipped with an error naming the segment, whose
        bytes are copied to ``damaged-<segment>`` for inspection; an unfinished record at a segment's end
        (a crash mid-append, never acknowledged) is cut with a warning."""
        for segment in self.segments():
            if segment >= self.segment:
                break
            path = self._path(segment)
            data = path.read_bytes()
            offset = 0
            while offset + _HEADER.size <= len(data):
                if (record := _record_at(data, offset)) is not None:
                    yield segment, record
                    offset += _HEADER.size + len(record)
                    continue
                resume = _next_record(data, offset + 1)
                if resume is None:
                    break
                self.damaged_bytes += resume - offset
                kept = self.directory / f"damaged-{path.name}"
                if not kept.exists():
                    kept.write_bytes(data)
                log.error("%s: %d bytes at offset %d are damaged (a record failed its checksum) and are skipped; "
                          "the records after them are read. A copy of the segment is kept in %s",
                          path, resume - offset, offset, kept)
                offset = resume
            if offset < len(data):
                log.warning("staging log %s: cut %d bytes of an unfinished record (never acknowledged)",
                            path.name, len(data) - offset)

    def discard_before(self, segment: int) -> None:
        """Delete segments whose records are all loaded (numbers below ``segment``)."""
        for number in self.segments():
            if number >= min(segment, self.segment):
                break
            self._path(number).unlink(missing_ok=True)

    def close(self, *, all_loaded: bool = False) -> None:
        """Close the segment being written; with ``all_loaded``, delete every segment (nothing in the log
        is still needed)."""
        os.close(self._fd)
        if all_loaded:
            for number in self.segments():
                self._path(number).unlink(missing_ok=True)
