"""CPU per span of each step of a load into the store (``DuckDBStore.write``), on realistic spans.

    python bench/load_phases.py [--spans 200000] [--load 32768]

Loads the decoded workload into a fresh store in loads of ``--load`` spans (as the loader does),
through ``DuckDBStore.write`` with its steps timed in place (CPU of this process, µs per span): the
stored-span lookup (only for traces the Bloom filter of stored ids cannot rule out), dedup, span insert,
trace summaries, trace-row inserts, commit, and what is left of ``write``. Then the stored-span
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

from trajscope.collector.otlp_decode import decode_request
from trajscope.storage import duckdb_store
from trajscope.storage.batch_summary import summarise_table


class _Timed:
    """The store's writer connection, timing the statements of a load by what they start with (the rest
    passes through)."""

    def __init__(self, con: Any, took: Counter, steps: dict[str, str]) -> None:
        self._con, self._took, self._steps = con, took, steps

    def execute(self, sql: str, *args: Any) -> Any:
        name = next((step for prefix, step in self._steps.items() if sql.startswith(prefix)), None)
        start = time.process_time()
        out = self._con.execute(sql, *args)
        if name:
            self._took[name] += time.process_time() - start
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def _timing(store: duckdb_store.DuckDBStore, took: Counter) -> None:
    """Time the steps of ``store.write`` in place: its methods and the summary pass wrapped, its inserts and
    commit timed on the connection. ``write`` itself runs unchanged."""

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                took[name] += time.process_time() - start
        return wrapper

    for method, name in (("_might_be_stored", "stored-span lookup"), ("_stored_facts", "stored-span lookup"),
                         ("_only_new", "dedup"), ("_remember", "remember trace ids")):
        setattr(store, method, timed(name, getattr(store, method)))
    duckdb_store.summarise_table = timed("trace summaries", summarise_table)
    store._con = _Timed(store._con, took, {"INSERT INTO spans": "span insert", "INSERT INTO traces": "trace rows",
                                           "DELETE FROM traces": "trace rows", "COMMIT": "commit"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spans", type=int, default=200_000)
    ap.add_argument("--load", type=int, default=32_768)
    ap.add_argument("--store", help="an existing data directory to time the stored-span lookup on")
    args = ap.parse_args()
    spans = pa.concat_tables([decode_request(p).table for p in build_payloads(args.spans, 512)]).combine_chunks()
    loads = [spans.slice(i, args.load) for i in range(0, spans.num_rows - args.load + 1, args.load)]
    rows = sum(t.num_rows for t in loads)
    print(f"load phases, {len(loads)} loads of {args.load:,} spans into a fresh store ({env_note()})")

    took: Counter = Counter()
    directory = OUT / "load-phases"
    shutil.rmtree(directory, ignore_errors=True)
    store = duckdb_store.DuckDBStore(directory)
    _timing(store, took)
    start = time.process_time()
    for load in loads:
        store.write(load)
    total = time.process_time() - start
    duckdb_store.summarise_table = summarise_table
    for name, seconds in took.items():
        print(f"  {name:24s} {seconds / rows * 1e6:6.2f} µs/span")
    print(f"  {'the rest of write':24s} {(total - sum(took.values())) / rows * 1e6:6.2f} µs/span")
    print(f"  {'DuckDBStore.write':24s} {total / rows * 1e6:6.2f} µs/span")

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
