"""The SQL endpoint's result formats on a large answer: time to the client and bytes on the wire.

Builds a store of --spans realistic spans through the write path, starts a real server on it, then
fetches the same query as JSON, CSV, Arrow IPC and Parquet (and through the Polars client).

    .venv/bin/python bench/sql_formats.py --spans 200000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, ServerProcess, build_payloads, env_note, median

from trajscope.collector.otlp_decode import decode_request
from trajscope.storage.duckdb_store import DuckDBStore

QUERY = ("SELECT trace_id, span_id, name, category, agent_name, tool_name, request_model, "
         "start_time_unix_nano, duration_ns, input_tokens, output_tokens, status_code FROM spans")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = OUT / "sql-formats"
    if data.exists():
        import shutil

        shutil.rmtree(data)
    store = DuckDBStore(data)
    for payload in build_payloads(args.spans, 4096):
        store.write(decode_request(payload).table)
    rows = store.query("SELECT count(*) AS n FROM spans").column("n")[0].as_py()
    store.close()
    server = ServerProcess(data, keep=True)
    print(f"trajscope SQL result formats — {env_note()}; {rows:,} rows × 12 columns, medians of {args.repeat}")
    try:
        for fmt in ("json", "csv", "arrow", "parquet"):
            times, size = [], 0
            for _ in range(args.repeat):
                started = time.perf_counter()
                response = httpx.post(server.url("/api/v1/sql"), timeout=300,
                                      json={"sql": QUERY, "format": fmt, "limit": rows})
                response.raise_for_status()
                if fmt == "arrow":
                    pa.ipc.open_stream(response.content).read_all()
                times.append(time.perf_counter() - started)
                size = len(response.content)
            print(f"  {fmt:8s} {median(times) * 1000:8.0f} ms  {size / 2**20:7.1f} MiB  "
                  f"{rows / median(times):,.0f} rows/s", flush=True)
        from trajscope.client import Client

        with Client(server.url("")) as client:
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                df = client.sql(QUERY, limit=rows)
                times.append(time.perf_counter() - started)
        print(f"  Client.sql → polars ({df.height:,} rows) {median(times) * 1000:.0f} ms")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
