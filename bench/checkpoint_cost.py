"""What a checkpoint costs the loader, by store size and by rows loaded since the previous one.

Acknowledgement-log records are released only once their spans are in a checkpointed file, so the
checkpoint interval decides how much a restart re-applies and how much the loader pauses. This builds
stores of the given sizes (as ``bench/lookup.py`` does) and then, for each interval, loads that many
realistic spans through the write path (``DuckDBStore.write``, loads of ``LOAD_ROWS``) and checkpoints,
several times, printing the median load and checkpoint times.

    .venv/bin/python bench/checkpoint_cost.py --sizes 1000000,4000000 --intervals 32768,131072,262144
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, build_payloads, env_note, median
from lookup import build

from trajscope.collector.otlp_decode import decode_request
from trajscope.storage.duckdb_store import DuckDBStore
from trajscope.storage.loader import LOAD_ROWS


def fresh_ids(template: pa.Table, rng: np.random.Generator) -> pa.Table:
    """The template with new trace and span ids (parents mapped alike), so every load is new data."""
    table, span_map = template, {}
    for name, width in (("trace_id", 16), ("span_id", 8), ("parent_span_id", 8)):
        column = table.column(name)
        values = pc.unique(column.combine_chunks().drop_null())
        fresh = pa.array([rng.bytes(width).hex() for _ in range(len(values))])
        if name == "parent_span_id":  # parents point at the same new span ids as the spans they name
            fresh = pa.array([span_map.get(v, rng.bytes(width).hex()) for v in values.to_pylist()])
        mapped = pc.take(fresh, pc.index_in(column, value_set=values))
        if name == "span_id":
            span_map = dict(zip(values.to_pylist(), fresh.to_pylist(), strict=True))
        table = table.set_column(table.schema.get_field_index(name), table.schema.field(name), mapped)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,4000000")
    parser.add_argument("--intervals", default="32768,131072,262144")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    template = pa.concat_tables([decode_request(p).table for p in build_payloads(LOAD_ROWS, 512)])
    template = template.slice(0, LOAD_ROWS)
    rng = np.random.default_rng(1)
    print(env_note())
    print(f"{'store spans':>12} {'interval':>9} {'load ms':>9} {'checkpoint ms':>14} {'µs/span':>8}")
    for size in (int(s) for s in args.sizes.split(",")):
        data = OUT / "checkpoint-cost"
        shutil.rmtree(data, ignore_errors=True)
        store = DuckDBStore(data)
        build(store, size)
        for interval in (int(i) for i in args.intervals.split(",")):
            loads, checkpoints = [], []
            for _ in range(args.rounds):
                started = time.perf_counter()
                for _ in range(max(1, interval // LOAD_ROWS)):
                    store.write(fresh_ids(template, rng))
                loaded = time.perf_counter()
                store.checkpoint()
                loads.append(loaded - started)
                checkpoints.append(time.perf_counter() - loaded)
            cp = median(checkpoints)
            print(f"{size:>12,} {interval:>9,} {median(loads) * 1e3:>9.0f} {cp * 1e3:>14.0f} "
                  f"{cp / interval * 1e6:>8.2f}", flush=True)
        store.close()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
