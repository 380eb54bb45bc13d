"""Group commit: many concurrent export requests, one durable write, then every one acknowledged.

A single writer thread takes whatever has queued while the previous commit ran and writes it in one
transaction, so a commit's fixed cost (fsync, trace-summary refresh) is shared by all the requests that
waited for it, and batches grow by themselves under load without an artificial delay.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import pyarrow as pa

log = logging.getLogger(__name__)


class WriterClosed(RuntimeError):
    """The writer is shutting down and takes no more spans."""


@dataclass
class WriterStats:
    commits: int = 0
    spans_written: int = 0
    spans_duplicate: int = 0
    failures: int = 0
    last_commit_rows: int = 0
    commit_seconds: float = 0.0


@dataclass
class _Pending:
    table: pa.Table
    future: Future[int] = field(default_factory=Future)


class GroupCommitWriter:
    """Serialises writes into ``write_fn`` (a ``SpanStore.write``); ``submit`` returns a future that
    completes once the spans are durable, or fails with the write's exception."""

    def __init__(self, write_fn: Callable[[pa.Table], int], *, max_batch_rows: int = 262_144,
                 on_idle: Callable[[], None] | None = None, idle_after_s: float = 1.0) -> None:
        self._write = write_fn
        self._on_idle = on_idle
        self._idle_after_s = idle_after_s
        self._max_batch_rows = max_batch_rows
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._pending_rows = 0
        self._lock = threading.Lock()
        self._closed = False
        self.stats = WriterStats()
        self._thread = threading.Thread(target=self._run, name="trajscope-writer", daemon=True)
        self._thread.start()

    @property
    def pending_rows(self) -> int:
        """Spans submitted but not yet durable: the backlog a receiver checks before accepting more."""
        return self._pending_rows

    def submit(self, table: pa.Table) -> Future[int]:
        item = _Pending(table)
        with self._lock:
            if self._closed:
                raise WriterClosed("the server is shutting down")
            self._pending_rows += table.num_rows
            self._queue.put(item)
        return item.future

    def _take_group(self, first: _Pending) -> tuple[list[_Pending], bool]:
        group, rows, stop = [first], first.table.num_rows, False
        while rows < self._max_batch_rows:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                stop = True
                break
            group.append(item)
            rows += item.table.num_rows
        return group, stop

    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=self._idle_after_s if self._on_idle else None)
            except queue.Empty:
                self._idle()
                continue
            if first is None:
                break
            group, stop = self._take_group(first)
            self._commit(group)

    def _idle(self) -> None:
        """Housekeeping (a checkpoint) while nobody waits; a failure here must not kill the writer."""
        try:
            self._on_idle()
        except Exception:
            log.exception("idle housekeeping failed")

    def _commit(self, group: list[_Pending]) -> None:
        tables = [item.table for item in group]
        rows = sum(t.num_rows for t in tables)
        started = time.perf_counter()
        try:
            table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
            written = self._write(table)
        except BaseException as exc:  # every waiting request must hear of the failure
            self.stats.failures += 1
            log.exception("commit of %d spans failed; %d requests get an error", rows, len(group))
            for item in group:
                item.future.set_exception(exc)
        else:
            self.stats.commits += 1
            self.stats.spans_written += written
            self.stats.spans_duplicate += rows - written
            self.stats.last_commit_rows = rows
            self.stats.commit_seconds += time.perf_counter() - started
            for item in group:
                item.future.set_result(item.table.num_rows)
        finally:
            with self._lock:
                self._pending_rows -= rows

    def close(self, timeout: float | None = 60.0) -> None:
        """Write everything already submitted, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)
