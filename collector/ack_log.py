"""The acknowledgement point of protobuf exports: their bodies, as received, in an fsynced log.

A validated protobuf export (``validate``) is appended here and acknowledged; it is decoded and handed to the
loader (``storage.loader``) behind the acknowledgement, without a second log. Clients then send their
next export while earlier ones are still being decoded, so exports queue and the decode workers take several
at a time: with one export in flight per client, acknowledging after the decode left about one export per
decode job, each paying a job's fixed cost alone (docs/performance.md).

A record is released once its spans are in a checkpointed store file (``storage.clean_start``); a segment
is deleted once every record in it, and in the segments before it, is released. Records a crash left
behind are handed to the pipeline at start-up (``left_by_earlier_run``) and decoded again; writes are
idempotent, so an export loaded just before the crash is not stored twice. An export whose decode fails
after it was acknowledged is quarantined (``storage.quarantine``: kept on disk with the reason, counted,
logged), never dropped.

Record: ``[u16 project length][project, UTF-8][body]`` inside a ``StagingLog`` record (length, CRC32).
"""

from __future__ import annotations

import logging
import queue
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

from trajscope.storage.quarantine import QUARANTINE_DIR, Entry, Quarantine
from trajscope.storage.staging_log import StagingLog, queued_behind, running_future

log = logging.getLogger(__name__)

_PROJECT = struct.Struct("<H")
# Its place in the server's data directory.
ACK_LOG_DIR = "acklog"


def encode(project: str, body: bytes) -> bytes:
    name = project.encode()
    return _PROJECT.pack(len(name)) + name + body


def decode(record: bytes) -> tuple[str, bytes]:
    (length,) = _PROJECT.unpack_from(record)
    end = _PROJECT.size + length
    return record[_PROJECT.size:end].decode(), record[end:]


class AckLog:
    def __init__(self, directory: str | Path, quarantine: Quarantine | None = None,
                 log: StagingLog | None = None) -> None:
        """``quarantine``: where exports that fail after their acknowledgement go; by default the data
        directory's (``quarantine/`` beside this log's directory). ``log``: the record log, by default one in
        ``directory``."""
        self.directory = Path(directory)
        self.quarantined = quarantine or Quarantine(self.directory.parent / QUARANTINE_DIR)
        self._log = log or StagingLog(self.directory)
        # Segments below this one were written by an earlier run: kept until their records are reloaded.
        self._first_own = self._log.segment
        self._earlier_done = not any(s < self._first_own for s in self._log.segments())
        self._outstanding: Counter[int] = Counter()
        self._first_append: dict[int, float] = {}  # when each segment of this run got its first record
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[bytes, Future[int]] | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._append_loop, name="trajscope-ack-log", daemon=True)
        self._thread.start()

    # -- an earlier run's records ---------------------------------------------------------------------
    def left_by_earlier_run(self) -> Iterator[tuple[str, bytes]]:
        """(project, body) of every record an earlier run acknowledged and did not release, oldest first,
        read one segment at a time (records stay until loaded: up to the writer's whole backlog)."""
        return (decode(record) for segment, record in self._log.replay() if segment < self._first_own)

    def earlier_run_reloaded(self) -> None:
        """Every record of ``left_by_earlier_run`` is staged: its segments may go."""
        with self._lock:
            self._earlier_done = True
            self._discard()

    # -- appending (group commit) ---------------------------------------------------------------------
    def append(self, project: str, body: bytes) -> Future[int]:
        """Durable once the future resolves (to the record's segment, for ``release``)."""
        future = running_future()
        if self._closed:
            future.set_exception(RuntimeError("the acknowledgement log is closed"))
            return future
        self._queue.put((encode(project, body), future))
        return future

    def _append_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            # Everything that queued while the previous fsync ran shares the next one.
            items, stop = queued_behind(first, self._queue)
            try:
                segment = self._log.append([record for record, _ in items])
            except BaseException as exc:
                for _, future in items:
                    future.set_exception(exc)
            else:
                with self._lock:
                    self._outstanding[segment] += len(items)
                    self._first_append.setdefault(segment, time.monotonic())
                for _, future in items:
                    future.set_result(segment)
            if stop:
                return

    # -- releasing --------------------------------------------------------------------------------------
    def release(self, segment: int) -> None:
        """One record of ``segment`` is loaded (or set aside). From any thread."""
        with self._lock:
            self._outstanding[segment] -= 1
            if self._outstanding[segment] <= 0:
                del self._outstanding[segment]
                self._discard()

    def _discard(self) -> None:
        if not self._earlier_done:
            return
        oldest = min(self._outstanding, default=self._log.segment)
        self._log.discard_before(oldest)
        for segment in [s for s in self._first_append if s < oldest]:
            del self._first_append[segment]

    def backlog(self) -> tuple[int, float]:
        """(bytes the log holds on disk, seconds since the oldest unreleased record of this run was written)."""
        with self._lock:
            outstanding = [s for s in self._outstanding if s in self._first_append]
            oldest = min((self._first_append[s] for s in outstanding), default=None)
        size = sum(p.stat().st_size for p in self.directory.glob("seg-*.log") if p.exists())
        return size, 0.0 if oldest is None else time.monotonic() - oldest

    def quarantine(self, project: str, body: bytes, reason: BaseException, spans: int = 0) -> Entry:
        """Keep an acknowledged export whose decode or staging failed, for an operator to retry or drop."""
        return self.quarantined.add_export(encode(project, body), reason, spans, project)

    @property
    def unreleased(self) -> int:
        with self._lock:
            return sum(self._outstanding.values())

    def close(self) -> None:
        """Stop appending; with every record released, the log's segments are deleted."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()
        with self._lock:
            done = self._earlier_done and not self._outstanding
        self._log.close(all_loaded=done)
