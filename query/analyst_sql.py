"""Analysts' own SQL, safely: one read statement, a deadline, a row limit.

The engine enforces files, network and writes; the statement check enforces settings:
- the store's DuckDB instance runs with external access disabled (no files, no network, no ATTACH,
  no INSTALL) — see ``DuckDBStore``; its configuration is locked too unless the store switches its thread
  count for loads (``DuckDBStore.set_ingest_mode``, the server's default);
- DuckDB's own parser must find exactly one statement, of type SELECT (which covers WITH, FROM-first,
  DESCRIBE, SHOW and SUMMARIZE) or an EXPLAIN of one: no writes, DDL, COPY, ATTACH, SET, EXPORT, CALL...
  (``EXPLAIN ANALYZE`` runs the statement it explains, so what it wraps is checked the same way);
- the query runs on its own cursor inside a transaction that is always rolled back, so a write that got
  past the check would still never be committed; it is interrupted at the deadline.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass
from enum import StrEnum

import duckdb
import pyarrow as pa

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_LIMIT = 10_000
MAX_LIMIT = 1_000_000
# DuckDB parses these as SELECTs over table functions; they change or reveal settings, so refuse them by
# name too, before parsing.
_REFUSED_KEYWORDS = re.compile(r"^\s*(pragma|set|reset|call|attach|detach|copy|install|load|export|import|use)\b",
                               re.IGNORECASE)
# What an EXPLAIN statement wraps starts after this (comments may come first; options in parentheses).
_EXPLAIN_PREFIX = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*explain\b(?:\s+analy[sz]e\b)?\s*(?:\([^)]*\))?",
                             re.IGNORECASE | re.DOTALL)


class SqlErrorCode(StrEnum):
    INVALID_SQL = "invalid_sql"
    FORBIDDEN = "forbidden"
    TIMEOUT = "timeout"
    TOO_LARGE = "too_large"


class SqlError(Exception):
    def __init__(self, code: SqlErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SqlResult:
    table: pa.Table
    truncated: bool
    elapsed_ms: float


def check_statement(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise ``SqlError`` unless ``sql`` is exactly one read statement."""
    if not sql or not sql.strip():
        raise SqlError(SqlErrorCode.INVALID_SQL, "no SQL given")
    refused = SqlError(SqlErrorCode.FORBIDDEN, "only read queries (SELECT, WITH, EXPLAIN, DESCRIBE) are "
                       f"allowed; got {sql.split(None, 1)[0].upper()}")
    # Before parsing: DuckDB's parser already reads files for some statements (IMPORT DATABASE).
    if _REFUSED_KEYWORDS.match(sql):
        raise refused
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise classify(exc) from None
    if len(statements) != 1:
        raise SqlError(SqlErrorCode.FORBIDDEN, f"exactly one statement is allowed, got {len(statements)}")
    kind = statements[0].type
    if kind == duckdb.StatementType.EXPLAIN:
        # EXPLAIN ANALYZE executes what it explains: `EXPLAIN ANALYZE DELETE FROM traces` deletes. So what
        # counts is the wrapped statement's kind.
        kind = _explained_kind(con, sql)
    if kind != duckdb.StatementType.SELECT:
        raise refused


def _explained_kind(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.StatementType | None:
    """The kind of the one statement an EXPLAIN wraps; None when it cannot be isolated (then refused)."""
    prefix = _EXPLAIN_PREFIX.match(sql)
    inner = sql[prefix.end():] if prefix else ""
    if not inner.strip() or _REFUSED_KEYWORDS.match(inner):
        return None
    try:
        wrapped = con.extract_statements(inner)
    except duckdb.Error:
        return None
    return wrapped[0].type if len(wrapped) == 1 else None


def _clean(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def classify(exc: duckdb.Error) -> SqlError:
    """A DuckDB error as the API's error code."""
    if isinstance(exc, duckdb.InterruptException):
        return SqlError(SqlErrorCode.TIMEOUT, "the query ran past its deadline and was stopped")
    if isinstance(exc, duckdb.PermissionException):
        return SqlError(SqlErrorCode.FORBIDDEN, f"{_clean(exc)} (only the trace tables and views can be read)")
    if isinstance(exc, duckdb.OutOfMemoryException):
        return SqlError(SqlErrorCode.TOO_LARGE, f"the query needs more memory than allowed: {_clean(exc)}")
    if isinstance(exc, duckdb.InvalidInputException) and "configuration" in str(exc).lower():
        return SqlError(SqlErrorCode.FORBIDDEN, _clean(exc))
    return SqlError(SqlErrorCode.INVALID_SQL, _clean(exc))


def run_sql(cursor: duckdb.DuckDBPyConnection, sql: str, *, limit: int = DEFAULT_LIMIT,
            timeout_s: float = DEFAULT_TIMEOUT_S) -> SqlResult:
    """Run one analyst query on ``cursor`` (a cursor of the locked-down store), at most ``limit`` rows."""
    check_statement(cursor, sql)
    started = time.perf_counter()
    timer = threading.Timer(timeout_s, cursor.interrupt)
    timer.start()
    batches: list[pa.RecordBatch] = []
    rows, truncated = 0, False
    try:
        cursor.execute("BEGIN TRANSACTION")
        cursor.execute(sql)
        reader = cursor.to_arrow_reader(min(limit + 1, 65_536))
        for batch in reader:
            if rows + batch.num_rows > limit:
                batches.append(batch.slice(0, limit - rows))
                rows, truncated = limit, True
                break
            batches.append(batch)
            rows += batch.num_rows
        schema = reader.schema
    except duckdb.Error as exc:
        raise classify(exc) from None
    finally:
        timer.cancel()
        with contextlib.suppress(duckdb.Error):  # no transaction left open (the query failed, or ended it)
            cursor.execute("ROLLBACK")
    table = pa.Table.from_batches(batches, schema=schema)
    return SqlResult(table, truncated, (time.perf_counter() - started) * 1000)
