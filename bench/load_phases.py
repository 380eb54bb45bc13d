"""CPU per span of each step of a load into the store (``DuckDBStore.write``), on realistic spans.

    python bench/load_phases.py [--spans 200000] [--load 32768]

Loads the decoded workload into a fresh store in loads of ``--load`` spans (as the staged writer does),
running the steps of ``DuckDBStore.write`` one by one with its own methods and timing each (CPU of this
process, µs per span): the stored-span lookup (only for traces the Bloom filter of stored ids cannot rule
out), dedup, span insert, trace summaries, trace-row inserts, commit. Then the same loads through
``DuckDBStore.write`` itself into another fresh store, as a check that the steps add up. Then the stored-span
lookup for one load's worth of new trace ids, with and without the filter, on that store or on
``--store DIR`` (e.g. the 10M-span store ``lookup.py`` builds: ``--store bench/.out/lookup-10000000``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from common import OUT, build_payloads, env_note, median

from trajscope.collector.allocator import keep_freed_memory
from trajscope.collector.otlp_decode import decode_request
from trajscope.storage import duckdb_store
from trajscope.storage.batch_summary import summarise_table
from trajscope.storage.trace_summary import FACT_COLUMNS


def _stepwise(store: duckdb_store.DuckDBStore, spans: pa.Table, took: Counter) -> None:
    """``DuckDBStore.write``'s steps, each timed (kept in step with it by the check in ``main``)."""

    def step(name: str, fn: Callable[[], Any]) -> Any:
        start = time.process_time()
        out = fn()
        took[name] += time.process_time() - start
        return out

    con = store._con
    con.execute("BEGIN TRANSACTION")
    trace_ids = pc.unique(spans.column("trace_id"))
    maybe = step("stored-span lookup", lambda: store._might_be_stored(trace_ids))
    stored = step("stored-span lookup", lambda: store._stored_facts(con, sorted(trace_ids.filter(maybe).to_pylist())))
    fresh = step("dedup", lambda: store._only_new(spans, stored))

    def insert() -> None:
        con.register("incoming_spans", duckdb_store._json_typed(fresh.combine_chunks()))
        con.execute(f"INSERT INTO spans ({duckdb_store._SPAN_COLS}) SELECT {duckdb_store._SPAN_COLS} "
                    "FROM incoming_spans")
        con.unregister("incoming_spans")

    step("span insert", insert)
    step("remember trace ids", lambda: store._remember(trace_ids.filter(pc.invert(maybe))))
    if stored.num_rows:
        stored = stored.filter(pc.is_in(stored.column("trace_id"), value_set=fresh.column("trace_id")))
    known = pc.unique(stored.column("trace_id"))
    facts = pa.concat_tables([stored, fresh.select(list(FACT_COLUMNS))])
    table = step("trace summaries", lambda: summarise_table(facts, time.time_ns()))
    seen = pc.is_in(table.column("trace_id"), value_set=known)
    step("trace rows (new)", lambda: store._insert_summaries(con, table.filter(pc.invert(seen)), replace=False))
    step("trace rows (replaced)", lambda: store._insert_summaries(con, table.filter(seen), replace=True))
    step("commit", lambda: con.execute("COMMIT"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spans", type=int, default=200_000)
    ap.add_argument("--load", type=int, default=32_768)
    ap.add_argument("--store", help="an existing data directory to time the stored-span lookup on")
    args = ap.parse_args()
    keep_freed_memory()
    spans = pa.concat_tables([decode_request(p).table for p in build_payloads(args.spans, 512)]).combine_chunks()
    loads = [spans.slice(i, args.load) for i in range(0, spans.num_rows - args.load + 1, args.load)]
    rows = sum(t.num_rows for t in loads)
    print(f"load phases, {len(loads)} loads of {args.load:,} spans into a fresh store ({env_note()})")

    took: Counter = Counter()
    directory = OUT / "load-phases"
    shutil.rmtree(directory, ignore_errors=True)
    store = duckdb_store.DuckDBStore(directory)
    for load in loads:
        _stepwise(store, load, took)
    for name, seconds in took.items():
        print(f"  {name:24s} {seconds / rows * 1e6:6.2f} µs/span")
    print(f"  {'sum of the steps':24s} {sum(took.values()) / rows * 1e6:6.2f} µs/span")

    check_dir = OUT / "load-phases-check"
    shutil.rmtree(check_dir, ignore_errors=True)
    check = duckdb_store.DuckDBStore(check_dir)
    start = time.process_time()
    for load in loads:
        check.write(load)
    print(f"  {'DuckDBStore.write itself':24s} {(time.process_time() - start) / rows * 1e6:6.2f} µs/span")
    check.close()
    shutil.rmtree(check_dir, ignore_errors=True)

    # One load's worth of trace ids that are not stored: what the filter spares (on this store, or on the
    # one given with --store, e.g. bench/.out/lookup-10000000 built by lookup.py).
    count = len(pc.unique(loads[0].column("trace_id")))
    store.close()
    shutil.rmtree(directory, ignore_errors=True)
    if args.store:
        start = time.perf_counter()
        store = duckdb_store.DuckDBStore(args.store)
        print(f"  {args.store}: opened in {time.perf_counter() - start:.2f} s (filter of "
              f"{store._known.count:,} trace ids, {store._known._bits.nbytes / 2**20:.0f} MiB)")
    else:
        store = duckdb_store.DuckDBStore(directory)
        for load in loads:
            store.write(load)
    new_ids = pa.array(sorted(os.urandom(16).hex() for _ in range(count)), pa.string())
    con = store.cursor()
    for label, lookup in (("without the filter", lambda: store._stored_facts(con, new_ids.to_pylist())),
                          ("with the filter", lambda: store._stored_facts(
                              con, sorted(new_ids.filter(store._might_be_stored(new_ids)).to_pylist())))):
        times = []
        for _ in range(5):
            start = time.process_time()
            lookup()
            times.append(time.process_time() - start)
        print(f"  stored-span lookup of {count:,} new trace ids, {label}: {median(times) * 1e3:.1f} ms CPU")
    store.close()
    if not args.store:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
