"""The embedded default backend: one DuckDB file in the data directory.

One writer connection (the group-commit thread's) and a fresh cursor per reader, so readers see
committed data only and never block the writer.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from trajscope.memory_budget import parse_bytes
from trajscope.storage.batch_summary import summarise_table
from trajscope.storage.clean_start import (
    DirectoryInUse,
    DirectoryLock,
    leftover_wals,
    remove_unfinished_copies,
    set_aside_wals,
)
from trajscope.storage.interface import (
    CheckpointDeferred,
    StoreInvalidated,
    StoreUnavailable,
    TraceFilter,
    TraceVersion,
)
from trajscope.storage.known_traces import KnownTraces
from trajscope.storage.load_marks import MARK_COLUMN, ranges_of, ranges_sql, stamp, trace_ranges, union_ranges
from trajscope.storage.migrations import mark_range_passes, migrate, record_mark_ranges
from trajscope.storage.schema import (
    JSON_COLUMNS,
    LOG_COLUMN_NAMES,
    LOG_SCHEMA,
    RETRIEVAL_IN,
    RETRIEVAL_OUT,
    ROW_GROUP_ROWS,
    SPAN_COLUMN_NAMES,
    SPAN_SCHEMA,
    SUMMARY_COLUMN_NAMES,
    TRACE_COLUMN_NAMES,
    trace_key,
    trace_key_sql,
)
from trajscope.storage.sql import Where
from trajscope.storage.trace_summary import FACT_COLUMNS
from trajscope.storage.views import install_views

log = logging.getLogger(__name__)

DB_FILE = "trajscope.duckdb"
CHECKPOINT_BACKSTOP = "512MB"
INDEX_SCAN_MAX_ROWS = 2048
CHECKPOINT_FORCE_AFTER = 3
# How long ``reattach`` waits for the reads in progress before it gives up (and new reads wait with it).
REATTACH_WAIT_S = 2.0
STORAGE_VERSION = "v1.5.0"
# Block size of new database files (DuckDB's default is 256 KiB; a file keeps the size it was created with).
# Data appended since the last checkpoint lives in memory in one block per column segment however few rows it
# holds — the trace summaries each load rewrites have dozens of columns with list and struct children —, so
# smaller blocks keep that memory small; much smaller ones cost compression (docs/performance.md).
BLOCK_BYTES = 65_536
_SPAN_COLS = ", ".join(SPAN_COLUMN_NAMES)
# A span column as an insert gives it to the table, and as a read gives it back (schema.RETRIEVAL_IN/OUT).
_SPAN_IN = {"retrieval": RETRIEVAL_IN}
_SPAN_OUT = {"retrieval": f"{RETRIEVAL_OUT} AS retrieval"}
_SPAN_INSERT = ", ".join(_SPAN_IN.get(c, c) for c in SPAN_COLUMN_NAMES)
_LOG_COLS = ", ".join(LOG_COLUMN_NAMES)
_TRACE_COLS = ", ".join(TRACE_COLUMN_NAMES)
_TRACE_INSERT = ", ".join(trace_key_sql("trace_id") if c == "trace_key" else c for c in TRACE_COLUMN_NAMES)
_SUMMARY_COLS = ", ".join(SUMMARY_COLUMN_NAMES)
# What the writer reads back of a touched trace's stored spans: the summary's facts and where each span is.
_STORED_FACTS = (*FACT_COLUMNS, MARK_COLUMN)
_FACT_COLS = ", ".join(_STORED_FACTS)
_FACTS_SCHEMA = pa.schema([SPAN_SCHEMA.field(c) for c in _STORED_FACTS])
_HEX = frozenset("0123456789abcdef")
_JSON = pa.json_()


_SPAN_ORDER = ("start_time_unix_nano", "end_time_unix_nano", "span_id")


def _in_span_order(table: pa.Table, drop: tuple[str, ...] = ()) -> pa.Table:
    """A trace's spans by start, end, span id. Sorted in Arrow rather than by ``ORDER BY``: DuckDB's sort
    materialises every column again (1.5 ms of an 8 ms lookup, 10 ms of a 10k-span trace's fetch)."""
    table = table.sort_by([(key, "ascending") for key in _SPAN_ORDER])
    return table.drop_columns(list(drop)) if drop else table


def _json_typed(spans: pa.Table) -> pa.Table:
    """The JSON columns as Arrow's JSON extension type (zero-copy), which DuckDB stores as JSON as they are;
    plain strings are parsed once more to be validated (a measurable share of a load). Both
    decoders write these columns with orjson, so they are valid JSON by construction (the decoder tests
    parse every one)."""
    columns = []
    for name, column in zip(spans.column_names, spans.columns, strict=True):
        if name in JSON_COLUMNS:
            column = pa.chunked_array([pa.ExtensionArray.from_storage(_JSON, c) for c in column.chunks], _JSON)
        columns.append(column)
    return pa.Table.from_arrays(columns, names=spans.column_names)


def _is_hex_id(value: str) -> bool:
    return len(value) in (16, 32) and set(value) <= _HEX


_IDS_PER_LIST = 2000


def _id_chunks(trace_ids: list[str]) -> Iterator[list[str]]:
    """The ids in chunks of at most ``_IDS_PER_LIST``, to be inlined in SQL as literals: they come from hex() of
    validated bytes, so they are safe to inline."""
    assert all(_is_hex_id(t) for t in trace_ids)
    for start in range(0, len(trace_ids), _IDS_PER_LIST):
        yield trace_ids[start:start + _IDS_PER_LIST]


def _id_lists(trace_ids: list[str]) -> Iterator[str]:
    """SQL ``(…)`` lists of the ids (``_id_chunks``): literals keep a filter on spans from becoming a semi-join
    whose hash table DuckDB may build on the spans side."""
    for chunk in _id_chunks(trace_ids):
        yield "(" + ", ".join(f"'{t}'" for t in chunk) + ")"


def _summaries_of(trace_ids: list[str]) -> Iterator[str]:
    """SQL conditions on ``traces`` that pick the summaries of these trace ids (``_id_chunks``): their keys
    first (``schema.trace_key_sql``; a scan of that one column, which DuckDB does not do for an ``IN`` list on
    the whole row), then the ids themselves."""
    for chunk in _id_chunks(trace_ids):
        if len(chunk) == 1:
            yield f"trace_key = {trace_key(chunk[0])} AND trace_id = '{chunk[0]}'"
            continue
        keys = ", ".join(str(trace_key(t)) for t in chunk)
        ids = ", ".join(f"'{t}'" for t in chunk)
        yield f"rowid IN (SELECT rowid FROM traces WHERE trace_key IN ({keys})) AND trace_id IN ({ids})"


_QUERY_BATCH_ROWS = 4096


def _arrow_batch_rows(expected: int | None) -> int:
    """Rows per Arrow batch for a result of about ``expected`` rows (a power of two, 64 to 1M). DuckDB sizes
    each batch's buffers for the whole batch up front: its default of 1M rows cost an 8-span trace lookup
    ~3.5 ms of its ~9.5 at 10M spans (64 rows: ~5.8 ms in all)."""
    return 1 << max(6, min(20, (expected if expected is not None else 256).bit_length()))


# Result batches of the facts read back for trace summaries: sized from the touched traces, at most this.
_SPANS_PER_TRACE_GUESS = 64
_FACTS_BATCH_MAX = 65_536

# Failures of the store rather than of the spans written: I/O (a full disk), memory, and a database DuckDB
# invalidated after a fatal error (trajscope's logs keep the spans; reopening the store serves again).
_STORE_FAULTS = (OSError, MemoryError, duckdb.IOException, duckdb.OutOfMemoryException, duckdb.FatalException)
_INVALIDATED = "has been invalidated"


def out_of_space(exc: BaseException | None) -> bool:
    """Whether ``exc``, or what it was raised from, is a full disk or quota: it passes once space is freed."""
    while exc is not None:
        if (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) or any(
                words in str(exc) for words in ("No space left on device", "Disk quota exceeded")):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def store_fault(exc: BaseException) -> StoreUnavailable | None:
    """What ``exc``, raised by DuckDB during a write or a checkpoint, says about the store: invalidated (no
    statement succeeds until it is reopened), unavailable for now, or None — not the store's fault."""
    if isinstance(exc, duckdb.FatalException) or _INVALIDATED in str(exc):
        return StoreInvalidated(f"{type(exc).__name__}: {exc}")
    # A commit whose WAL write failed (a full disk) is reported as a transaction error.
    if isinstance(exc, _STORE_FAULTS) or (isinstance(exc, duckdb.TransactionException)
                                          and "Failed to commit" in str(exc)):
        return StoreUnavailable(f"{type(exc).__name__}: {exc}")
    return None


@dataclass(frozen=True)
class Deleted:
    traces: int
    spans: int
    log_records: int

    def __add__(self, other: Deleted) -> Deleted:
        return Deleted(self.traces + other.traces, self.spans + other.spans, self.log_records + other.log_records)


class StoreError(RuntimeError):
    """The database file cannot be opened; the message names the file and what to do, ``reason`` says why."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class DuckDBStore:
    """``SpanStore`` on a DuckDB file. ``path`` is a data directory (created) or ``:memory:``.

    Opening (not read-only) takes the directory's lock, sets aside a WAL DuckDB left (``clean_start``: the
    file opens at its last checkpoint; trajscope's logs hold everything since), migrates the schema and
    checkpoints, so the file itself always holds the schema and every finished migration."""

    def __init__(self, path: str | Path, *, read_only: bool = False, memory_limit: str | None = None,
                 ingest_threads: int | None = None) -> None:
        """``ingest_threads``: DuckDB's thread count while spans are being loaded (``set_ingest_mode``);
        None keeps DuckDB's own count throughout and locks the configuration."""
        self._lock: DirectoryLock | None = None
        self.wal_set_aside: Path | None = None
        self._catalog: str | None = None
        self._readers = threading.local()
        self._reader_lock = threading.Lock()
        self._reader_cursors: list[duckdb.DuckDBPyConnection] = []
        self._read_only = read_only
        self._generation = 0  # attachments of the file so far: a reader cursor of an earlier one is closed
        # Reads in progress, and whether ``reattach`` holds new ones back (``_gate`` guards both).
        self._gate = threading.Condition()
        self._reading = 0
        self._reattaching = False
        self._attached_rows = 0  # spans written since the file was attached (``reattach``)
        self._write_lock = threading.Lock()
        self._held: list[pa.Table] = []  # Arrow tables the open write transaction reads (``_register``)
        self.checkpoints = 0  # completed checkpoints: what was committed before one is in the file
        self._logs_present = True  # until the open finds the log_records table empty
        self._closed = False
        self._checkpoint_refusals = 0  # checkpoints DuckDB refused in a row (``checkpoint``)
        self._known: KnownTraces | None = None
        self._last_mark = 0  # the last load mark given (storage.load_marks)
        if str(path) == ":memory:":
            self.db_path = ":memory:"
        else:
            directory = Path(path)
            if not read_only:
                directory.mkdir(parents=True, exist_ok=True)
            self.db_path = str(directory / DB_FILE)
        # Called (from the thread that met it) when DuckDB invalidates the database: see ``store_fault``.
        self.on_invalidated: Callable[[StoreInvalidated], None] | None = None
        try:
            self._con = self._connect(read_only, memory_limit)
            self._configure(ingest_threads)
            if not read_only:
                self._recover()
        except BaseException:
            con = getattr(self, "_con", None)
            if con is not None:  # an instance DuckDB invalidated is only dropped once closed
                with contextlib.suppress(duckdb.Error):
                    con.close()
            self._release_lock()
            raise

    def _connect(self, read_only: bool, memory_limit: str | None) -> duckdb.DuckDBPyConnection:
        config = self._config(memory_limit)
        if self.db_path == ":memory:":
            return duckdb.connect(self.db_path, config=config)
        db_file = Path(self.db_path)
        if read_only:
            self._refuse_unclean_read(db_file)
        else:
            self._lock = DirectoryLock(db_file.parent)
            self.wal_set_aside = set_aside_wals(db_file)
            remove_unfinished_copies(db_file)
        return self._attach(config, read_only)

    @staticmethod
    def _config(memory_limit: str | None) -> dict[str, str | bool]:
        # New files get a storage format with ZSTD string compression (schema.ZSTD_COLUMNS); existing files
        # keep the format they were created with.
        config: dict[str, str | bool] = {"storage_compatibility_version": STORAGE_VERSION}
        if memory_limit:
            config["memory_limit"] = memory_limit
        return config

    def _attach(self, config: dict[str, str | bool], read_only: bool) -> duckdb.DuckDBPyConnection:
        # Attached rather than opened, because the row group size is an ATTACH option only. The catalog
        # keeps the name a plain open gives it (the file's stem). Spilled intermediates go beside the
        # database file, as when DuckDB opens a file itself (an in-memory default would put them in the
        # working directory).
        db_file = Path(self.db_path)
        con = duckdb.connect(":memory:", config={**config, "temp_directory": f"{self.db_path}.tmp"})
        options = f"STORAGE_VERSION '{STORAGE_VERSION}', ROW_GROUP_SIZE {ROW_GROUP_ROWS}"
        if not read_only and not db_file.exists():
            options += f", BLOCK_SIZE {BLOCK_BYTES}"
        path_sql = self.db_path.replace("'", "''")
        catalog = Path(DB_FILE).stem
        try:
            con.execute(f"ATTACH '{path_sql}' AS {catalog} ({options}{', READ_ONLY' if read_only else ''})")
        except duckdb.IOException as exc:
            con.close()
            if "lock" in str(exc).lower():
                raise DirectoryInUse(f"data directory {db_file.parent} is in use by another process: {exc}") from None
            raise self._unreadable(db_file, exc) from None
        except duckdb.Error as exc:
            con.close()
            raise self._unreadable(db_file, exc) from None
        self._catalog = catalog
        con.execute(f"USE {catalog}")
        return con

    @staticmethod
    def _unreadable(db_file: Path, exc: BaseException) -> StoreError:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return StoreError(f"{db_file} cannot be opened ({reason}); run `trajscope recover --data {db_file.parent}` "
                          "to rebuild it from what is intact", reason)

    @staticmethod
    def _refuse_unclean_read(db_file: Path) -> None:
        """A read-only open would have DuckDB replay a leftover WAL; only a writer recovers the directory."""
        if not leftover_wals(db_file):
            return
        try:
            lock = DirectoryLock(db_file.parent)
        except DirectoryInUse:
            return  # a server has it open: DuckDB's own lock answers
        lock.release()
        raise StoreError(f"{db_file} was not closed cleanly; start `trajscope serve --data {db_file.parent}` "
                         f"on it once, or run `trajscope recover --data {db_file.parent}`, then read it")

    def _configure(self, ingest_threads: int | None) -> None:
        # No query on this instance may touch files or the network (read_csv, COPY, ATTACH, INSTALL, httpfs
        # URLs...): the store itself only ever reads Python-registered Arrow tables and its own file, so
        # the analysts' SQL endpoint can share it safely.
        self._con.execute("SET enable_external_access = false")
        # Up to this many matching rows, a trace_id lookup of a trace's log records goes through the index;
        # past it a scan is faster: index fetches of wide rows are slow. The percentage is zeroed because its
        # default (0.1 % of the table) lifts the bound to 10k rows at 10M.
        self._con.execute(f"SET index_scan_max_count = {INDEX_SCAN_MAX_ROWS}")
        self._con.execute("SET index_scan_percentage = 0")
        # DuckDB checkpoints inside the commit that pushes the WAL past this size, stalling every
        # acknowledgement waiting on it. The loader checkpoints on its own schedule instead
        # (``Loader``); this is only the backstop.
        self._con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_BACKSTOP}'")
        self._query_threads = int(self._con.execute("SELECT current_setting('threads')").fetchone()[0])
        self._ingest_threads = None if ingest_threads is None else max(1, int(ingest_threads))
        self._threads = self._query_threads
        if self._ingest_threads is None:
            # From here on no statement can change a setting (an analyst's SET or PRAGMA fails in the engine).
            # A store that switches its thread count for loads cannot be locked; there the analysts' SQL
            # check alone refuses SET, RESET and PRAGMA (query.analyst_sql).
            self._con.execute("SET lock_configuration = true")

    def _recover(self) -> None:
        """Schema, summaries and the filter of stored traces; the file checkpointed, so that what a WAL
        held (now set aside) is never needed again for the schema."""
        self.schema_version = migrate(self._con)
        install_views(self._con)
        self._backfill_mark_ranges()
        self._backfill_summaries()
        self._con.execute("CHECKPOINT")
        self._known = self._known_traces()
        self._last_mark = self._con.execute(f"SELECT coalesce(max({MARK_COLUMN}), 0) FROM spans").fetchone()[0]
        # A store no exporter has sent logs to answers trace reads without looking for any.
        self._logs_present = bool(self._con.execute("SELECT EXISTS (SELECT 1 FROM log_records)").fetchone()[0])

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # -- writing ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction on the writer connection, serialised with every other writer."""
        with self._write_lock:
            con = self._con
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException as exc:
                try:
                    con.execute("ROLLBACK")
                except duckdb.Error as rollback:
                    # DuckDB may have ended the transaction itself (a failed statement); the first failure is
                    # the one that says what went wrong (a store fault is retried, a bad span quarantined).
                    raise exc from rollback
                raise
            finally:
                self._held.clear()

    def _register(self, con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
        """``table`` readable as ``name`` by the transaction's statements (``con.unregister`` after use), and
        referenced until the transaction has ended, so nothing a statement scanned is freed before the COMMIT."""
        self._held.append(table)
        con.register(name, table)

    def write(self, spans: pa.Table) -> int:
        """See ``SpanStore.write``. Every touched trace is summarised from all its spans, those stored
        before (``_stored_facts``) and the new ones, in one vectorised pass over the load."""
        if spans.num_rows == 0:
            return 0
        with self._faults():
            return self._write(spans)

    @contextlib.contextmanager
    def _faults(self) -> Iterator[None]:
        """DuckDB's failures of the store raised as ``StoreUnavailable`` (``store_fault``); an invalidated
        database is also said to ``on_invalidated``."""
        try:
            yield
        except Exception as exc:
            fault = exc if isinstance(exc, StoreUnavailable) else store_fault(exc)
            if fault is None:
                raise
            if isinstance(fault, StoreInvalidated) and self.on_invalidated is not None:
                self.on_invalidated(fault)
            if fault is exc:
                raise
            raise fault from exc

    def _write(self, spans: pa.Table) -> int:
        with self._transaction() as con:
            trace_ids = pc.unique(spans.column("trace_id"))
            maybe = self._might_be_stored(trace_ids)
            stored, summarised = self._stored_facts(con, sorted(trace_ids.filter(maybe).to_pylist()))
            fresh = self._only_new(spans, stored)
            if fresh.num_rows:
                fresh, self._last_mark = stamp(fresh, self._last_mark, time.time_ns())
                # One thread must insert a load: DuckDB spreads a many-batch Arrow table over its threads, each
                # writing partial row groups that the next checkpoint merges and rewrites, which cost several
                # times the CPU of one batch (docs/performance.md). With one thread (the loading default on
                # two cores) the batches go in as they are, without a copy of the whole load.
                if self._threads > 1:
                    fresh = fresh.combine_chunks()
                self._register(con, "incoming_spans", _json_typed(fresh))
                con.execute(f"INSERT INTO spans ({_SPAN_COLS}) SELECT {_SPAN_INSERT} FROM incoming_spans")
                con.unregister("incoming_spans")
                self._remember(trace_ids, maybe)
                self._attached_rows += fresh.num_rows
                if stored.num_rows:  # only traces with new spans: a repeat alone changes no summary
                    stored = stored.filter(pc.is_in(stored.column("trace_id"), value_set=fresh.column("trace_id")))
                self._write_summaries(con, pa.concat_tables([stored, fresh.select(list(_STORED_FACTS))]), summarised)
        return fresh.num_rows

    def refresh_traces(self, trace_ids: list[str]) -> None:
        """Recompute the summary rows of these traces from their stored spans."""
        with self._transaction() as con:
            self._refresh(con, trace_ids)

    def _refresh(self, con: duckdb.DuckDBPyConnection, trace_ids: list[str]) -> None:
        stored, summarised = self._stored_facts(con, trace_ids)
        self._write_summaries(con, stored, summarised)

    def delete_traces(self, where: Where) -> Deleted:
        """Delete whole traces — every span, log record and the summary — whose ``traces t`` row matches
        ``where``, in one transaction: summaries, sessions and stats never see half a trace. DuckDB reuses the
        freed blocks for new data; the file itself shrinks only with ``trajscope compact``."""
        with self._faults(), self._transaction() as con:
            con.execute(f"CREATE OR REPLACE TEMP TABLE doomed_traces AS SELECT t.project, t.trace_id FROM traces t "
                        f"WHERE {where.sql()}", where.params)
            (traces,) = con.execute("SELECT count(*) FROM doomed_traces").fetchone()
            spans = logs = 0
            if traces:
                doomed = "(project, trace_id) IN (SELECT project, trace_id FROM doomed_traces)"
                (spans,) = con.execute(f"DELETE FROM spans WHERE {doomed}").fetchone()
                (logs,) = con.execute(f"DELETE FROM log_records WHERE {doomed}").fetchone()
                con.execute(f"DELETE FROM traces WHERE {doomed}")
            con.execute("DROP TABLE doomed_traces")
        return Deleted(int(traces), int(spans), int(logs))

    def update_costs(self, updates: pa.Table) -> int:
        """Set ``cost_usd`` and ``cost_source`` of the spans in ``updates`` (trace_id, span_id, cost_usd,
        cost_source) and refresh their traces' summaries, in one transaction. Returns traces refreshed."""
        if updates.num_rows == 0:
            return 0
        trace_ids = sorted(set(updates.column("trace_id").to_pylist()))
        with self._transaction() as con:
            self._register(con, "cost_updates", updates)
            con.execute("UPDATE spans SET cost_usd = u.cost_usd, cost_source = u.cost_source "
                        "FROM cost_updates u WHERE spans.trace_id = u.trace_id AND spans.span_id = u.span_id")
            con.unregister("cost_updates")
            self._refresh(con, trace_ids)
        return len(trace_ids)

    def _backfill_mark_ranges(self) -> None:
        """Record where the spans of traces stored before schema version 6 are (``migrations.record_mark_ranges``),
        one trace-id prefix per transaction, with a progress line every few seconds: a stop part-way leaves the
        rest for the next start (a trace without ranges is read from every row meanwhile)."""
        (missing,) = self._con.execute("SELECT count(*) FROM traces WHERE mark_ranges IS NULL").fetchone()
        if not missing:
            return
        (spans,) = self._con.execute("SELECT count(*) FROM spans").fetchone()
        passes = [*mark_range_passes(spans), None]  # None: any left (ids that are not lowercase hex)
        log.warning("recording where the spans of %d stored traces are (%d passes)", missing, len(passes))
        done, said = 0, time.monotonic()
        for n, prefix in enumerate(passes, 1):
            with self._transaction() as con:
                done += record_mark_ranges(con, prefix)
            if time.monotonic() - said >= 5 or n == len(passes):
                said = time.monotonic()
                log.warning("  %d / %d traces recorded (pass %d / %d)", done, missing, n, len(passes))

    def _backfill_summaries(self, chunk: int = 2000) -> None:
        """Fill summary columns that a migration added (NULL on rows written before it)."""
        stale = [r[0] for r in self._con.execute(
            "SELECT trace_id FROM traces WHERE critical_breakdown IS NULL OR guardrail_hits IS NULL").fetchall()]
        if not stale:
            return
        log.warning("recomputing %d trace summaries for the new schema", len(stale))
        for i in range(0, len(stale), chunk):
            self.refresh_traces(stale[i:i + chunk])
            log.warning("  %d / %d trace summaries recomputed", min(i + chunk, len(stale)), len(stale))

    def _known_traces(self, at_least: int = 0) -> KnownTraces:
        """The filter of stored trace ids, from the ``traces`` table (every stored span's trace has its row,
        written in the same transaction), sized for twice what is stored."""
        (stored,) = self._con.execute("SELECT count(*) FROM traces").fetchone()
        known = KnownTraces(max(2 * stored, at_least))
        # In batches: 10M traces' ids at once would be ~400 MB of Arrow.
        reader = self._con.execute("SELECT trace_id FROM traces").to_arrow_reader(1 << 20)
        for batch in reader:
            known.add(batch.column(0))
        return known

    def _might_be_stored(self, trace_ids: pa.Array) -> pa.BooleanArray:
        """Per trace id, False where the filter rules out that any of its spans is stored."""
        if self._known is None:
            return pa.array([True] * len(trace_ids), pa.bool_())
        return pa.array(self._known.might_contain(trace_ids))

    def _remember(self, trace_ids: pa.Array, maybe: pa.BooleanArray) -> None:
        """Add a load's traces to the filter: those it ruled out (the others are in it already, or were false
        positives, which only cost a lookup). Before the commit: a rolled-back load leaves only false
        positives too."""
        if self._known is None:
            return
        new = trace_ids.filter(pc.invert(maybe))
        if self._known.count + len(new) > self._known.capacity:
            # Rebuilt from the table, where none of this load's traces new to the store has a row yet — also
            # not one the old filter mistook for stored: so every trace of the load is added again.
            self._known = self._known_traces(at_least=2 * (self._known.count + len(new)))
            new = trace_ids
        self._known.add(new)

    @staticmethod
    def _only_new(spans: pa.Table, stored: pa.Table) -> pa.Table:
        """Drop spans already stored, and repeats within the batch: writes are idempotent.

        Only the writer thread inserts, so what ``_stored_facts`` read is still true at insert time; that
        is why no unique index is needed (one ART index fewer on the hot path)."""
        keys = pc.binary_join_element_wise(spans.column("trace_id"), spans.column("span_id"), "")
        if pc.count_distinct(keys).as_py() == spans.num_rows:
            # No repeats within the batch (the usual case), decided without a Python object per span; a
            # load that meets traces already stored (cut by an earlier load) drops the stored spans in Arrow.
            if stored.num_rows == 0:
                return spans
            stored_keys = pc.binary_join_element_wise(stored.column("trace_id"), stored.column("span_id"), "")
            repeat = pc.is_in(keys, value_set=stored_keys)
            return spans.filter(pc.invert(repeat)) if pc.any(repeat).as_py() else spans
        seen = set(zip(stored.column("trace_id").to_pylist(), stored.column("span_id").to_pylist(), strict=True))
        keep = []
        for key in zip(spans.column("trace_id").to_pylist(), spans.column("span_id").to_pylist(), strict=True):
            keep.append(key not in seen)
            seen.add(key)
        return spans if all(keep) else spans.filter(pa.array(keep))

    def _stored_facts(self, con: duckdb.DuckDBPyConnection, trace_ids: list[str]) -> tuple[pa.Table, pa.Table]:
        """The summary's columns and the load mark (``_STORED_FACTS``) of every stored span of these traces, and
        their summary rows (``trace_id``, ``rowid``: what a new summary replaces). The spans are read through the
        summaries' mark ranges, joined into one set of scans (``union_ranges``) that the zone maps prune to the
        rows they cover; traces whose rows found differ from their summaries' span counts (ranges that do not
        cover them, which no write leaves) are read again from every row."""
        counts: dict[str, int] = {}
        rows: list[tuple[str, int]] = []
        ranges: list[tuple[int, int]] = []
        whole: list[str] = []
        for chosen in _summaries_of(trace_ids):
            for trace_id, span_count, stored, rowid in con.execute(
                    f"SELECT trace_id, span_count, mark_ranges, rowid FROM traces WHERE {chosen}").fetchall():
                counts[trace_id] = span_count
                rows.append((trace_id, rowid))
                if stored:
                    ranges.extend(ranges_of(stored))
                else:
                    whole.append(trace_id)
        summarised = pa.Table.from_arrays([pa.array([r[0] for r in rows], pa.string()),
                                           pa.array([r[1] for r in rows], pa.int64())], names=["trace_id", "rowid"])
        if not counts:
            return _FACTS_SCHEMA.empty_table(), summarised
        facts = self._facts_of(con, list(counts), union_ranges(ranges) if not whole else None)
        found = dict(zip(*(c.to_pylist() for c in pc.value_counts(facts.column("trace_id")).flatten()), strict=True))
        missed = [t for t, n in counts.items() if found.get(t, 0) != n]
        if missed:
            log.warning("%d trace(s) not where their summaries place them: read from every row", len(missed))
            facts = pa.concat_tables([
                facts.filter(pc.invert(pc.is_in(facts.column("trace_id"), value_set=pa.array(missed)))),
                self._facts_of(con, missed, None)])
        return facts, summarised

    @staticmethod
    def _facts_of(con: duckdb.DuckDBPyConnection, trace_ids: list[str],
                  ranges: list[tuple[int, int]] | None) -> pa.Table:
        """``_STORED_FACTS`` of these traces' spans, from those ranges of load marks (None: every row)."""
        conds = [""] if ranges is None else [f"{cond} AND " for cond in ranges_sql(ranges)]
        if not trace_ids or not conds:
            return _FACTS_SCHEMA.empty_table()
        # Batches sized for what a few dozen spans per trace need, not DuckDB's default of 1M rows, whose
        # buffers every load would allocate in full.
        batch = _arrow_batch_rows(min(len(trace_ids) * _SPANS_PER_TRACE_GUESS, _FACTS_BATCH_MAX))
        parts = [_FACTS_SCHEMA.empty_table()]
        for in_list in _id_lists(trace_ids):
            scans = " UNION ALL ".join(f"SELECT {_FACT_COLS} FROM spans WHERE {cond}trace_id IN {in_list}"
                                       for cond in conds)
            parts.append(con.execute(scans).to_arrow_table(batch).cast(_FACTS_SCHEMA))
        return pa.concat_tables(parts)

    def _write_summaries(self, con: duckdb.DuckDBPyConnection, spans: pa.Table, known: pa.Table) -> None:
        """Summaries of the traces whose every stored span is in ``spans`` (``_STORED_FACTS``), with the ranges
        of their spans' load marks, replacing the ``known`` summary rows (``_stored_facts``) of those traces.
        Only the writer thread writes summaries, so the rows found are still there, where they were."""
        if spans.num_rows == 0:
            return
        table = summarise_table(spans, time.time_ns())
        ids, ranges = trace_ranges(spans.column("trace_id").combine_chunks(),
                                   spans.column(MARK_COLUMN).to_numpy())
        table = table.append_column("mark_ranges", ranges.take(pc.index_in(table.column("trace_id"), value_set=ids)))
        replaced = known.filter(pc.is_in(known.column("trace_id"), value_set=table.column("trace_id").combine_chunks()))
        rowids = replaced.column("rowid").to_pylist()
        for start in range(0, len(rowids), _IDS_PER_LIST):
            # A list of rowids unnested: DuckDB fetches those rows, where an ``IN`` list of them scans the table.
            listed = ", ".join(map(str, rowids[start:start + _IDS_PER_LIST]))
            con.execute(f"DELETE FROM traces WHERE rowid IN (SELECT unnest([{listed}]))")
        self._register(con, "incoming_traces", table.combine_chunks())
        con.execute(f"INSERT INTO traces ({_TRACE_COLS}) SELECT {_TRACE_INSERT} FROM incoming_traces")
        con.unregister("incoming_traces")

    # -- reading ------------------------------------------------------------------------------------
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection for one reader thread, seeing committed data only."""
        cursor = self._con.cursor()
        if self._catalog is not None:  # a cursor starts in the in-memory catalog the file is attached to
            cursor.execute(f"USE {self._catalog}")
        return cursor

    @contextlib.contextmanager
    def _reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """This thread's cursor for the store's own reads, kept open: a new cursor and its ``USE`` cost
        ~0.4 ms here, a twentieth of a trace lookup."""
        with self._read_turn():
            cursor = getattr(self._readers, "cursor", None)
            if cursor is None or self._readers.generation != self._generation:
                cursor = self.cursor()
                self._readers.cursor = cursor
                self._readers.generation = self._generation
                with self._reader_lock:
                    self._reader_cursors.append(cursor)
            yield cursor

    @contextlib.contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A fresh cursor for one caller's reads (analyst SQL), closed after; ``reattach`` waits for it."""
        with self._read_turn(), self.cursor() as cursor:
            yield cursor

    @contextlib.contextmanager
    def _read_turn(self) -> Iterator[None]:
        """One read in progress. A new read waits while ``reattach`` runs; a read nested in one this thread has
        in progress does not (it would wait for itself)."""
        depth = getattr(self._readers, "depth", 0)
        with self._gate:
            while self._reattaching and depth == 0:
                self._gate.wait()
            self._reading += 1
        self._readers.depth = depth + 1
        try:
            yield
        finally:
            self._readers.depth = depth
            with self._gate:
                self._reading -= 1
                if self._reading == 0:
                    self._gate.notify_all()

    def get_trace(self, trace_id: str, project: str | None = None,
                  columns: tuple[str, ...] | None = None, window: TraceVersion | None = None) -> pa.Table:
        """The trace's spans (of ``project`` only, if given), read as one scan per range of its summary's
        ``mark_ranges`` (``window``, read here when not given). The rows found are checked against the
        summary's span count: a write between the two reads, or ranges that do not cover the trace, lead to
        the summary read again, then to a scan of every row."""
        empty = SPAN_SCHEMA.empty_table() if columns is None else SPAN_SCHEMA.empty_table().select(columns)
        if not _is_hex_id(trace_id):
            return empty
        unknown = set(columns or ()) - set(SPAN_COLUMN_NAMES)
        if unknown:
            raise ValueError(f"no such span column(s): {sorted(unknown)}")
        # The span order's keys (and the project, to filter on) are fetched even when the caller did not ask
        # for them, and dropped after.
        extra = () if columns is None else tuple(k for k in (*_SPAN_ORDER, "project") if k not in columns)
        cols = ", ".join(_SPAN_OUT.get(c, c) for c in (SPAN_COLUMN_NAMES if columns is None else columns + extra))
        with self._reader() as cur:
            table = self._by_ranges(cur, trace_id, cols, window)
            if table is None:
                return empty
        if project is not None:
            table = table.filter(pc.equal(table.column("project"), project))
        return _in_span_order(table, extra)

    def _by_ranges(self, cur: duckdb.DuckDBPyConnection, trace_id: str, cols: str,
                   window: TraceVersion | None) -> pa.Table | None:
        """All the trace's rows (every project), as ``get_trace`` reads them; None when it has no summary."""
        where = f"trace_id = '{trace_id}'"
        for attempt in range(2):
            if window is None or attempt:
                # Unscoped: a trace's spans may name other projects than its summary's root does.
                window = self.trace_version(trace_id)
                if window is None:
                    return None
            if window.mark_ranges:
                scans = " UNION ALL ".join(f"SELECT {cols} FROM spans WHERE {cond} AND {where}"
                                           for cond in ranges_sql(window.mark_ranges))
                table = cur.execute(scans).to_arrow_table(_arrow_batch_rows(window.span_count))
                if table.num_rows == window.span_count:
                    return table
        return cur.execute(f"SELECT {cols} FROM spans WHERE {where}").to_arrow_table(
            _arrow_batch_rows(window.span_count))

    def trace_version(self, trace_id: str, project: str | None = None) -> TraceVersion | None:
        """The trace's summary version, extent and where its spans are — ``updated_at`` changes whenever a
        write touches the trace — or None if unknown. One scan of the summaries' keys."""
        if not _is_hex_id(trace_id):
            return None
        (chosen,) = _summaries_of([trace_id])
        sql = (f"SELECT updated_at_unix_nano, span_count, start_time_unix_nano, end_time_unix_nano, mark_ranges "
               f"FROM traces WHERE {chosen}")
        params: list[object] = []
        if project is not None:
            sql += " AND project = ?"
            params.append(project)
        with self._reader() as cur:
            row = cur.execute(sql, params).fetchone()
        return TraceVersion(*row[:4], ranges_of(row[4])) if row else None

    def list_traces(self, flt: TraceFilter) -> pa.Table:
        where = Where()
        for column, value in (("project", flt.project), ("service_name", flt.service),
                              ("agent_name", flt.agent), ("session_id", flt.session_id),
                              ("start_time_unix_nano >=", flt.since_unix_nano),
                              ("start_time_unix_nano <", flt.until_unix_nano),
                              ("duration_ns >=", flt.min_duration_ns)):
            where.add_if(value, f"{column} ?" if " " in column else f"{column} = ?")
        if flt.errors_only:
            where.add("error_count > 0")
        if flt.min_cost_usd is not None:
            where.add("cost_usd >= ?", flt.min_cost_usd)
        if flt.guardrail_hits_only:
            where.add("guardrail_hits > 0")
        if flt.search:
            text = flt.search.lower()
            if _is_hex_id(text) and len(text) == 32:
                where.add(f"trace_key = {trace_key(text)} AND trace_id = ?", text)
            else:
                # Span ids through the index would need the trace id; a name or span id search scans spans.
                where.add("(trace_id IN (SELECT trace_id FROM spans WHERE span_id = ? OR name ILIKE ?) "
                          "OR root_name ILIKE ?)", text, f"%{text}%", f"%{text}%")
        if flt.after is not None:
            where.add("(start_time_unix_nano, trace_id) < (?, ?)", *flt.after)
        sql = (f"SELECT {_SUMMARY_COLS} FROM traces WHERE {where.sql()} "
               "ORDER BY start_time_unix_nano DESC, trace_id DESC LIMIT ?")
        params = [*where.params, flt.limit]
        with self._reader() as cur:
            return cur.execute(sql, params).to_arrow_table(_arrow_batch_rows(flt.limit))

    def query(self, sql: str, params: list[object] | None = None) -> pa.Table:
        """Run a read query over the trace tables (``spans``, ``traces``) on a fresh reader cursor."""
        with self._reader() as cur:
            # Most callers read a handful of grouped rows; large results just come in more batches.
            return cur.execute(sql, params or []).to_arrow_table(_QUERY_BATCH_ROWS)

    def checkpoint(self) -> None:
        """Write what was loaded since the last checkpoint into the file. DuckDB refuses while another transaction
        it counts as writing is open (seen with readers scanning data not yet checkpointed): that raises
        ``CheckpointDeferred``, and after ``CHECKPOINT_FORCE_AFTER`` refusals in a row the checkpoint waits for
        those transactions instead (``FORCE CHECKPOINT``), so what waits in memory for a checkpoint stays
        bounded under any read load."""
        with self._write_lock, self._faults():
            forced = self._checkpoint_refusals >= CHECKPOINT_FORCE_AFTER
            try:
                self._con.execute("FORCE CHECKPOINT" if forced else "CHECKPOINT")
            except duckdb.TransactionException as exc:
                if forced or "other write transactions" not in str(exc):
                    raise
                self._checkpoint_refusals += 1
                raise CheckpointDeferred(str(exc).split("\n")[0]) from None
            self._checkpoint_refusals = 0
            self.checkpoints += 1

    @property
    def attached_rows(self) -> int:
        """Spans written since the database file was attached (opened or ``reattach``)."""
        return self._attached_rows

    def reattach(self, wait_s: float = REATTACH_WAIT_S) -> bool:
        """Checkpoint, close the database and attach its file again, with the same settings. DuckDB keeps the
        description of every row group it wrote (column segments, statistics) and the index nodes it touched
        in memory for as long as the database stays attached: with a steady stream that grows with the
        store, outside any memory cap. Attached again, the file's metadata is read back only as reads and
        writes need it. Writes wait; new reads wait too, for at most the reads in progress (up to ``wait_s``:
        past it nothing is done and False is returned, so no read waits longer than that)."""
        if self.db_path == ":memory:" or self._read_only or self._closed:
            return False
        with self._write_lock, self._faults():
            with self._gate:
                self._reattaching = True
                drained = self._gate.wait_for(lambda: self._reading == 0, timeout=wait_s)
            try:
                if not drained:
                    return False
                self._con.execute("CHECKPOINT")
                limit = self._con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
                with self._reader_lock:
                    for cursor in self._reader_cursors:
                        cursor.close()
                    self._reader_cursors.clear()
                    self._generation += 1
                self._con.close()
                threads = self._threads
                try:
                    self._con = self._attach(self._config(limit), read_only=False)
                except StoreError as exc:
                    # Closed and not attached again: nothing works on this instance until the store is
                    # reopened, which is what an invalidated database gets (the server restarts in place).
                    raise StoreInvalidated(f"the database file could not be attached again: {exc}") from exc
                self._configure(self._ingest_threads)
                if threads != self._threads:
                    self._con.execute(f"SET threads = {threads}")
                    self._threads = threads
                self._attached_rows = 0
                return True
            finally:
                with self._gate:
                    self._reattaching = False
                    self._gate.notify_all()

    def write_logs(self, records: pa.Table) -> int:
        """Store OTLP log records (``schema.LOG_SCHEMA``); records already stored (same project and record id:
        a replay or a client's retry) are skipped. Returns the records added."""
        if records.num_rows == 0:
            return 0
        with self._faults():
            with self._transaction() as con:
                self._register(con, "incoming_logs", records)
                try:
                    added = con.execute(f"""
                        INSERT INTO log_records ({_LOG_COLS})
                        SELECT {_LOG_COLS} FROM incoming_logs i
                        WHERE NOT EXISTS (SELECT 1 FROM log_records l
                                          WHERE l.project = i.project AND l.record_id = i.record_id)
                    """).fetchone()
                finally:
                    con.unregister("incoming_logs")
            self._logs_present = True
            return int(added[0]) if added else 0

    def log_count(self, trace_id: str, project: str | None = None) -> int:
        """How many log records a trace has: part of what a cached analysis of it depends on."""
        if not self._logs_present or not _is_hex_id(trace_id):
            return 0
        where = Where().add("trace_id = ?", trace_id).add_if(project, "project = ?")
        with self._reader() as cur:
            return int(cur.execute(f"SELECT count(*) FROM log_records WHERE {where.sql()}", where.params)
                       .fetchone()[0])

    def get_logs(self, trace_id: str, project: str | None = None) -> pa.Table:
        """A trace's log records, oldest first."""
        if not self._logs_present or not _is_hex_id(trace_id):
            return LOG_SCHEMA.empty_table()
        where = Where().add("trace_id = ?", trace_id).add_if(project, "project = ?")
        with self._reader() as cur:
            return cur.execute(f"SELECT {_LOG_COLS} FROM log_records WHERE {where.sql()} "
                               "ORDER BY time_unix_nano, ingested_at_unix_nano, record_id", where.params
                               ).to_arrow_table(_arrow_batch_rows(None))

    def memory_limit(self) -> int:
        """DuckDB's memory cap now, in bytes."""
        with self._reader() as cur:
            limit = parse_bytes(cur.execute("SELECT current_setting('memory_limit')").fetchone()[0])
        assert limit is not None
        return limit

    def set_memory_limit(self, limit: int) -> bool:
        """Change DuckDB's memory cap (bytes); False where the configuration is locked (``ingest_threads``
        None) or DuckDB refused."""
        if self._ingest_threads is None or self._closed:
            return False
        try:
            with self._reader() as cur:
                cur.execute(f"SET memory_limit = '{limit // 2**20}MiB'")
        except duckdb.Error as exc:
            log.warning("DuckDB refused a memory cap of %d MiB: %s", limit >> 20, exc)
            return False
        return True

    def memory_by_tag(self) -> dict[str, int]:
        """DuckDB's buffer memory in use by what holds it (``duckdb_memory()``: table blocks, indexes, …)."""
        if self._closed:
            return {}
        with self._reader() as cur:
            return {tag: int(used) for tag, used in cur.execute(
                "SELECT tag, memory_usage_bytes FROM duckdb_memory() WHERE memory_usage_bytes > 0").fetchall()}

    def set_ingest_mode(self, loading: bool) -> None:
        """Switch DuckDB to ``ingest_threads`` while a burst of loads runs (``loading``) and back to its own
        thread count after.

        A load is one Arrow batch inserted on the loader's thread, yet with a second DuckDB thread the
        server spent more CPU per span: DuckDB's own thread picks up parts of each load and the loader waits
        for it in a loop, on a machine whose cores the decode workers already keep busy. Queries want the
        threads, so they get them back once loading pauses (both measured: docs/performance.md)."""
        if self._ingest_threads is None or self._closed:
            return
        want = self._ingest_threads if loading else self._query_threads
        if want == self._threads:
            return
        with self._write_lock:
            self._con.execute(f"SET threads = {want}")
            self._threads = want

    @property
    def threads(self) -> int:
        """DuckDB's thread count now."""
        return self._threads

    def close(self) -> None:
        if self._closed:
            return
        with self._write_lock:
            self._closed = True
            # Every thread's reader too: an open cursor keeps the database file open (and locked).
            with self._reader_lock:
                for cursor in self._reader_cursors:
                    cursor.close()
                self._reader_cursors.clear()
            self._con.close()
            self._release_lock()
