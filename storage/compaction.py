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

from trajscope.storage.clean_start import WAL_SUFFIXES, DirectoryInUse, DirectoryLock
from trajscope.storage.duckdb_store import BLOCK_BYTES, DB_FILE, STORAGE_VERSION, DuckDBStore, StoreError
from trajscope.storage.loader import Loader
from trajscope.storage.staging_log import fsync_dir


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
    # Held throughout, so that no server opens the directory between the fold-in and the rename.
    try:
        lock = DirectoryLock(data)
    except DirectoryInUse as exc:
        raise CompactionError(f"{exc}; stop the server using it first") from None
    try:
        spans = _fold_in(data, fold_in)
        before = db.stat().st_size
        _rewrite(data, db)
    finally:
        lock.release()
    return CompactionResult(before, db.stat().st_size, spans, time.perf_counter() - started)


def _fold_in(data: Path, fold_in: Callable[[DuckDBStore], object] | None) -> int:
    """Everything a crashed server left, into the file and checkpointed: the staging log, ``fold_in`` (the
    acknowledgement log). Returns the spans stored."""
    try:
        store = DuckDBStore(data)
    except (duckdb.IOException, DirectoryInUse, StoreError) as exc:
        raise CompactionError(f"cannot open {data} ({exc})") from None
    try:
        Loader(store, data / "staging").close()
        if fold_in is not None:
            fold_in(store)  # checkpoints what it loads (collector.ack_replay)
        return store.query("SELECT count(*) AS n FROM spans").column("n")[0].as_py()
    finally:
        store.close()


def _rewrite(data: Path, db: Path) -> None:
    """``COPY FROM DATABASE`` into a fresh file, made durable, then renamed over the original. A crash before
    the rename leaves the original as it was (the next compaction starts the copy afresh)."""
    fresh = data / f"{DB_FILE}.compacting"
    for leftover in (fresh, *(Path(f"{fresh}{suffix}") for suffix in WAL_SUFFIXES)):
        leftover.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{db}' AS old (READ_ONLY)")
        con.execute(f"ATTACH '{fresh}' AS new (STORAGE_VERSION '{STORAGE_VERSION}', BLOCK_SIZE {BLOCK_BYTES})")
        con.execute("COPY FROM DATABASE old TO new")
        con.execute("DETACH new")
    finally:
        con.close()
    with open(fresh, "rb") as f:  # durable before it replaces the original
        os.fsync(f.fileno())
    os.replace(fresh, db)
    fsync_dir(data)
