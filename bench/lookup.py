"""Trace lookup and trace list at scale: builds a store of --spans spans, then times the read paths.

The store is filled in SQL by replicating one realistic workload batch with fresh ids (ingesting 10M
spans through OTLP would measure ingest, not lookup); trace summaries are aggregated the same way.

    .venv/bin/python bench/lookup.py --spans 10000000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, build_payloads, env_note, median, pct, timed

from trajscope.collector.otlp_decode import decode_request
from trajscope.storage.duckdb_store import DuckDBStore
from trajscope.storage.interface import TraceFilter
from trajscope.storage.schema import SPAN_COLUMN_NAMES, TRACE_COLUMN_NAMES


def build(store: DuckDBStore, spans: int) -> int:
    import pyarrow as pa

    template = pa.concat_tables([decode_request(p).table for p in build_payloads(5000, 512)])
    con = store._con
    con.register("template", template)
    copies = max(1, spans // template.num_rows)
    cols = ", ".join(
        "md5(trace_id || '-' || c::VARCHAR) AS trace_id" if c == "trace_id" else
        "substr(md5(span_id || '-' || c::VARCHAR), 1, 16) AS span_id" if c == "span_id" else
        "CASE WHEN parent_span_id IS NULL THEN NULL ELSE substr(md5(parent_span_id || '-' || c::VARCHAR), 1, 16) "
        "END AS parent_span_id" if c == "parent_span_id" else
        "start_time_unix_nano + c * 1000000000 AS start_time_unix_nano" if c == "start_time_unix_nano" else
        "end_time_unix_nano + c * 1000000000 AS end_time_unix_nano" if c == "end_time_unix_nano" else c
        for c in SPAN_COLUMN_NAMES)
    step = 200
    started = time.perf_counter()
    for first in range(0, copies, step):
        last = min(copies, first + step)
        con.execute(f"INSERT INTO spans SELECT {cols} FROM template, range({first}, {last}) r(c)")
        done = last * template.num_rows
        print(f"  building: {done:,} spans ({done / (time.perf_counter() - started):,.0f}/s)", end="\r", flush=True)
    print()
    summary = {
        "project": "any_value(project)", "root_span_id": "any_value(span_id) FILTER (parent_span_id IS NULL)",
        "root_name": "any_value(name) FILTER (parent_span_id IS NULL)", "service_name": "any_value(service_name)",
        "agent_name": "any_value(agent_name)", "session_id": "any_value(session_id)",
        "user_id": "any_value(user_id)", "start_time_unix_nano": "min(start_time_unix_nano)",
        "end_time_unix_nano": "max(end_time_unix_nano)",
        "duration_ns": "max(end_time_unix_nano) - min(start_time_unix_nano)", "span_count": "count(*)",
        "error_count": "count(*) FILTER (status_code = 'ERROR')", "llm_calls": "count(*) FILTER (category = 'llm')",
        "tool_calls": "count(*) FILTER (category = 'tool')", "input_tokens": "coalesce(sum(input_tokens), 0)",
        "output_tokens": "coalesce(sum(output_tokens), 0)",
        "cached_input_tokens": "coalesce(sum(cached_input_tokens), 0)",
        "reasoning_tokens": "coalesce(sum(reasoning_tokens), 0)", "cost_usd": "sum(cost_usd)",
        "complete": "true", "updated_at_unix_nano": "0",
        # Empty, not NULL: NULL marks a summary the store must recompute on open.
        "critical_breakdown": "[]", "usage_breakdown": "[]",
    }
    select = ", ".join("trace_id" if c == "trace_id" else f"{summary[c]} AS {c}" for c in TRACE_COLUMN_NAMES)
    con.execute(f"INSERT INTO traces SELECT {select} FROM spans GROUP BY trace_id")
    con.execute("CHECKPOINT")
    return con.execute("SELECT count(*) FROM spans").fetchone()[0]



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="reuse the store built by an earlier run")
    args = parser.parse_args()
    data = OUT / f"lookup-{args.spans}"
    if not args.keep and data.exists():
        shutil.rmtree(data)
    OUT.mkdir(exist_ok=True)
    store = DuckDBStore(data)
    print(f"trajscope lookup benchmark — {env_note()}")
    count = store._con.execute("SELECT count(*) FROM spans").fetchone()[0]
    if count < args.spans * 0.9:
        count = build(store, args.spans)
    size = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
    print(f"store: {count:,} spans, {size / count:.0f} bytes/span on disk")
    ids = [r[0] for r in store._con.execute(
        f"SELECT trace_id FROM traces USING SAMPLE {args.repeat} ROWS").fetchall()]
    # Plain EXPLAIN shows a sequential scan even when the index is used: the choice is made at run time.
    plan = store._con.execute(f"EXPLAIN ANALYZE SELECT * FROM spans WHERE trace_id = '{ids[0]}'").fetchall()[0][1]
    print(f"trace lookup plan uses the index: {'Index Scan' in plan}")
    it = iter(ids * 2)
    lookup = timed(lambda: store.get_trace(next(it)), len(ids))
    print(f"get_trace by id: p50 {median(lookup):.2f} ms, p95 {pct(lookup, 0.95):.2f} ms ({len(ids)} random traces)")
    for label, flt in (("newest 50", TraceFilter()), ("errors only", TraceFilter(errors_only=True)),
                       ("agent + min duration", TraceFilter(agent="billing-agent", min_duration_ns=5 * 10**9))):
        t = timed(lambda f=flt: store.list_traces(f), 20)
        print(f"list_traces {label}: p50 {median(t):.2f} ms, p95 {pct(t, 0.95):.2f} ms")
    for label, sql in (
        ("GROUP BY tool_name", "SELECT tool_name, count(*), avg(duration_ns) FROM spans GROUP BY tool_name"),
        ("GROUP BY model", "SELECT coalesce(response_model, request_model) AS model, count(*), "
                           "sum(input_tokens), sum(output_tokens) FROM spans WHERE category = 'llm' GROUP BY 1"),
        ("GROUP BY category, status", "SELECT category, status_code, count(*), quantile_cont(duration_ns, 0.95) "
                                      "FROM spans GROUP BY ALL"),
    ):
        t = timed(lambda q=sql: store.query(q), 5)
        print(f"SQL {label} over {count:,} spans: p50 {median(t):.0f} ms")
    store.close()


if __name__ == "__main__":
    main()
