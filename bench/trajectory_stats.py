"""Analysis endpoints: trajectory + latency of very large traces, and the cross-run stats over 1M spans.

The stats store is built through the real write path (`DuckDBStore.write`, so per-trace breakdowns are
computed exactly as in production) from the demo workload replicated with fresh ids.

    .venv/bin/python bench/trajectory_stats.py [--spans 1000000] [--repeat 5]   # traces of 10k and 50k spans
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))  # for tests.otlp_builders
from common import OUT, ServerProcess, build_payloads, env_note, median, pct, timed

from tests.otlp_builders import make_request, make_span
from trajscope.collector.otlp_decode import decode_request
from trajscope.storage.duckdb_store import DuckDBStore


def _suffix(column: pa.ChunkedArray, keep: int, tag: str) -> pa.Array:
    return pc.binary_join_element_wise(pc.utf8_slice_codeunits(column, 0, keep), pa.scalar(tag), "")


def replicate(template: pa.Table, copy: int) -> pa.Table:
    tag = f"{copy:06x}"
    t = template.set_column(template.schema.get_field_index("trace_id"), "trace_id",
                            _suffix(template.column("trace_id"), 26, tag))
    t = t.set_column(t.schema.get_field_index("span_id"), "span_id", _suffix(t.column("span_id"), 10, tag))
    return t.set_column(t.schema.get_field_index("parent_span_id"), "parent_span_id",
                        _suffix(t.column("parent_span_id"), 10, tag))


def build_stats_store(path: Path, spans: int) -> DuckDBStore:
    if path.exists():
        shutil.rmtree(path)
    store = DuckDBStore(path)
    template = pa.concat_tables([decode_request(p).table for p in build_payloads(8192, 512)])
    copies = max(1, spans // template.num_rows)
    started = time.perf_counter()
    for c in range(copies):
        store.write(replicate(template, c))
        done = (c + 1) * template.num_rows
        print(f"  building through the write path: {done:,} spans "
              f"({done / (time.perf_counter() - started):,.0f}/s)", end="\r", flush=True)
    print()
    store.checkpoint()
    return store


def big_trace(n: int) -> bytes:
    """One agent run with ``n`` spans: an agent loop of LLM calls each fanning out to parallel tools."""
    root = make_span("invoke_agent big", start=0, end=10**12, attrs={"gen_ai.operation.name": "invoke_agent",
                                                                     "gen_ai.agent.name": "big"})
    spans, t = [root], 1000
    while len(spans) < n:
        llm = make_span("chat", trace_id=root.trace_id, parent=root, start=t, end=t + 5000,
                        attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                               "gen_ai.usage.input_tokens": 10, "input.value": "x" * 300})
        spans.append(llm)
        for k in range(min(4, n - len(spans))):
            spans.append(make_span(f"execute_tool t{k}", trace_id=root.trace_id, parent=root, start=t + 5000,
                                   end=t + 9000 + k * 500, attrs={"gen_ai.operation.name": "execute_tool",
                                                                  "gen_ai.tool.name": f"t{k}"}))
        t += 12_000
    return make_request(spans[:n]).SerializeToString()



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    print(f"trajscope analysis benchmark — {env_note()}")
    store = build_stats_store(OUT / "analysis", args.spans)
    big = {}
    for n in (10_000, 50_000):
        table = decode_request(big_trace(n)).table
        store.write(table)
        big[n] = table.column("trace_id")[0].as_py()
    count = store.query("SELECT count(*) AS n FROM spans").column("n")[0].as_py()
    store.close()
    print(f"store: {count:,} spans")
    server = ServerProcess(OUT / "analysis", keep=True)
    client = httpx.Client(base_url=server.url(""), timeout=120)
    for n, trace_id in big.items():
        for what in ("trajectory", "latency"):
            for layout in ("objects", "table"):
                url = f"/api/v1/traces/{trace_id}/{what}?layout={layout}"
                # Built: `Cache-Control: no-cache` makes the server rebuild the answer every time.
                t = timed(lambda u=url: client.get(u, headers={"Cache-Control": "no-cache"}).raise_for_status(),
                          args.repeat)
                warm = timed(lambda u=url: client.get(u).raise_for_status(), args.repeat)
                size = len(client.get(url).content)
                print(f"{what} of a {n:,}-span trace (HTTP, layout={layout}, {size / 2**20:.1f} MiB): built p50 "
                      f"{median(t):.0f} ms, max {max(t):.0f} ms; again, from the answer cache: "
                      f"p50 {median(warm):.1f} ms")
    for endpoint, groups in (("latency", ("category", "tool", "model", "agent", "span_name")),
                             ("usage", ("model", "agent", "user", "session", "day"))):
        for group in groups:
            t = timed(lambda e=endpoint, g=group: client.get(f"/api/v1/stats/{e}",
                                                              params={"group_by": g}).raise_for_status(),
                      args.repeat)
            print(f"stats/{endpoint}?group_by={group} over {count:,} spans: p50 {median(t):.0f} ms, "
                  f"p95 {pct(t, 0.95):.0f} ms")
    server.stop()


if __name__ == "__main__":
    main()
