"""OTLP log exports: decoded, made durable, stored — the same acknowledgement as traces, on a log of its own.

An export is decoded first (a malformed one is refused with INVALID_ARGUMENT / 400, nothing kept), then
appended to ``data/acklog-logs/`` and fsynced, then written to ``log_records``; the answer follows. A record
of that log is let go only once a store checkpoint has put its rows in the database file (trajscope never
relies on DuckDB's WAL: ``storage.clean_start``). A write that fails for a store fault is retried in the
background and the export still acknowledged: it is on disk, and the next start re-applies it regardless.
Records are idempotent (``otlp_logs.decode_logs``'s record ids), so replays and client retries store once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

from trajscope.collector import redaction
from trajscope.collector.ack_log import AckLog
from trajscope.collector.otlp_logs import decode_logs
from trajscope.collector.pipeline import ExportOutcome, Overloaded, Unavailable
from trajscope.collector.span_parts import InvalidRequest
from trajscope.storage.interface import StoreUnavailable

if TYPE_CHECKING:
    from trajscope.memory_budget import MemoryGuard

log = logging.getLogger(__name__)

LOGS_ACK_DIR = "acklog-logs"
# Bytes of log exports being decoded, logged and written at once; past it exporters are asked to retry.
MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024
CHECKPOINT_AFTER_S = 10.0


class LogStore:
    """What the logs path needs of a store (``DuckDBStore``)."""

    checkpoints: int

    def write_logs(self, records: pa.Table) -> int: ...
    def checkpoint(self) -> None: ...


@dataclass
class LogStats:
    requests: int = 0
    records_accepted: int = 0
    records_rejected: int = 0
    invalid_requests: int = 0
    overloaded: int = 0
    write_retries: int = 0
    redactions: dict[str, int] = field(default_factory=dict)  # records changed per redaction rule


class LogsIngest:
    def __init__(self, store: LogStore, ack_log: AckLog, executor: Executor | None = None, *,
                 max_in_flight_bytes: int = MAX_IN_FLIGHT_BYTES, checkpoint_after_s: float = CHECKPOINT_AFTER_S,
                 clock: Callable[[], float] = time.monotonic, memory: MemoryGuard | None = None) -> None:
        """``memory``: the budget's guard; while it is over its admission mark, exports are refused as
        retryable, like past ``max_in_flight_bytes``."""
        self._store = store
        self._memory = memory
        self._ack_log = ack_log
        self._executor = executor
        self._max_in_flight = max_in_flight_bytes
        self._in_flight = 0
        self._checkpoint_after_s = checkpoint_after_s
        self._clock = clock
        self.stats = LogStats()
        self._lock = threading.Lock()
        # (store checkpoints completed when written, when written, ack-log segment) of stored exports.
        self._unreleased: list[tuple[int, float, int]] = []
        self._retry: list[tuple[pa.Table, int]] = []  # (records, segment) whose write failed
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._release_loop, name="trajscope-logs", daemon=True)
        self._thread.start()

    # -- exports ------------------------------------------------------------------------------------
    async def export(self, body: bytes, encoding: str, project: str) -> ExportOutcome:
        if self._closed:
            raise Unavailable("shutting down")
        self.stats.requests += 1
        if self._in_flight + len(body) > self._max_in_flight and self._in_flight:
            self.stats.overloaded += 1
            raise Overloaded(f"log exports in flight {self._in_flight} bytes, limit {self._max_in_flight}")
        if self._memory is not None and self._memory.over():
            self.stats.overloaded += 1
            raise Overloaded(self._memory.refusal())
        self._in_flight += len(body)
        try:
            return await self._export(body, encoding, project)
        finally:
            self._in_flight -= len(body)

    async def _export(self, body: bytes, encoding: str, project: str) -> ExportOutcome:
        loop = asyncio.get_running_loop()
        try:
            decoded = await loop.run_in_executor(self._executor, decode_logs, body, encoding, project)
        except InvalidRequest:
            self.stats.invalid_requests += 1
            raise
        self.stats.records_rejected += decoded.rejected
        if decoded.accepted:
            try:
                segment = await asyncio.wrap_future(self._ack_log.append(project, body))
            except Exception as exc:
                raise Unavailable(f"cannot make the export durable: {exc}") from exc
            records, found = await loop.run_in_executor(None, redaction.redacted, decoded.table, redaction.LOGS)
            for rule, count in found.items():
                self.stats.redactions[rule] = self.stats.redactions.get(rule, 0) + count
            await loop.run_in_executor(None, self._write, records, segment)
            self.stats.records_accepted += decoded.accepted
        return ExportOutcome(decoded.accepted, decoded.rejected, decoded.error_message)

    def _write(self, records: pa.Table, segment: int) -> None:
        try:
            self._store.write_logs(records)
        except StoreUnavailable as exc:
            log.warning("storing log records failed (%s); kept on disk and retried", exc)
            with self._lock:
                self._retry.append((records, segment))
            return
        with self._lock:
            self._unreleased.append((self._store.checkpoints, self._clock(), segment))

    # -- an earlier run's records ---------------------------------------------------------------------
    def reload_earlier_run(self, progress: Callable[[str], None] | None = None) -> int:
        """Store what an earlier run acknowledged and did not release; checkpointed before the log lets go."""
        stored = exports = 0
        for project, body in self._ack_log.left_by_earlier_run():
            exports += 1
            try:
                decoded = decode_logs(body, "protobuf" if not body.lstrip().startswith(b"{") else "json", project)
            except InvalidRequest as exc:  # it decoded when acknowledged: keep it for an operator
                self._ack_log.quarantine(project, body, exc)
                continue
            stored += self._store.write_logs(redaction.redacted(decoded.table, redaction.LOGS)[0])
        if exports:
            self._store.checkpoint()
            if progress:
                progress(f"re-applied {exports} acknowledged log export(s) ({stored} new records)")
        self._ack_log.earlier_run_reloaded()
        return stored

    # -- releasing ------------------------------------------------------------------------------------
    def _release_loop(self) -> None:
        while not self._closed:
            self._wake.wait(1.0)
            self._wake.clear()
            self._step(force=False)

    def _step(self, *, force: bool) -> None:
        with self._lock:
            retry, self._retry = self._retry, []
        for records, segment in retry:
            self.stats.write_retries += 1
            self._write(records, segment)
        with self._lock:
            if not self._unreleased:
                return
            oldest = self._unreleased[0][1]
        due = self._clock() - oldest >= self._checkpoint_after_s
        if force or (due and self._store.checkpoints <= self._unreleased[0][0]):
            try:
                self._store.checkpoint()
            except Exception:  # the log keeps the records; the next try or start re-applies them
                log.exception("checkpoint for log records failed; retried later")
        done = self._store.checkpoints
        with self._lock:
            keep = [item for item in self._unreleased if item[0] >= done]
            released = [item for item in self._unreleased if item[0] < done]
            self._unreleased = keep
        for _, _, segment in released:
            self._ack_log.release(segment)

    def close(self) -> None:
        """Store what is pending, checkpoint, release, close the log."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join()
        self._step(force=True)
        self._ack_log.close()
