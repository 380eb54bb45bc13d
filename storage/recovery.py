"""``trajscope recover``: rebuild a data directory's store from what is intact, with the server stopped.

1. DuckDB's leftover WAL is set aside (``clean_start``), as every open does.
2. The database file is opened and read through (every span and summary row, which checks every block's
   checksum). If that works, the file is intact and kept.
3. Otherwise it is moved to ``set-aside/db-<time>/`` and a fresh file is created; the old file's spans are
   copied over in row ranges, each range that can still be read (a range with a damaged block is counted
   as lost). Summaries are recomputed from the copied spans by the ordinary write path.
4. The staging log and the acknowledgement log are re-applied (``fold_in``), the file checkpointed.

The report says what was kept, what was salvaged, and what could not be read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from trajscope.storage.clean_start import DirectoryInUse, DirectoryLock, set_aside_folder, set_aside_wals
from trajscope.storage.duckdb_store import DB_FILE, DuckDBStore, StoreError
from trajscope.storage.loader import Loader, conform
from trajscope.storage.schema import LOG_SCHEMA, RETRIEVAL_OUT, SPAN_COLUMN_NAMES, SPAN_SCHEMA

log = logging.getLogger(__name__)

SALVAGE_ROWS = 16_384
# Damaged blocks can decode to absurd sizes: capped, they fail as errors instead of exhausting the machine.
SALVAGE_MEMORY = "1GB"


class RecoveryError(RuntimeError):
    """Recovery cannot run (the directory is in use, or holds no trajscope data)."""


@dataclass
class RecoveryReport:
    file_intact: bool = True
    set_aside: list[Path] = field(default_factory=list)
    spans_salvaged: int = 0
    row_ranges_lost: int = 0
    spans_lost: int = 0  # rows of the ranges that could not be read (as the damaged file counted them)
    spans_stored: int = 0

    def lines(self) -> list[str]:
        out = [f"set aside: {p}" for p in self.set_aside]
        if self.file_intact:
            out.append("the database file is intact")
        else:
            out.append(f"salvaged {self.spans_salvaged:,} spans from the damaged file; "
                       f"{self.row_ranges_lost} row range(s) ({self.spans_lost:,} spans) could not be read")
        out.append(f"{self.spans_stored:,} spans stored now")
        return out


def recover(data: str | Path, fold_in: Callable[[DuckDBStore], object] | None = None,
            progress: Callable[[str], None] = lambda _: None) -> RecoveryReport:
    """See the module docstring. ``fold_in`` loads the acknowledgement log (the CLI passes
    ``collector.ack_replay``), after the staging log."""
    data = Path(data)
    db = data / DB_FILE
    if not db.exists() and not any(data.glob("*/seg-*.log")):
        raise RecoveryError(f"no trajscope data in {data} (expected {db})")
    try:
        lock = DirectoryLock(data)
    except DirectoryInUse as exc:
        raise RecoveryError(f"{exc}; stop it first") from None
    report = RecoveryReport()
    try:
        if (aside := set_aside_wals(db)) is not None:
            report.set_aside.append(aside)
        damaged = _damage(data) if db.exists() else None
        if damaged is not None:
            progress(f"{db} is damaged ({damaged}); salvaging what can be read")
            report.file_intact = False
            report.set_aside.append(_salvage(data, db, report, progress))
        store = DuckDBStore(data)
        try:
            Loader(store, data / "staging").close()
            if fold_in is not None:
                fold_in(store)  # checkpoints what it loads (collector.ack_replay)
            report.spans_stored = store.query("SELECT count(*) AS n FROM spans").column("n")[0].as_py()
        finally:
            store.close()
    finally:
        lock.release()
    return report


def _damage(data: Path) -> str | None:
    """Why the store's file cannot be used, or None when it opens and every row reads back."""
    try:
        store = DuckDBStore(data, memory_limit=SALVAGE_MEMORY)
    except StoreError as exc:
        return exc.reason or str(exc)
    except duckdb.Error as exc:  # opened, but its schema or summaries could not be read or checkpointed
        return str(exc).splitlines()[0]
    try:
        for table in ("spans", "traces", "log_records"):
            reader = store.cursor().execute(f"SELECT * FROM {table}").to_arrow_reader(1 << 16)
            for _ in reader:
                pass
    except duckdb.Error as exc:
        return str(exc).splitlines()[0]
    finally:
        store.close()
    return None


def _salvage(data: Path, db: Path, report: RecoveryReport, progress: Callable[[str], None]) -> Path:
    """Move the damaged file aside, create a fresh one and copy every readable row range of spans into it."""
    folder = set_aside_folder(data, "db")
    old = folder / DB_FILE
    os.replace(db, old)
    store = DuckDBStore(data)
    try:
        con = duckdb.connect(config={"memory_limit": SALVAGE_MEMORY})
        try:
            con.execute(f"ATTACH '{str(old).replace(chr(39), chr(39) * 2)}' AS damaged (READ_ONLY)")
        except duckdb.Error as exc:
            progress(f"nothing can be read from the damaged file ({str(exc).splitlines()[0]})")
            report.row_ranges_lost = 1
            return folder
        try:
            _copy_ranges(con, store, report, progress)
            _copy_logs(con, store, report, progress)
        finally:
            con.close()
        store.checkpoint()
    finally:
        store.close()
    return folder


def _copy_ranges(con: duckdb.DuckDBPyConnection, store: DuckDBStore, report: RecoveryReport,
                 progress: Callable[[str], None]) -> None:
    try:
        (rows,) = con.execute("SELECT count(*) FROM damaged.spans").fetchone()
        present = dict(con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = 'damaged' "
            "AND table_name = 'spans'").fetchall())
    except duckdb.Error as exc:
        progress(f"the damaged file's spans table cannot be read ({str(exc).splitlines()[0]})")
        report.row_ranges_lost = 1
        return
    # A retrieval step is a list of one from schema version 7 on, a STRUCT before (schema.RETRIEVAL_OUT).
    columns = [f"{RETRIEVAL_OUT} AS retrieval" if c == "retrieval" and present[c].endswith("[]") else c
               for c in SPAN_COLUMN_NAMES if c in present]
    for first in range(0, rows, SALVAGE_ROWS):
        last = min(rows, first + SALVAGE_ROWS)
        where = f"rowid >= {first} AND rowid < {last}"
        try:
            table = con.execute(f"SELECT {', '.join(columns)} FROM damaged.spans WHERE {where}").to_arrow_table()
        except duckdb.Error:
            report.row_ranges_lost += 1
            report.spans_lost += last - first
            continue
        store.write(_as_spans(table))
        report.spans_salvaged += table.num_rows
        progress(f"… {last:,} / {rows:,} rows of the damaged file read")


def _copy_logs(con: duckdb.DuckDBPyConnection, store: DuckDBStore, report: RecoveryReport,
               progress: Callable[[str], None]) -> None:
    """The damaged file's OTLP log records, if it has the table and it reads (the logs' own acknowledgement
    log re-applies what it still holds)."""
    try:
        if not con.execute("SELECT 1 FROM duckdb_tables() WHERE database_name = 'damaged' "
                           "AND table_name = 'log_records'").fetchall():
            return
        table = con.execute(f"SELECT {', '.join(LOG_SCHEMA.names)} FROM damaged.log_records").to_arrow_table()
    except duckdb.Error as exc:
        progress(f"the damaged file's log records cannot be read ({str(exc).splitlines()[0]})")
        report.row_ranges_lost += 1
        return
    arrays = [_plain(table.column(f.name)).cast(f.type) for f in LOG_SCHEMA]
    added = store.write_logs(pa.Table.from_arrays(arrays, schema=LOG_SCHEMA))
    progress(f"… {added:,} log records of the damaged file read")


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if isinstance(column.type, pa.ExtensionType):
        return pa.chunked_array([chunk.storage for chunk in column.chunks], column.type.storage_type)
    return column


def _as_spans(table: pa.Table) -> pa.Table:
    """Rows read back from a DuckDB file in the decoders' types (JSON columns come back as strings)."""
    arrays = {name: _plain(table.column(name)) for name in table.column_names}
    return conform(pa.Table.from_arrays(
        [arrays[f.name].cast(f.type) if f.name in arrays else pa.nulls(table.num_rows, f.type) for f in SPAN_SCHEMA],
        schema=SPAN_SCHEMA))
