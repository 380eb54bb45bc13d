"""The loader: acknowledged spans into the store in large batches, checkpointed before any log lets them go.
OTLP/JSON exports are also acknowledged here, on the staging log.

Two threads, so an acknowledgement never waits on DuckDB:

* the **ack thread** takes every submission that queued while its previous fsync ran, appends them to the
  ``StagingLog`` with one fsync (group commit), and resolves their futures — the export is acknowledged;
* the **load thread** collects acknowledged batches and writes them to the store (``SpanStore.write``:
  dedup, insert, trace summaries, one transaction) once ``load_rows`` have gathered — whole row groups,
  the rest waiting for the next load —, when input pauses for ``linger_s``, or at once when a reader calls
  ``sync`` (then everything; while input outruns the loader, whole row groups: ``READ_HOLD_S``). It
  checkpoints the store every ``checkpoint_rows`` loaded spans, every ``checkpoint_after_s`` and when idle;
  only then are the loaded segments of the log deleted (and batches logged elsewhere released), because
  trajscope never relies on DuckDB's WAL (``storage.clean_start``). While input outruns the loader (a
  full load gathers) the store is in ingest mode (``set_ingest_mode``: fewer DuckDB threads). The load
  after input pauses (``linger_s``) is the burst's tail and still runs in ingest mode; a second such load
  in a row (a trickle) or ``idle_after_s`` without input switches it back.

A batch whose export is already durable elsewhere (the ingest pipeline's acknowledgement log of raw
bodies) skips the staging log (``submit_acknowledged``): it goes straight to the load queue and its
future resolves once it is in a checkpointed store file, when the other log may let it go. Writing it here
as well would write and fsync its Arrow IPC stream (1.6× the wire size) a second time (docs/performance.md).

Readers call ``sync()`` first, so a query sees every span acknowledged before it began (loaded and committed;
reads do not wait for checkpoints). After a crash the log is replayed into the store on start and
checkpointed before it is deleted (writes are idempotent, so a batch loaded just before the crash is not
stored twice). If loading fails because of the spans, the load is split per export and an export that
still fails alone is quarantined (``write_isolated``); if it fails because of the store (a full disk), the
spans stay in the log and the loader retries with a growing pause until the writer closes, while the
backlog bound turns new exports away with a retryable error instead of losing anything.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from trajscope.metrics import Histogram
from trajscope.storage.interface import CheckpointDeferred, StoreUnavailable
from trajscope.storage.quarantine import QUARANTINE_DIR, Quarantine
from trajscope.storage.schema import ROW_GROUP_ROWS, SPAN_SCHEMA
from trajscope.storage.staging_log import StagingLog, queued_behind, running_future

log = logging.getLogger(__name__)

# DuckDB writes an insert of whole row groups directly to the database file (duckdb_store.ROW_GROUP_ROWS):
# a load under way is cut to whole row groups and the rest of the export waits for the next one. A load
# that is not whole row groups costs ~3× the CPU (the WAL) and leaves a partial row group that the next
# checkpoint merges by rewriting its neighbours.
LOAD_ROWS = 2 * ROW_GROUP_ROWS
MAX_LOAD_ROWS = 16 * ROW_GROUP_ROWS
# The longest a load waits for spans said to be on their way (``expect_more``) once input is quiet.
MAX_LINGER_S = 1.0
# While input outruns the loader, a reader's ``sync`` does not cut the stream into small loads: a load under a
# row group is kept uncompressed in DuckDB's memory until the next checkpoint and copied row by row at its
# commit, so readers polling during a burst would multiply both. The load a reader asks for takes whole row
# groups, waiting up to this long for one to gather (``read_wait_s`` bounds the reader's own wait).
READ_HOLD_S = 0.25
# Past this many rows loaded since the last checkpoint, or this long after the first of them, checkpoint even
# under load. Until then the logs keep those spans (a restart re-applies them), so these bound both the log's
# size and the work of a restart; a checkpoint's cost is mostly fixed (docs/performance.md).
CHECKPOINT_ROWS = 131_072
CHECKPOINT_AFTER_S = 10.0
# After a checkpoint, once this many spans were written since the store attached its file, the store attaches
# it again (``DuckDBStore.reattach``): what DuckDB keeps in memory of every row group it wrote goes with it.
REATTACH_ROWS = 1_048_576
RETRY_AFTER_FAILURE_S = 1.0
MAX_RETRY_PAUSE_S = 16.0


class _GiveUp(Exception):
    """The writer is closing while the store keeps failing: what is not loaded stays in the logs."""


class WriterClosed(RuntimeError):
    """The writer is shutting down and takes no more spans."""


class WritableStore(Protocol):
    """What the loader and the log replays need of a store: idempotent writes, and checkpoints."""

    def write(self, spans: pa.Table) -> int: ...
    def checkpoint(self) -> None: ...


@dataclass
class WriterStats:
    spans_acknowledged: int = 0
    spans_written: int = 0
    spans_duplicate: int = 0
    spans_replayed: int = 0
    fsyncs: int = 0
    loads: int = 0
    load_failures: int = 0
    last_load_rows: int = 0
    load_seconds: float = 0.0
    checkpoints: int = 0
    checkpoint_failures: int = 0
    reattaches: int = 0
    spans_quarantined: int = 0


@dataclass
class _Batch:
    """One export's decoded spans, from submission through acknowledgement to loading."""

    payload: bytes | bytearray
    rows: int
    future: Future[int] = field(default_factory=running_future)
    segment: int = -1  # the staging-log segment holding it, once acknowledged
    # False: durable elsewhere, never in the staging log; ``future`` resolves once it is loaded.
    logged: bool = True
    # A load cut inside this export: the spans themselves (``payload`` unused), and whether loading them
    # completes the export (its tail) or not (its head).
    table: pa.Table | None = None
    completes: bool = True

    def spans(self) -> pa.Table:
        return self.table if self.table is not None else read_ipc(self.payload)


def ipc_bytes(table: pa.Table) -> bytearray:
    """A table as one Arrow IPC stream: what decode workers hand over and the log stores. Sized by a dry run
    and written once into its final buffer (a growing stream copied ~2.4 MB per 2,048 spans several times
    over, and again into ``bytes``: 0.55 → 0.27 ms)."""
    size = pa.MockOutputStream()
    with pa.ipc.new_stream(size, table.schema) as stream:
        stream.write_table(table)
    out = bytearray(size.size())
    with pa.ipc.new_stream(pa.FixedSizeBufferWriter(pa.py_buffer(out)), table.schema) as stream:
        stream.write_table(table)
    return out


def read_ipc(payload: bytes | bytearray) -> pa.Table:
    return conform(pa.ipc.open_stream(payload).read_all())


def write_in_loads(tables: Iterable[pa.Table], write: Callable[[list[pa.Table]], object],
                   load_rows: int = LOAD_ROWS) -> int:
    """Hand ``tables`` to ``write`` gathered into loads of at least ``load_rows`` rows (the last may be
    smaller), as a recovery outside the load thread does; returns the rows handed over."""
    batch: list[pa.Table] = []
    rows = total = 0
    for table in tables:
        batch.append(table)
        rows += table.num_rows
        if rows >= load_rows:
            write(batch)
            total, batch, rows = total + rows, [], 0
    if batch:
        write(batch)
    return total + rows


# Failures of the store rather than of the spans: retried, never quarantined.
STORE_FAULTS = (StoreUnavailable, OSError, MemoryError)


def write_isolated(store: WritableStore, tables: list[pa.Table], quarantine: Quarantine) -> tuple[int, int]:
    """Write ``tables`` (one per export or export part) as one load: (spans new to the store, spans
    quarantined). A failure of the spans themselves splits the load into its tables, and a table that fails
    alone is quarantined, so one bad export never holds back the others. Store faults (``STORE_FAULTS``)
    propagate: the same write may succeed later."""
    try:
        return store.write(pa.concat_tables(tables)), 0
    except STORE_FAULTS:
        raise
    except Exception as exc:
        if len(tables) == 1:
            quarantine.add_spans(tables[0], exc)
            return 0, tables[0].num_rows
        results = [write_isolated(store, [table], quarantine) for table in tables]
        return sum(r[0] for r in results), sum(r[1] for r in results)


def row_group_cut(rows: list[int], drain: bool, row_group_rows: int) -> tuple[int, int]:
    """Where a load of batches of ``rows`` spans stops: (batches loaded whole, spans of the next batch loaded
    as its head). Draining loads everything; otherwise the load ends on a row-group boundary, unless it is
    smaller than one row group (then everything: nothing would load)."""
    total = sum(rows)
    keep = 0 if drain else total % row_group_rows
    if keep == 0 or keep == total:
        return len(rows), 0
    cut, loaded, whole = total - keep, 0, 0
    while loaded + rows[whole] <= cut:
        loaded += rows[whole]
        whole += 1
    return whole, cut - loaded


def conform(table: pa.Table) -> pa.Table:
    """A staged batch written by an older version: same columns by name, new ones null."""
    if table.schema.equals(SPAN_SCHEMA):
        return table
    arrays = [table.column(f.name).cast(f.type) if f.name in table.column_names
              else pa.nulls(table.num_rows, f.type) for f in SPAN_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=SPAN_SCHEMA)


class Loader:
    def __init__(self, store: WritableStore, directory: str | Path, *, load_rows: int = LOAD_ROWS,
                 row_group_rows: int = ROW_GROUP_ROWS, linger_s: float = 0.05, idle_after_s: float = 1.0,
                 checkpoint_rows: int = CHECKPOINT_ROWS, checkpoint_after_s: float = CHECKPOINT_AFTER_S,
                 reattach_rows: int = REATTACH_ROWS, quarantine: Quarantine | None = None,
                 log: StagingLog | None = None, clock: Callable[[], float] = time.monotonic,
                 progress: Callable[[str], None] | None = None) -> None:
        """``quarantine``: where spans that fail to load on their own go; by default the data directory's
        (``quarantine/`` beside ``directory``). ``log``: the staging log, by default one in ``directory``.
        ``clock``: seconds, for when a checkpoint is due by age. ``reattach_rows``: see ``REATTACH_ROWS`` (0: never)."""
        self._store = store
        self._quarantine = quarantine or Quarantine(Path(directory).parent / QUARANTINE_DIR)
        self._closing = threading.Event()
        self._load_rows = load_rows
        self._row_group_rows = row_group_rows
        self._linger_s = linger_s
        self._more_coming: Callable[[], bool] = lambda: False
        self._idle_after_s = idle_after_s
        self._checkpoint_rows = checkpoint_rows
        self._checkpoint_after_s = checkpoint_after_s
        self._reattach_rows = reattach_rows
        self._reattach_store: Callable[[], bool] | None = getattr(store, "reattach", None)
        self._clock = clock
        self._rows_since_checkpoint = 0
        # When the first load since the last checkpoint committed; None while everything loaded is checkpointed.
        self._first_uncheckpointed: float | None = None
        # Futures of batches logged elsewhere that are loaded and committed but not yet in a checkpoint (their
        # spans are not kept: only the future, resolved once they are).
        self._uncheckpointed: list[tuple[Future[int], int]] = []
        self._discard_at = 0  # staging-log segments below this one may go at the next checkpoint
        self.stats = WriterStats()
        self.load_latency = Histogram()  # seconds per load into the store
        self._set_ingest_mode: Callable[[bool], None] | None = getattr(store, "set_ingest_mode", None)
        self._ingesting = False
        self._after_full_load = False
        self._held_since: float | None = None  # when a reader's load began waiting for a row group (READ_HOLD_S)
        self._log = log or StagingLog(directory)
        self._recover(progress)

        self._submissions: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._staged: deque[_Batch] = deque()
        self._staged_rows = 0
        self._last_arrival = 0.0
        self._acked = 0  # records acknowledged (sequence numbers for sync)
        self._loaded = 0
        self._sync_waiters = 0
        self._ack_done = False
        self._pending_rows = 0
        self._lock = threading.Lock()
        self._closed = False
        self._ack_thread = threading.Thread(target=self._ack_loop, name="trajscope-ack", daemon=True)
        self._load_thread = threading.Thread(target=self._load_loop, name="trajscope-load", daemon=True)
        self._ack_thread.start()
        self._load_thread.start()

    # -- recovery -----------------------------------------------------------------------------------
    def _recover(self, progress: Callable[[str], None] | None) -> None:
        """Load whatever a previous run acknowledged but had not loaded, before taking new spans."""

        def replay(tables: list[pa.Table]) -> None:
            self._ingest_mode(True)
            self._write(tables, retry=False)  # a store fault at start is the start's failure, said at once
            self.stats.spans_replayed += sum(t.num_rows for t in tables)
            if progress:
                progress(f"recovered {self.stats.spans_replayed} acknowledged spans from the staging log")

        replayed = write_in_loads((read_ipc(payload) for _, payload in self._log.replay()), replay, self._load_rows)
        if replayed:
            self._store.checkpoint()  # in the file before the log lets go of them
        self._log.discard_before(self._log.segment)

    # -- submitting ---------------------------------------------------------------------------------
    @property
    def pending_rows(self) -> int:
        """Spans submitted but not yet loaded: the backlog a receiver checks before accepting more."""
        return self._pending_rows

    def submit(self, payload: bytes | bytearray, rows: int) -> Future[int]:
        """Stage one decoded batch (``ipc_bytes``); the future resolves once the batch is durable."""
        item = _Batch(payload, rows)
        with self._lock:
            if self._closed:
                raise WriterClosed("the server is shutting down")
            self._pending_rows += rows
            self._submissions.put(item)
        return item.future

    def expect_more(self, coming: Callable[[], bool]) -> None:
        """How to ask whether spans already acknowledged elsewhere are on their way here (the ingest pipeline's
        decode backlog): input has not paused while they are, however long ago the last submission was."""
        self._more_coming = coming

    def submit_acknowledged(self, payload: bytes | bytearray, rows: int) -> Future[int]:
        """Queue one decoded batch for loading without writing it to the staging log: the caller keeps it
        durable (and recovers it after a crash) until the future resolves, once the batch is in a checkpointed
        store file. If that never happens (the server stops first), the future never resolves."""
        item = _Batch(payload, rows, logged=False)
        with self._lock:  # held while queueing, so that close() cannot stop the loader in between
            if self._closed:
                raise WriterClosed("the server is shutting down")
            self._pending_rows += rows
            self._queue_for_load([item])
        return item.future

    def _release(self, rows: int) -> None:
        with self._lock:
            self._pending_rows -= rows

    # -- the ack thread -----------------------------------------------------------------------------
    def _ack_loop(self) -> None:
        stop = False
        while not stop:
            first = self._submissions.get()
            if first is None:
                break
            group, stop = queued_behind(first, self._submissions)
            self._acknowledge(group)
        with self._cond:
            self._ack_done = True
            self._cond.notify_all()

    def _acknowledge(self, group: list[_Batch]) -> None:
        try:
            segment = self._log.append([item.payload for item in group])
        except BaseException as exc:  # every waiting export must hear of the failure
            log.exception("staging log write of %d batches failed", len(group))
            self._release(sum(item.rows for item in group))
            for item in group:
                item.future.set_exception(exc)
            return
        self.stats.fsyncs += 1
        for item in group:
            item.segment = segment
        self._queue_for_load(group)
        for item in group:
            item.future.set_result(item.rows)

    def _queue_for_load(self, items: list[_Batch]) -> None:
        """Acknowledged batches join the load queue (``sync`` now waits for them)."""
        rows = sum(item.rows for item in items)
        with self._cond:
            self._staged.extend(items)
            self._staged_rows += rows
            self._acked += len(items)
            self._last_arrival = time.monotonic()
            self._cond.notify_all()
        self.stats.spans_acknowledged += rows

    # -- the load thread ----------------------------------------------------------------------------
    def _due(self, now: float) -> bool:
        return bool(self._staged) and (
            self._staged_rows >= self._load_rows or self._sync_waiters > 0 or self._ack_done
            or self._paused(now))

    def _paused(self, now: float) -> bool:
        quiet = now - self._last_arrival
        return quiet >= self._linger_s and (quiet >= MAX_LINGER_S or not self._more_coming())

    def _take(self) -> tuple[list[_Batch], bool, bool | None] | None:
        """Wait for a batch worth loading; None once closed and drained. Runs idle housekeeping. The first
        flag says whether everything taken must load now (a reader waits on a quiet stream, input paused,
        closing) or the load may stop at a row-group boundary; the second whether input is outrunning the
        loader (a full load gathered: True), has paused (False), or neither is known (a reader or shutdown
        asked: None)."""
        with self._cond:
            while True:
                now = time.monotonic()
                if self._due(now):
                    full = self._staged_rows >= self._load_rows
                    asked = self._sync_waiters > 0 or self._ack_done
                    # A burst: a full load gathered before, or a quarter row group waits with more on its way
                    # (a trickle's reader never waits for a row group).
                    streaming = (asked and not self._ack_done and not self._paused(now) and (
                        self._after_full_load
                        or (self._staged_rows >= self._row_group_rows // 4 and self._more_coming())))
                    if streaming and self._staged_rows < self._row_group_rows:
                        if self._held_since is None:
                            self._held_since = now
                        if now - self._held_since < READ_HOLD_S:
                            self._cond.wait(READ_HOLD_S - (now - self._held_since))
                            continue
                    self._held_since = None
                    drain = (not full or asked) and not streaming
                    busy = True if full else (None if asked else False)
                    taken: list[_Batch] = []
                    rows = 0
                    while self._staged and rows < MAX_LOAD_ROWS:
                        item = self._staged.popleft()
                        taken.append(item)
                        rows += item.rows
                    self._staged_rows -= rows
                    return taken, drain, busy
                self._held_since = None  # nobody asks now (a reader gave up): a later one holds afresh
                if self._ack_done and not self._staged:
                    return None
                if self._staged:
                    quiet = now - self._last_arrival
                    # Past linger_s with more coming: look again every linger_s, up to MAX_LINGER_S.
                    self._cond.wait(self._linger_s - quiet if quiet < self._linger_s
                                    else min(self._linger_s, MAX_LINGER_S - quiet))
                    continue
                if not self._cond.wait(self._idle_after_s):
                    break
        self._idle()
        return [], True, None

    def _load_loop(self) -> None:
        while (took := self._take()) is not None:
            taken, drain, busy = took
            if taken:
                self._switch_for(busy)
                try:
                    self._load(*self._whole_row_groups(taken, drain))
                except _GiveUp:
                    log.error("stopping with spans not loaded (the store keeps failing); they stay in the logs "
                              "and are loaded at the next start")
                    return
        if self._first_uncheckpointed is not None:
            self._checkpoint()  # closing: what was loaded goes into the file before the logs let it go

    def _whole_row_groups(self, taken: list[_Batch], drain: bool) -> tuple[list[_Batch], list[pa.Table]]:
        """What to load now: everything when draining, else whole row groups, the rest of the export that
        straddles the cut (and any after it) going back to the front of the queue."""
        tables = [item.spans() for item in taken]
        whole, inside = row_group_cut([t.num_rows for t in tables], drain, self._row_group_rows)
        if whole == len(taken):
            return taken, tables
        i, item = whole, taken[whole]
        head = replace(item, payload=b"", rows=inside, table=tables[i].slice(0, inside), completes=False)
        tail = replace(item, payload=b"", rows=item.rows - inside, table=tables[i].slice(inside))
        rest = [tail, *taken[i + 1:]]
        with self._cond:
            self._staged.extendleft(reversed(rest))
            self._staged_rows += sum(b.rows for b in rest)
        load = taken[:i] + ([head] if inside else [])
        return load, tables[:i] + ([head.table] if inside else [])

    def _switch_for(self, busy: bool | None) -> None:
        """Ingest mode only while input outruns the loader: a trickle of exports (each loaded after
        ``linger_s``) leaves the cores to queries. The first load after a pause is a burst's tail, not yet a
        trickle: it keeps ingest mode, where it costs less (docs/performance.md)."""
        if busy is None:  # a reader or shutdown asked: the pace of input is unknown
            return
        tail = not busy and self._after_full_load
        self._after_full_load = busy
        if not tail:
            self._ingest_mode(busy)

    def _ingest_mode(self, loading: bool) -> None:
        if self._set_ingest_mode is None or self._ingesting == loading:
            return
        try:
            self._set_ingest_mode(loading)
        except Exception:  # only speed depends on it: never fail or stall a load over it
            log.exception("switching the store's ingest mode failed")
        self._ingesting = loading

    def _write(self, tables: list[pa.Table], *, retry: bool = True) -> int:
        """Write one load (a table per export or export part) with ``write_isolated``; returns the spans new
        to the store. A store fault is retried with a growing pause — the spans are safe in the logs, and the
        backlog bound turns new exports away meanwhile — until it passes or the writer closes (``_GiveUp``);
        without ``retry`` it propagates."""
        pause = RETRY_AFTER_FAILURE_S
        while True:
            try:
                written, quarantined = write_isolated(self._store, tables, self._quarantine)
            except STORE_FAULTS as exc:
                self.stats.load_failures += 1
                if not retry:
                    raise
                if self._closing.is_set():
                    raise _GiveUp from exc
                log.error("loading %d acknowledged spans failed (%s: %s); they stay in the logs, retrying in "
                          "%.0f s", sum(t.num_rows for t in tables), type(exc).__name__, exc, pause)
                self._closing.wait(pause)
                pause = min(2 * pause, MAX_RETRY_PAUSE_S)
                continue
            if quarantined:
                self.stats.load_failures += 1
                self.stats.spans_quarantined += quarantined
            return written

    def _load(self, taken: list[_Batch], tables: list[pa.Table]) -> None:
        rows = sum(t.num_rows for t in tables)
        started = time.perf_counter()
        written = self._write(tables)
        self.stats.loads += 1
        self.stats.spans_written += written
        self.stats.spans_duplicate += rows - written
        self.stats.last_load_rows = rows
        self.stats.load_seconds += time.perf_counter() - started
        self.load_latency.observe(time.perf_counter() - started)
        with self._cond:
            self._loaded += sum(item.completes for item in taken)
            self._cond.notify_all()
        self._release(rows)
        if self._first_uncheckpointed is None:
            self._first_uncheckpointed = self._clock()
        self._uncheckpointed.extend((item.future, item.rows) for item in taken if item.completes and not item.logged)
        # Every record of the segments before the last loaded one is now in the store (what waits, the
        # rest of a cut export included, is in that segment or later ones).
        logged = [item.segment for item in taken if item.logged]
        if logged:
            self._discard_at = max(self._discard_at, logged[-1])
        self._rows_since_checkpoint += written
        if (self._rows_since_checkpoint >= self._checkpoint_rows
                or self._clock() - self._first_uncheckpointed >= self._checkpoint_after_s):
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Checkpoint the store, then let go of what the checkpoint made durable in the file."""
        try:
            self._store.checkpoint()
        except CheckpointDeferred as exc:
            log.warning("checkpoint deferred (%s); the logs keep what was loaded since the last one", exc)
            self.stats.checkpoint_failures += 1
            return
        except Exception:
            # Nothing is released: the logs keep every span loaded since the last checkpoint.
            log.exception("checkpoint failed; the logs keep what was loaded since the last one, retried later")
            self.stats.checkpoint_failures += 1
            return
        self.stats.checkpoints += 1
        self._rows_since_checkpoint = 0
        self._first_uncheckpointed = None
        done, self._uncheckpointed = self._uncheckpointed, []
        for future, rows in done:
            future.set_result(rows)
        if self._discard_at:
            self._log.discard_before(self._discard_at)
        reattach = self._reattach_store
        written = getattr(self._store, "attached_rows", 0)
        if reattach is not None and self._reattach_rows and written >= self._reattach_rows:
            self._reattach(reattach)

    def _reattach(self, reattach: Callable[[], bool]) -> None:
        started = time.perf_counter()
        try:
            done = reattach()
        except Exception:
            log.exception("attaching the database file again failed; retried after the next checkpoint")
            return
        if done:
            self.stats.reattaches += 1
            log.info("database file attached again (%.0f ms)", (time.perf_counter() - started) * 1000)
        else:
            log.info("attaching the database file again waited too long for reads; retried after the next checkpoint")

    def _idle(self) -> None:
        """Housekeeping while nobody waits; a failure here must not kill the loader."""
        self._after_full_load = False
        self._ingest_mode(False)
        if self._first_uncheckpointed is not None:
            self._checkpoint()

    # -- readers and shutdown -----------------------------------------------------------------------
    def caught_up(self) -> bool:
        """Whether every span acknowledged so far is loaded: ``sync`` would return at once."""
        with self._cond:
            return self._loaded >= self._acked

    def sync(self, timeout: float = 30.0) -> bool:
        """Wait until every span acknowledged before this call is loaded (queryable). False on timeout."""
        with self._cond:
            target = self._acked
            if self._loaded >= target:
                return True
            self._sync_waiters += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self._loaded >= target, timeout)
            finally:
                self._sync_waiters -= 1

    def close(self, timeout: float | None = 120.0) -> None:
        """Acknowledge and load everything already submitted, then stop both threads."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._submissions.put(None)
        self._closing.set()  # a load failing on the store stops retrying
        self._ack_thread.join(timeout)
        self._load_thread.join(timeout)
        if not self._load_thread.is_alive():
            self._ingest_mode(False)
        with self._cond:
            all_loaded = (not self._load_thread.is_alive() and self._loaded == self._acked
                          and self._first_uncheckpointed is None)
        self._log.close(all_loaded=all_loaded)
