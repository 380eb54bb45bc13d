"""CPU per span of the decode worker's stages on the realistic workload, in this process (no server).

    python bench/decode.py [--spans 60000] [--runs 7]
    python bench/decode.py --fixed-cost --spans 20000 --runs 5

Prints µs/span (median of ``--runs``) for: protobuf parse only; the reference span-by-span walker and the
columnar decoder (the hot path), each to an Arrow table; the whole worker job (decode + Arrow IPC bytes
handed to the server); and the per-trace summaries alone: per trace in Python, vectorised over one
request, and vectorised over a 32,768-span load (where the loader computes them).
Runs alternate stage by stage so a busy moment of the shared machine hits every stage alike.
"""

from __future__ import annotations

import argparse
import gc
import time

import pyarrow as pa
from common import build_payloads, env_note, median

from trajscope.collector import columnar_decode
from trajscope.collector.allocator import keep_freed_memory
from trajscope.collector.otlp_decode import decode_request, parse_request, reference_decode_request
from trajscope.collector.pipeline import _decode
from trajscope.storage.batch_summary import summarise_table
from trajscope.storage.loader import LOAD_ROWS
from trajscope.storage.trace_summary import FACT_COLUMNS, summarise_span_columns


def _spans(payloads: list[bytes]) -> int:
    return sum(decode_request(p).accepted for p in payloads)


def _loads(payloads: list[bytes], tables: dict[bytes, pa.Table], rows: int) -> dict[bytes, pa.Table]:
    """Consecutive requests' spans in loads of ~``rows``, keyed by each load's first request."""
    out: dict[bytes, pa.Table] = {}
    group: list[bytes] = []
    for p in payloads:
        group.append(p)
        if sum(tables[q].num_rows for q in group) >= rows or p is payloads[-1]:
            out[group[0]] = pa.concat_tables([tables[q] for q in group]).combine_chunks()
            group = []
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spans", type=int, default=60_000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--fixed-cost", action="store_true",
                    help="instead: the worker job's time per request at 64, 512 and 2,048 spans per request, "
                         "split into a fixed cost per request and a cost per span")
    args = ap.parse_args()
    if args.fixed_cost:
        fixed_cost(args.spans, args.runs)
        return

    payloads = build_payloads(args.spans, args.batch)
    spans = _spans(payloads)
    tables = {p: columnar_decode.decode_request(p).table for p in payloads}
    facts = {p: {c: t.column(c).to_pylist() for c in FACT_COLUMNS} for p, t in tables.items()}
    loads = _loads(payloads, tables, LOAD_ROWS)
    stages = {
        "parse": lambda p: parse_request(p),
        "reference decode": lambda p: reference_decode_request(p),
        "columnar decode": lambda p: columnar_decode.decode_request(p),
        "worker job (+ IPC bytes)": lambda p: _decode(p, "protobuf", "default"),
        # The summaries alone, from a decoded table: per trace in Python (from column lists, as the
        # decoders used to), and vectorised over the request (storage.batch_summary).
        "summaries, per trace": lambda p: summarise_span_columns(facts[p], 0),
        "summaries, vectorised": lambda p: summarise_table(tables[p], 0),
        # Over a whole load, as the loader runs them: the pass's fixed cost is shared by 64 requests.
        "summaries, per 32k load": lambda p: summarise_table(loads[p], 0) if p in loads else None,
    }
    # As in the decode workers (collector.decode_pool).
    keep_freed_memory()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    times: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(args.runs):
        for name, fn in stages.items():
            start = time.process_time()
            for p in payloads:
                fn(p)
            times[name].append((time.process_time() - start) / spans * 1e6)
    print(f"decode stages, {spans:,} spans in {len(payloads)} requests of {args.batch}, "
          f"median of {args.runs} ({env_note()})")
    for name, values in times.items():
        print(f"  {name:28s} {median(values):6.1f} µs/span   (min {min(values):.1f}, max {max(values):.1f})")


def fixed_cost(total: int, runs: int) -> None:
    """ms per request of the worker job at three request sizes (alternating), and the straight line through
    the two larger ones: the fixed cost per request and the cost per span."""
    keep_freed_memory()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    sizes = (64, 512, 2048)
    sets = {size: build_payloads(total, size) for size in sizes}
    per_request: dict[int, list[float]] = {size: [] for size in sizes}
    for payloads in sets.values():
        for p in payloads:
            _decode(p, "protobuf", "default")
    for _ in range(runs):
        for size, payloads in sets.items():
            start = time.process_time()
            for p in payloads:
                _decode(p, "protobuf", "default")
            per_request[size].append((time.process_time() - start) / len(payloads) * 1e3)
    print(f"worker job per request, median of {runs} ({env_note()})")
    ms = {size: median(values) for size, values in per_request.items()}
    for size in sizes:
        print(f"  {size:5d} spans: {ms[size]:6.2f} ms per request, {ms[size] / size * 1e3:5.1f} µs/span")
    per_span = (ms[2048] - ms[512]) / (2048 - 512)
    print(f"  fit: {ms[512] - 512 * per_span:.2f} ms per request + {per_span * 1e3:.1f} µs per span")


if __name__ == "__main__":
    main()
