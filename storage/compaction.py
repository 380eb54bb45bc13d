"""Rewrite the database file compactly (``trajscope compact``), with the server stopped.

DuckDB writes a large insert straight into the file and its next checkpoint rewrites those row groups,
leaving the first copy as free blocks that later data reuses but the file never returns: a store built
by large loads holds ~250 bytes/span where a fresh copy needs ~145. ``COPY FROM DATABASE`` into a new
file (tables, index, constraints, views, data) and an atomic rename give the space back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from trajscope.storage.duckdb_store import DB_FILE, STORAGE_VERSION, DuckDBStore
from trajscope.storage.staged_writer import StagedWriter


class CompactionError(Exception):
    """Compaction cannot run; the message says why (e.g. a server has the directory open)."""


@dataclass(frozen=True)
class CompactionResult:
    bytes_before: int
    bytes_after: int
    spans: int
    seconds: float


def compact(data: str | Path, fold_in: Callable[[DuckDBStore], object] | None = None) -> CompactionResult:
    """``fold_in``: loads into the store what else a crashed server left (the CLI passes the acknowledgement
    log's loader, ``collector.ack_replay``), after the staging log and before the rewrite."""
    data = Path(data)
    db = data / DB_FILE
    if not db.exists():
        raise CompactionError(f"no trajscope data in {data} (expected {db})")
    started = time.perf_counter()
    # First fold everything in: spans a crashed server acknowledged (staging log, ``fold_in``) and the WAL.
    try:
        store = DuckDBStore(data)
    except duckdb.IOException as exc:
        raise CompactionError(f"cannot open {data} ({exc}); stop the server using it first") from None
    try:
        StagedWriter(store, data / "staging").close()
        if fold_in is not None:
            fold_in(store)
        store.checkpoint()
        spans = store.query("SELECT count(*) AS n FROM spans").column("n")[0].as_py()
    finally:
        store.close()
    before = db.stat().st_size
    fresh = data / f"{DB_FILE}.compacting"
    fresh.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{db}' AS old (READ_ONLY)")
        con.execute(f"ATTACH '{fresh}' AS new (STORAGE_VERSION '{STORAGE_VERSION}')")
        con.execute("COPY FROM DATABASE old TO new")
        con.execute("DETACH new")
    finally:
        con.close()
    with open(fresh, "rb") as f:  # durable before it replaces the original
        os.fsync(f.fileno())
    os.replace(fresh, db)
    dir_fd = os.open(data, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return CompactionResult(before, db.stat().st_size, spans, time.perf_counter() - started)
