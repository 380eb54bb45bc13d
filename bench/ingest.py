"""Ingest benchmark: acknowledged and end-to-end spans/s over OTLP, server CPU and RSS, bytes per span.

A separate load-generator process (bench/loadgen.py) sends pre-serialised realistic agent batches with
several concurrent clients to a fresh `trajscope serve`. Each configuration runs --runs times; medians
are printed.

    .venv/bin/python bench/ingest.py                  # gRPC, 4 clients, 512-span batches, 3 runs
    .venv/bin/python bench/ingest.py --protocol http --spans 100000
    .venv/bin/python bench/ingest.py --protocol json --spans 100000   # OTLP/JSON over HTTP (the JS SDK's default)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from trajscope.memory_budget import memory_pss

sys.path.insert(0, str(Path(__file__).parent))
from common import (
    OUT,
    ServerProcess,
    build_payloads,
    dir_bytes,
    env_note,
    median,
    otlp_json,
    pct,
    write_payloads,
)


def one_run(args: argparse.Namespace, payload_file: Path, total_spans: int, run: int,
            rate: float = 0.0) -> dict:
    server = ServerProcess(OUT / f"ingest-{run}", *args.server_args)
    proc = psutil.Process(server.proc.pid)
    cpu_before = proc.cpu_times()
    # The decode workers are started (and warmed up) before the server reports ready: only what they use
    # from here on is load.
    workers_before = {c.pid: c.cpu_times() for c in proc.children(recursive=True)}
    peak_rss = [proc.memory_info().rss]
    peak_pss = [0, 0, 0]  # total, server, workers (at the total's peak)
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            try:
                peak_rss[0] = max(peak_rss[0], proc.memory_info().rss)
            except psutil.Error:
                return
            own, workers = memory_pss(proc.pid)
            if own + workers > peak_pss[0]:
                peak_pss[:] = [own + workers, own, workers]
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    target = (f"127.0.0.1:{server.grpc_port}" if args.protocol == "grpc"
              else f"http://127.0.0.1:{server.http_port}/v1/traces")
    done = subprocess.run([sys.executable, str(Path(__file__).parent / "loadgen.py"), str(payload_file),
                           args.protocol, target, str(args.clients), str(rate)],
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    while server.ingest()["spans_written"] < total_spans:
        time.sleep(0.01)
    queryable_at = time.time()
    cpu_after = proc.cpu_times()
    # Decode runs in worker processes: count them too.
    worker_cpu = 0.0
    for child in proc.children(recursive=True):
        now, then = child.cpu_times(), workers_before.get(child.pid)
        worker_cpu += (now.user + now.system) - ((then.user + then.system) if then else 0.0)
    sampling.set()
    sampler.join()
    server.stop()
    stored = dir_bytes(server.data)
    from trajscope.storage.compaction import compact

    compact(server.data)
    compacted = dir_bytes(server.data)
    elapsed_ack = result["last_ack"] - result["first_send"]
    cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system) + worker_cpu
    return {
        "acked_sps": total_spans / elapsed_ack,
        "e2e_sps": total_spans / (queryable_at - result["first_send"]),
        # From the first send until every span is queryable (loading included); µs of CPU per span is the
        # figure that moves least with the machine's speed swings.
        "cpu_cores": cpu / (queryable_at - result["first_send"]),
        "cpu_us_per_span": cpu / total_spans * 1e6,
        "peak_rss_mb": peak_rss[0] / 2**20,
        "peak_pss_mb": peak_pss[0] / 2**20, "peak_pss_server_mb": peak_pss[1] / 2**20,
        "peak_pss_workers_mb": peak_pss[2] / 2**20,
        "stored_bytes_per_span": stored / total_spans,
        "compacted_bytes_per_span": compacted / total_spans,
        "p50_ms": pct(result["latencies"], 0.5) * 1000,
        "p99_ms": pct(result["latencies"], 0.99) * 1000,
        "failures": result["failures"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", choices=("grpc", "http", "json"), default="grpc")
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--server-args", nargs="*", default=[], help="extra flags for trajscope serve")
    parser.add_argument("--half-load", action="store_true", help="also measure ack latency at half the rate")
    args = parser.parse_args()

    OUT.mkdir(exist_ok=True)
    payloads = build_payloads(args.spans, args.batch)
    from trajscope.collector.otlp_decode import decode_request

    total_spans = sum(decode_request(p).accepted for p in payloads)
    if args.protocol == "json":
        print("converting the requests to OTLP/JSON…", flush=True)
        payloads = [otlp_json(p) for p in payloads]
    payload_file = OUT / ("payloads-json.bin" if args.protocol == "json" else "payloads.bin")
    write_payloads(payload_file, payloads)
    wire = sum(len(p) for p in payloads)
    print(f"trajscope ingest benchmark — {env_note()}")
    print(f"workload: {total_spans} spans in {len(payloads)} requests of ~{args.batch}, "
          f"{wire / total_spans:.0f} wire bytes/span, {args.protocol}, {args.clients} clients, {args.runs} runs")
    runs = []
    for run in range(args.runs):
        r = one_run(args, payload_file, total_spans, run)
        runs.append(r)
        print(f"  run {run + 1}: acked {r['acked_sps']:,.0f} spans/s, end-to-end {r['e2e_sps']:,.0f} spans/s, "
              f"server CPU {r['cpu_cores']:.2f} cores / {r['cpu_us_per_span']:.1f} µs per span (incl. decode "
              f"workers), peak RSS {r['peak_rss_mb']:.0f} MiB, peak PSS {r['peak_pss_mb']:.0f} MiB "
              f"(server {r['peak_pss_server_mb']:.0f} + workers {r['peak_pss_workers_mb']:.0f}), "
              f"{r['stored_bytes_per_span']:.0f} B/span stored ({r['compacted_bytes_per_span']:.0f} compacted), "
              f"ack p50 {r['p50_ms']:.0f} ms p99 {r['p99_ms']:.0f} ms, failures {r['failures']}", flush=True)
    keys = ("acked_sps", "e2e_sps", "cpu_cores", "cpu_us_per_span", "peak_rss_mb", "peak_pss_mb",
            "stored_bytes_per_span",
            "compacted_bytes_per_span",
            "p50_ms", "p99_ms")
    med = {k: median([r[k] for r in runs]) for k in keys}
    wire_per_span = wire / total_spans
    print(f"median: acked {med['acked_sps']:,.0f} spans/s | end-to-end {med['e2e_sps']:,.0f} spans/s | "
          f"server CPU {med['cpu_cores']:.2f} cores, {med['cpu_us_per_span']:.1f} µs/span | "
          f"peak RSS {med['peak_rss_mb']:.0f} MiB, PSS of server and workers {med['peak_pss_mb']:.0f} MiB | "
          f"stored {med['stored_bytes_per_span']:.0f} B/span ({med['stored_bytes_per_span'] / wire_per_span:.2f}"
          f"× wire; after `trajscope compact` {med['compacted_bytes_per_span']:.0f} B/span, "
          f"{med['compacted_bytes_per_span'] / wire_per_span:.2f}× wire) | "
          f"ack p50 {med['p50_ms']:.0f} ms p99 {med['p99_ms']:.0f} ms")
    if args.half_load:
        rate = med["acked_sps"] / 2 / (total_spans / len(payloads))
        r = one_run(args, payload_file, total_spans, 99, rate=rate)
        print(f"half load ({med['acked_sps'] / 2:,.0f} spans/s offered): ack p50 {r['p50_ms']:.0f} ms, "
              f"p99 {r['p99_ms']:.0f} ms")


if __name__ == "__main__":
    main()
