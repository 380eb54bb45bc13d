"""Forward-only schema migrations, applied in order on open.

The applied version is recorded in ``schema_version``. A migration is never edited once released: a
change to the schema is a new entry at the end. Version 1 creates the columns that ``schema`` marks as
present at version 1; a later version adds its columns (``schema.ADDED_IN_VERSION``) and any index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import duckdb
import pyarrow as pa

from trajscope.analysis.retrieval import stored_record
from trajscope.storage.load_marks import MARK_COLUMN, trace_ranges
from trajscope.storage.schema import (
    ADDED_IN_VERSION,
    LOG_COLUMNS,
    RETRIEVAL,
    RETRIEVAL_IN,
    SPAN_COLUMNS,
    TRACE_COLUMNS,
    columns_ddl,
    struct_sql,
    trace_key_sql,
)

log = logging.getLogger(__name__)


def _v1(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"""
        CREATE TABLE spans (
            {columns_ddl(SPAN_COLUMNS, 1)}
        )""")
    # Trace lookups, and the writer's dedup and summary refresh, go through this index. (trace_id,
    # span_id) is unique by construction of the single writer, not by a second index: see DuckDBStore.)
    con.execute("CREATE INDEX spans_trace_id ON spans (trace_id)")
    con.execute(f"""
        CREATE TABLE traces (
            {columns_ddl(TRACE_COLUMNS, 1)},
            PRIMARY KEY (trace_id)
        )""")


def _add_columns(version: int) -> Callable[[duckdb.DuckDBPyConnection], None]:
    """A migration that adds the columns ``schema.ADDED_IN_VERSION`` assigns to ``version``. Existing rows
    get NULL; ``DuckDBStore`` backfills what can be recomputed from the stored spans."""

    def migration(con: duckdb.DuckDBPyConnection) -> None:
        for table, columns in (("spans", SPAN_COLUMNS), ("traces", TRACE_COLUMNS)):
            for name, _, sql, _ in columns:
                if ADDED_IN_VERSION.get(name) == version:
                    con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {sql}")

    return migration


def _v3(con: duckdb.DuckDBPyConnection) -> None:
    _add_columns(3)(con)
    # Costs stored before version 3 were all reported ones; `trajscope reprice` prices the rest.
    con.execute("UPDATE spans SET cost_source = 'reported' WHERE cost_usd IS NOT NULL")


def _v4(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"""
        CREATE TABLE log_records (
            {columns_ddl(LOG_COLUMNS, 4)}
        )""")
    con.execute("CREATE INDEX log_records_trace_id ON log_records (trace_id)")


def _v5(con: duckdb.DuckDBPyConnection) -> None:
    # Added as the STRUCT it was then; version 7 makes it a list of one (schema.RETRIEVAL_IN).
    con.execute(f"ALTER TABLE spans ADD COLUMN retrieval {struct_sql(RETRIEVAL)}")
    # Retrieval steps stored before version 5 get their record from the attributes and events they kept.
    rows = con.execute("""
        SELECT trace_id, span_id, category, name, attributes, events FROM spans
        WHERE category IN ('retriever', 'reranker')
           OR (events IS NOT NULL AND (contains(CAST(events AS VARCHAR), '"db.query.result"')
                                       OR contains(CAST(events AS VARCHAR), '"db.search.result"')))""").fetchall()
    found = []
    for trace_id, span_id, category, name, attributes, events in rows:
        record = stored_record(attributes, events, category, name)
        if record:
            found.append({"trace_id": trace_id, "span_id": span_id, "retrieval": record})
    if found:
        log.warning("recording %d retrieval steps stored before schema version 5", len(found))
        updates = pa.Table.from_pylist(found, pa.schema([("trace_id", pa.string()), ("span_id", pa.string()),
                                                         ("retrieval", RETRIEVAL)]))
        con.register("retrieval_updates", updates)
        con.execute("UPDATE spans SET retrieval = u.retrieval FROM retrieval_updates u "
                    "WHERE spans.trace_id = u.trace_id AND spans.span_id = u.span_id")
        con.unregister("retrieval_updates")


def _v6(con: duckdb.DuckDBPyConnection) -> None:
    _add_columns(6)(con)
    # Traces are read through their summaries' mark ranges (storage.load_marks) from now on: the index on
    # spans.trace_id, which kept every stored span's id in memory, goes. The ranges of traces stored before
    # are recorded after the migration, in passes of their own (``mark_range_passes``); until then their
    # reads look at every row.
    con.execute("DROP INDEX IF EXISTS spans_trace_id")


def _v7(con: duckdb.DuckDBPyConnection) -> None:
    # A retrieval step as a list of one rather than a top-level STRUCT, which DuckDB 1.5 crashes appending in
    # small commits (schema.RETRIEVAL_IN). Only this column is rewritten; most spans hold NULL.
    con.execute(f"ALTER TABLE spans ALTER retrieval SET DATA TYPE {struct_sql(RETRIEVAL)}[] USING {RETRIEVAL_IN}")


def _v8(con: duckdb.DuckDBPyConnection) -> None:
    # No primary key on traces (schema.trace_key_sql): DuckDB cannot drop one, so the table is built again,
    # with each summary's ``trace_key``. Views name tables at query time; they are recreated on open anyway.
    (count,) = con.execute("SELECT count(*) FROM traces").fetchone()
    if count:
        log.warning("rebuilding the trace summaries without their primary key (%d traces)", count)
    before = ", ".join(name for name, *_ in TRACE_COLUMNS if ADDED_IN_VERSION.get(name, 1) < 8)
    con.execute(f"CREATE TABLE traces_v8 ({columns_ddl(TRACE_COLUMNS, 8)})")
    con.execute(f"INSERT INTO traces_v8 ({before}, trace_key) SELECT {before}, {trace_key_sql('trace_id')} "
                "FROM traces")
    con.execute("DROP TABLE traces")
    con.execute("ALTER TABLE traces_v8 RENAME TO traces")


# Spans per pass of ``record_mark_ranges`` when a store records the ranges of traces stored before version 6:
# each pass is its own transaction, sized so that its window over the spans fits a small memory cap.
MARK_PASS_SPANS = 1_000_000


def mark_range_passes(spans: int, per_pass: int | None = None) -> list[str]:
    """Trace-id prefixes (lowercase hex) that cut ``spans`` stored spans into passes of about ``per_pass``
    (``MARK_PASS_SPANS``)."""
    per_pass = per_pass or MARK_PASS_SPANS
    digits = 1
    while spans > per_pass * 16 ** digits and digits < 4:
        digits += 1
    return [format(i, f"0{digits}x") for i in range(16 ** digits)]


def record_mark_ranges(con: duckdb.DuckDBPyConnection, prefix: str | None = None) -> int:
    """Set ``mark_ranges`` of the summaries still without one — of trace ids starting with ``prefix`` (None: any)
    — from their traces' stored spans, by the write path's own ``load_marks.trace_ranges``. Returns the
    summaries set."""
    if prefix is None:
        chosen = "trace_id IN (SELECT trace_id FROM traces WHERE mark_ranges IS NULL)"
    else:
        assert all(c in "0123456789abcdef" for c in prefix)
        chosen = f"starts_with(trace_id, '{prefix}')"
    marks = con.execute(f"SELECT trace_id, {MARK_COLUMN} FROM spans WHERE {chosen}").to_arrow_table()
    if marks.num_rows == 0:
        return 0
    ids, ranges = trace_ranges(marks.column("trace_id").combine_chunks(), marks.column(MARK_COLUMN).to_numpy())
    con.register("recorded_ranges", pa.table({"trace_id": ids, "ranges": ranges}))
    try:
        (updated,) = con.execute("UPDATE traces SET mark_ranges = r.ranges FROM recorded_ranges r "
                                 "WHERE traces.trace_id = r.trace_id AND traces.mark_ranges IS NULL").fetchone()
    finally:
        con.unregister("recorded_ranges")
    return int(updated)


MIGRATIONS: tuple[Callable[[duckdb.DuckDBPyConnection], None], ...] = (
    _v1,
    _add_columns(2),  # traces.critical_breakdown, traces.usage_breakdown (issue #3 stats)
    _v3,  # spans.cost_source (issue #6 pricing)
    _v4,  # log_records (issue #22: GenAI events as OTLP logs)
    _v5,  # spans.retrieval (issue #24: retrieval steps)
    _v6,  # traces.mark_ranges, no index on spans.trace_id (issue #23: memory that does not grow with the store)
    _v7,  # spans.retrieval a list of one step (issue #23: a crash in DuckDB's commit of a STRUCT column)
    _v8,  # traces.trace_key, no primary key on traces (issue #23: memory that does not grow with the store)
)
LATEST_VERSION = len(MIGRATIONS)


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP)")
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the database to ``LATEST_VERSION``; each step commits on its own. Returns the version."""
    version = current_version(con)
    if version > LATEST_VERSION:
        raise RuntimeError(
            f"data directory has schema version {version}, newer than this trajscope ({LATEST_VERSION}); "
            "upgrade trajscope"
        )
    for target in range(version + 1, LATEST_VERSION + 1):
        con.execute("BEGIN")
        try:
            MIGRATIONS[target - 1](con)
            con.execute("INSERT INTO schema_version VALUES (?, now())", [target])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        log.info("schema migrated to version %d", target)
    return LATEST_VERSION
