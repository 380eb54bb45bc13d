"""``trajscope sql`` and ``trajscope export``: analyst access from the command line.

Both read either through a running server's API (``--url``, the default) or straight from a data
directory opened read-only (``--data``; only while no server has it open — DuckDB allows one writer).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from trajscope.query.analyst_sql import MAX_LIMIT, SqlError, run_sql
from trajscope.query.result_formats import encode

Fetch = Callable[[str, int], tuple[pa.Table, bool]]
DAY_NS = 86_400 * 10**9


class CliError(Exception):
    """A one-line message for the user; the command exits 1."""


@contextmanager
def open_source(url: str, data: Path | None, api_key: str | None) -> Iterator[Fetch]:
    """A function running one read query (sql, limit) → (table, truncated), from the API or a directory."""
    if data is not None:
        from trajscope.storage.duckdb_store import DB_FILE, DuckDBStore

        if not (data / DB_FILE).exists():
            raise CliError(f"no trajscope data in {data} (expected {data / DB_FILE})")
        try:
            store = DuckDBStore(data, read_only=True)
        except duckdb.IOException as exc:
            raise CliError(f"cannot open {data} read-only ({exc}); if a server is running on it, "
                           f"use --url instead") from None

        def fetch_local(sql: str, limit: int) -> tuple[pa.Table, bool]:
            with store.cursor() as cur:
                try:
                    result = run_sql(cur, sql, limit=limit, timeout_s=3600)
                except SqlError as exc:
                    raise CliError(f"{exc.code.value}: {exc.message}") from None
            return result.table, result.truncated

        try:
            yield fetch_local
        finally:
            store.close()
        return

    from trajscope.client import Client, TrajscopeError

    client = Client(url, api_key, timeout=3600)

    def fetch_remote(sql: str, limit: int) -> tuple[pa.Table, bool]:
        try:
            return client.sql_result(sql, limit=limit)
        except TrajscopeError as exc:
            raise CliError(f"{exc.code}: {exc.message}") from None
        except httpx.HTTPError as exc:  # connection refused and the like
            raise CliError(f"cannot reach {url}: {exc}; is `trajscope serve` running? "
                           f"(or read a data directory with --data)") from None

    try:
        yield fetch_remote
    finally:
        client.close()


def aligned(table: pa.Table, max_width: int = 60) -> str:
    """A plain text table for the terminal."""
    def cell(value: object) -> str:
        text = "NULL" if value is None else str(value)
        text = text.replace("\n", " ")
        return text if len(text) <= max_width else text[:max_width - 1] + "…"

    rows = [[cell(v) for v in row.values()] for row in table.to_pylist()]
    header = table.column_names
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    numeric = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_decimal(f.type)
               for f in table.schema]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def run_sql_command(sql: str, *, url: str, data: Path | None, api_key: str | None, fmt: str,
                    output: Path | None, limit: int) -> int:
    if fmt == "parquet" and output is None:
        raise CliError("--format parquet needs -o FILE")
    with open_source(url, data, api_key) as fetch:
        table, truncated = fetch(sql, limit)
    if fmt == "table":
        text = aligned(table) + f"\n({table.num_rows} row{'s' if table.num_rows != 1 else ''}"
        text += f", truncated at --limit {limit})\n" if truncated else ")\n"
        body = text.encode()
    else:
        body = encode(table, fmt, truncated=truncated)
    if output is None:
        sys.stdout.buffer.write(body)
        if fmt == "json":
            sys.stdout.buffer.write(b"\n")
    else:
        output.write_bytes(body)
        print(f"wrote {table.num_rows} rows to {output}", file=sys.stderr)
    if truncated:
        print(f"trajscope: result truncated at {limit} rows (raise --limit)", file=sys.stderr)
    return 0


def parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise CliError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


class Progress:
    """A one-line progress bar on stderr (redrawn in place when stderr is a terminal)."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.done, self.started = total, label, 0, time.monotonic()
        self.tty = sys.stderr.isatty()

    def step(self, note: str) -> None:
        self.show(self.done + 1, self.total, note)

    def show(self, done: int, total: int, note: str) -> None:
        self.done, self.total = done, total
        filled = int(30 * done / total) if total else 30
        bar = "#" * filled + "." * (30 - filled)
        text = f"{self.label} [{bar}] {done}/{total} {note} ({time.monotonic() - self.started:.1f} s)"
        print(("\r" + text) if self.tty else text, end="" if self.tty else "\n", file=sys.stderr, flush=True)
        if self.tty and done >= total:
            print(file=sys.stderr)


def _window(fetch: Fetch, lo: int, hi: int) -> Iterator[pa.Table]:
    """All spans starting in [lo, hi), split into smaller windows while a window exceeds one answer."""
    table, truncated = fetch(
        f"SELECT * FROM spans WHERE start_time_unix_nano >= {lo} AND start_time_unix_nano < {hi} "
        "ORDER BY start_time_unix_nano, trace_id, span_id", MAX_LIMIT)
    if not truncated:
        yield table
        return
    if hi - lo <= 1:
        raise CliError(f"more than {MAX_LIMIT} spans start in the same nanosecond; cannot page")
    mid = (lo + hi) // 2
    yield from _window(fetch, lo, mid)
    yield from _window(fetch, mid, hi)


def run_export(*, since: str, until: str | None, output: Path, url: str, data: Path | None,
               api_key: str | None) -> int:
    """Spans whose start falls in [since, until) as Parquet, one file per UTC day."""
    first = parse_day(since)
    last = parse_day(until) if until else dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    if last <= first:
        raise CliError("--until must be after --since")
    lo_ns = int(dt.datetime(first.year, first.month, first.day, tzinfo=dt.UTC).timestamp()) * 10**9
    hi_ns = int(dt.datetime(last.year, last.month, last.day, tzinfo=dt.UTC).timestamp()) * 10**9
    output.mkdir(parents=True, exist_ok=True)
    total = files = 0
    with open_source(url, data, api_key) as fetch:
        # Only the days that have spans: a range of years is mostly empty days.
        found, _ = fetch(f"SELECT DISTINCT start_time_unix_nano // {DAY_NS} AS day FROM spans "
                         f"WHERE start_time_unix_nano >= {lo_ns} AND start_time_unix_nano < {hi_ns} ORDER BY day",
                         MAX_LIMIT)
        days = [dt.date(1970, 1, 1) + dt.timedelta(days=int(d)) for d in found.column("day").to_pylist()]
        progress = Progress(len(days), "exporting")
        if not days:
            print(f"no spans between {first} and {last}", file=sys.stderr)
        for day in days:
            lo = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 10**9
            writer, rows = None, 0
            path = output / f"spans-{day.isoformat()}.parquet"
            for table in _window(fetch, lo, lo + DAY_NS):
                if table.num_rows == 0:
                    continue
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema, compression="zstd")
                writer.write_table(table)
                rows += table.num_rows
            if writer is not None:
                writer.close()
                files += 1
            total += rows
            progress.step(f"{day.isoformat()}: {rows} spans")
    print(f"exported {total} spans into {files} file(s) in {output}", file=sys.stderr)
    return 0
