"""Queries at scale: builds a store of --spans spans, then times the read paths the issue names.

The store is filled in SQL by replicating one realistic workload batch with fresh ids and shifted times
(ingesting 10M spans through OTLP would measure ingest, not queries). The batch's trace summaries —
critical-path and usage breakdowns included — are computed by the real write path once and replicated the
same way, so the stats endpoints aggregate real breakdowns. One 10,000-span agent run is then written
through the write path, and a server on the store answers over HTTP: trajectory and latency of that run,
and stats/latency + stats/usage over the newest 1M spans.

    .venv/bin/python bench/lookup.py --spans 10000000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, LightClient, ServerProcess, build_payloads, env_note, median, pct, timed
from trajectory_stats import big_trace

from trajscope.collector.otlp_decode import decode_request
from trajscope.memory_budget import memory_pss
from trajscope.storage.duckdb_store import DuckDBStore
from trajscope.storage.interface import TraceFilter
from trajscope.storage.load_marks import mark_ranges
from trajscope.storage.schema import RETRIEVAL_IN, SPAN_COLUMN_NAMES, TRACE_COLUMN_NAMES, trace_key_sql


def _replicated(columns: tuple[str, ...], derived: dict[str, str]) -> str:
    return ", ".join(f"{derived[c]} AS {c}" if c in derived else c for c in columns)


_IDS = {
    "trace_id": "md5(trace_id || '-' || c::VARCHAR)",
    "span_id": "substr(md5(span_id || '-' || c::VARCHAR), 1, 16)",
    "parent_span_id": "CASE WHEN parent_span_id IS NULL THEN NULL "
                      "ELSE substr(md5(parent_span_id || '-' || c::VARCHAR), 1, 16) END",
    "root_span_id": "CASE WHEN root_span_id IS NULL THEN NULL "
                    "ELSE substr(md5(root_span_id || '-' || c::VARCHAR), 1, 16) END",
    "start_time_unix_nano": "start_time_unix_nano + c * 1000000000",
    "end_time_unix_nano": "end_time_unix_nano + c * 1000000000",
}


def build(store: DuckDBStore, spans: int) -> int:
    """Fill the store; returns the span count."""
    template = pa.concat_tables([decode_request(p).table for p in build_payloads(5000, 512)])
    template = template.append_column("row", pa.array(np.arange(template.num_rows, dtype=np.int64)))
    # The template's summaries through the real write path (breakdowns and all), in a scratch store.
    scratch = DuckDBStore(":memory:")
    scratch.write(template)
    summaries = scratch.query("SELECT * FROM traces")
    scratch_marks = scratch._con.execute("SELECT min(ingested_at_unix_nano) FROM spans").fetchone()
    scratch.close()
    con = store._con
    con.register("template", template)
    con.register("template_traces", summaries)
    copies = max(1, spans // template.num_rows)
    # Load marks as the write path gives them (storage.load_marks): increasing in storage order, one per span.
    first_mark = time.time_ns()
    span_cols = _replicated(SPAN_COLUMN_NAMES, {
        **_IDS, "ingested_at_unix_nano": f"{first_mark} + c * {template.num_rows} + row", "retrieval": RETRIEVAL_IN})
    # A copy's marks are the template's shifted (the scratch store gave the template consecutive marks).
    (template_first,) = scratch_marks
    shift = f"{first_mark} + c * {template.num_rows} - {template_first}"
    shifted = f"list_transform(mark_ranges, m -> {{'low': m.low + {shift}, 'high': m.high + {shift}}})"
    trace_cols = _replicated(TRACE_COLUMN_NAMES, {**_IDS, "mark_ranges": shifted,
                                                  "trace_key": trace_key_sql(_IDS["trace_id"])})
    step = 200
    started = time.perf_counter()
    for first in range(0, copies, step):
        last = min(copies, first + step)
        con.execute(f"INSERT INTO spans BY NAME SELECT {span_cols} FROM template, range({first}, {last}) r(c) "
                    "ORDER BY c, row")
        con.execute(f"INSERT INTO traces BY NAME SELECT {trace_cols} FROM template_traces, range({first}, {last}) r(c)")
        done = last * template.num_rows
        print(f"  building: {done:,} spans ({done / (time.perf_counter() - started):,.0f}/s)", end="\r", flush=True)
    print()
    con.execute("CHECKPOINT")
    return con.execute("SELECT count(*) FROM spans").fetchone()[0]


MID_SPANS = 500


def mid_size_runs(store: DuckDBStore) -> dict[str, str]:
    """Two 500-span runs written through the write path (once): one in a single load, one over five loads
    with 4,000 other spans between its parts, as a run's spans arrive while others are exported."""
    found = [r[0] for r in store._con.execute(
        f"SELECT trace_id FROM traces WHERE span_count = {MID_SPANS} ORDER BY trace_id").fetchall()]
    if len(found) < 2:
        whole, parted = (decode_request(big_trace(MID_SPANS)).table for _ in range(2))
        store.write(whole)
        step = MID_SPANS // 5
        for first in range(0, MID_SPANS, step):
            noise = pa.concat_tables([decode_request(p).table for p in build_payloads(4000, 512, seed=1000 + first)])
            store.write(pa.concat_tables([parted.slice(first, step), noise]))
        store.checkpoint()
        found = [whole["trace_id"][0].as_py(), parted["trace_id"][0].as_py()]
    parts = {t: len(mark_ranges(store._con.execute(f"SELECT ingested_at_unix_nano FROM spans WHERE trace_id = '{t}'")
                                .fetchnumpy()["ingested_at_unix_nano"])) for t in found[:2]}
    whole_id, parted_id = sorted(parts, key=parts.get)
    return {f"written in one load ({parts[whole_id]} mark range)": whole_id,
            f"written over five loads ({parts[parted_id]} mark ranges)": parted_id}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="reuse the store built by an earlier run")
    parser.add_argument("--warm", type=int, default=2000,
                        help="lookups of other traces the server answers before the last measurement")
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
        store.write(decode_request(big_trace(10_000)).table)
        store.checkpoint()
    mid_ids = mid_size_runs(store)
    # The stats requests cover the newest 1M spans: from the start time of the 1,000,000th newest span.
    since = store._con.execute("SELECT start_time_unix_nano FROM spans ORDER BY start_time_unix_nano DESC "
                               "LIMIT 1 OFFSET 999999").fetchone()[0]
    big_id = store._con.execute("SELECT trace_id FROM traces WHERE span_count = 10000 LIMIT 1").fetchone()[0]
    newest = store._con.execute(f"SELECT count(*) FROM spans WHERE start_time_unix_nano >= {since}").fetchone()[0]
    size = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
    print(f"store: {count:,} spans, {size / count:.0f} bytes/span on disk")
    sample = [r[0] for r in store._con.execute(
        f"SELECT trace_id FROM traces USING SAMPLE {3 * args.repeat + args.warm} ROWS").fetchall()]
    ids, http_ids = sample[:args.repeat], sample[args.repeat:2 * args.repeat]
    warm_ids, later_ids = sample[2 * args.repeat:2 * args.repeat + args.warm], sample[2 * args.repeat + args.warm:]
    ranges = store.trace_version(ids[0]).mark_ranges
    ordered = store._con.execute(
        "SELECT bool_and(d > 0) FROM (SELECT ingested_at_unix_nano - lag(ingested_at_unix_nano) OVER (ORDER BY rowid) "
        "AS d FROM spans) WHERE d IS NOT NULL").fetchone()[0]
    indexed = store._con.execute("SELECT count(*) FROM duckdb_indexes() WHERE table_name = 'spans'").fetchone()[0]
    print(f"load marks increase in storage order: {ordered}; indexes on spans: {indexed}; a trace is read as "
          f"{len(ranges)} scan(s) of its summary's mark ranges")
    # First lookups of random traces read their blocks into DuckDB's buffers; the same traces again are what
    # a page that was just open (or a trace just ingested) costs.
    for label in ("first lookup", "looked up again"):
        it = iter(ids)
        lookup = timed(lambda it=it: store.get_trace(next(it)), len(ids))
        print(f"get_trace by id, {label}: p50 {median(lookup):.2f} ms, p95 {pct(lookup, 0.95):.2f} ms "
              f"({len(ids)} random traces)")
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
    for label, trace_id in mid_ids.items():
        by_ranges = timed(lambda t=trace_id: store.get_trace(t), 15)
        print(f"get_trace of a {MID_SPANS}-span run {label}: p50 {median(by_ranges):.1f} ms")
    store.close()

    # The API on the same store: a server process, as users run it.
    server = ServerProcess(data, keep=True)
    client = LightClient(server.url(""))
    peak_pss = [0]
    sampled = threading.Event()

    def sample_memory() -> None:  # the budget covers the server and its workers: their PSS, as the server counts
        while not sampled.wait(0.2):
            peak_pss[0] = max(peak_pss[0], sum(memory_pss(server.proc.pid)))

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    # Other random traces, so the server's first lookups are first touches of its own buffers.
    distinct: list[float] = []  # every lookup of a trace the server had not served before, in order
    for label in ("first lookup", "looked up again"):
        it = iter(http_ids)
        t = timed(lambda it=it: client.get(f"/api/v1/traces/{next(it)}"), len(http_ids))
        print(f"GET /api/v1/traces/{{id}} (HTTP), {label}: p50 {median(t):.2f} ms, p95 {pct(t, 0.95):.2f} ms")
        distinct += t if label == "first lookup" else []
    # A server that has been answering for a while: DuckDB's buffers hold what earlier lookups read, and
    # its allocator has memory that is already mapped. Traces never asked for before, after --warm others.
    started = time.perf_counter()
    for i, trace_id in enumerate(warm_ids, 1):
        distinct += timed(lambda t=trace_id: client.get(f"/api/v1/traces/{t}"), 1)
        if i % 250 == 0 or i == len(warm_ids):
            print(f"  serving {i:,} / {len(warm_ids):,} other lookups ({time.perf_counter() - started:.0f} s)",
                  end="\r", flush=True)
    print()
    it = iter(later_ids)
    t = timed(lambda: client.get(f"/api/v1/traces/{next(it)}"), len(later_ids))
    distinct += t
    rss = psutil.Process(server.proc.pid).memory_info().rss
    print(f"GET /api/v1/traces/{{id}} (HTTP), first lookup after {len(warm_ids):,} lookups of other traces: "
          f"p50 {median(t):.2f} ms, p95 {pct(t, 0.95):.2f} ms (server RSS {rss / 2**20:,.0f} MiB, "
          f"store {size / 2**20:,.0f} MiB)")
    # The service's p50 as a user sees it from the start: the first touches above are in it, at their share.
    print(f"GET /api/v1/traces/{{id}} (HTTP), all {len(distinct):,} lookups of distinct traces since the server "
          f"started: p50 {median(distinct):.2f} ms, p95 {pct(distinct, 0.95):.2f} ms, "
          f"first 100 p50 {median(distinct[:100]):.2f} ms")
    for what in ("trajectory", "latency"):
        for layout in ("objects", "table"):
            url = f"/api/v1/traces/{big_id}/{what}?layout={layout}"
            t = timed(lambda u=url: client.get(u, headers={"Cache-Control": "no-cache"}), 7)
            print(f"{what} of a 10,000-span run (HTTP, layout={layout}, built): p50 {median(t):.0f} ms, "
                  f"max {max(t):.0f} ms")
    # The web UI asks for both at once, each on its own connection: the time until both answers are in.
    second = LightClient(server.url(""))
    with ThreadPoolExecutor(2) as pool:
        def both() -> None:
            futures = [pool.submit(c.get, f"/api/v1/traces/{big_id}/{what}?layout=table",
                                   headers={"Cache-Control": "no-cache"})
                       for c, what in ((client, "trajectory"), (second, "latency"))]
            for future in futures:
                future.result()

        t = timed(both, 7)
    second.close()
    print(f"trajectory + latency of a 10,000-span run, requested together as the UI does (HTTP, layout=table, "
          f"built): p50 {median(t):.0f} ms, max {max(t):.0f} ms")
    for endpoint, group in (("latency", "category"), ("latency", "tool"), ("latency", "model"), ("latency", "agent"),
                            ("latency", "span_name"), ("usage", "model"), ("usage", "agent"), ("usage", "user"),
                            ("usage", "session"), ("usage", "day")):
        t = timed(lambda e=endpoint, g=group: client.get(f"/api/v1/stats/{e}", params={
            "group_by": g, "since": str(since)}), 7)
        print(f"stats/{endpoint}?group_by={group} over the newest {newest:,} spans (HTTP): p50 {median(t):.0f} ms, "
              f"p95 {pct(t, 0.95):.0f} ms")
    sampled.set()
    sampler.join()
    budget = next(line.split()[1] for line in client.get("/metrics").decode().splitlines()
                  if line.startswith("trajscope_memory_budget_bytes "))
    print(f"peak PSS of the server and its workers while answering all of the above: {peak_pss[0] / 2**20:,.0f} MiB "
          f"(budget {float(budget) / 2**20:,.0f} MiB)")
    server.stop()


if __name__ == "__main__":
    main()
