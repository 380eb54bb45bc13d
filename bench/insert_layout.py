"""What a load into the spans table costs, by how it is handed to DuckDB and by row-group size.

Realistic decoded spans are inserted into a fresh database file (the store's schema and ZSTD columns, the
trace_id index) in loads of a given size; printed per variant: insert CPU per span (the whole process, so
DuckDB's own threads count), checkpoint CPU per span afterwards, file bytes per span, and a few reads.

    .venv/bin/python bench/insert_layout.py [--spans 983040]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from common import OUT, build_payloads, env_note

from trajscope.collector.otlp_decode import decode_request
from trajscope.storage.duckdb_store import STORAGE_VERSION
from trajscope.storage.schema import RETRIEVAL_IN, SPAN_COLUMNS, ZSTD_COLUMNS


def _ddl() -> str:
    cols = [f"{n} {sql}{'' if nullable else ' NOT NULL'}{' USING COMPRESSION zstd' if n in ZSTD_COLUMNS else ''}"
            for n, _, sql, nullable in SPAN_COLUMNS]
    return f"CREATE TABLE db.spans ({', '.join(cols)})"


def run(label: str, source: pa.Table, total: int, load_rows: int, *, row_group: int | None,
        one_batch: bool) -> None:
    data = OUT / "insert-layout"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    con = duckdb.connect()
    option = f", ROW_GROUP_SIZE {row_group}" if row_group else ""
    con.execute(f"ATTACH '{data}/x.duckdb' AS db (STORAGE_VERSION '{STORAGE_VERSION}'{option})")
    con.execute("SET checkpoint_threshold = '4GB'")  # checkpoint only when asked, as the store does
    con.execute(_ddl())
    con.execute("CREATE INDEX spans_trace_id ON db.spans (trace_id)")
    cpu, loads = 0.0, total // load_rows
    for k in range(loads):
        first = (k * load_rows) % (source.num_rows - load_rows)
        table = source.slice(first, load_rows)
        # fresh trace ids per load, so the index sees new keys as in production
        table = table.set_column(1, "trace_id", pc.binary_join_element_wise(
            table.column("trace_id"), pa.scalar(f"{k:05d}"), pa.scalar("")))
        # What the loader used to hand over: one record batch per export (512 spans), or one in all.
        table = table.combine_chunks() if one_batch else pa.Table.from_batches(table.to_batches(512))
        con.register("incoming", table)
        started = time.process_time()
        con.execute("BEGIN")
        con.execute(f"INSERT INTO db.spans SELECT * REPLACE ({RETRIEVAL_IN} AS retrieval) FROM incoming")
        con.execute("COMMIT")
        cpu += time.process_time() - started
        con.unregister("incoming")
    rows = loads * load_rows
    started = time.process_time()
    con.execute("CHECKPOINT db")
    checkpoint = time.process_time() - started
    ids = [r[0] for r in con.execute("SELECT trace_id FROM db.spans USING SAMPLE 40 ROWS").fetchall()]
    con.close()
    size = (data / "x.duckdb").stat().st_size
    con = duckdb.connect()
    con.execute(f"ATTACH '{data}/x.duckdb' AS db (READ_ONLY)")
    con.execute("SET index_scan_max_count = 2048")
    con.execute("SET index_scan_percentage = 0")

    def p50(sql: str, repeat: int = 5) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            con.execute(sql).fetchall()
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)

    group_by = p50("SELECT category, status_code, count(*), quantile_cont(duration_ns, 0.95) FROM db.spans "
                   "GROUP BY ALL")
    lookups = []
    for trace_id in ids:
        start = time.perf_counter()
        con.execute(f"SELECT * FROM db.spans WHERE trace_id = '{trace_id}'").to_arrow_table()
        lookups.append((time.perf_counter() - start) * 1000)
    con.close()
    print(f"  {label:58s} insert {cpu / rows * 1e6:5.1f} µs/span, checkpoint {checkpoint / rows * 1e6:5.1f} "
          f"µs/span, file {size / rows:4.0f} B/span | GROUP BY {group_by:4.0f} ms, first lookup p50 "
          f"{statistics.median(lookups):5.1f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=983_040)
    args = parser.parse_args()
    source = pa.concat_tables([decode_request(p).table for p in build_payloads(250_000, 512)]).combine_chunks()
    print(f"spans-table loads of {args.spans:,} realistic spans, CPU of the whole process ({env_note()})")
    for label, load_rows, row_group, one_batch in (
        ("122,880-row row groups, loads of 122,880 in 512-span batches", 122_880, None, False),
        ("122,880-row row groups, loads of 122,880 as one batch", 122_880, None, True),
        ("16,384-row row groups, loads of 32,768 as one batch", 32_768, 16_384, True),
        ("16,384-row row groups, loads of 16,384 as one batch", 16_384, 16_384, True),
        ("16,384-row row groups, loads of 20,480 (not whole row groups)", 20_480, 16_384, True),
    ):
        run(label, source, args.spans, load_rows, row_group=row_group, one_batch=one_batch)
    shutil.rmtree(OUT / "insert-layout", ignore_errors=True)
    os.sync()


if __name__ == "__main__":
    main()
