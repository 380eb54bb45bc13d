"""Overload: many clients (gRPC and HTTP) send as fast as they are answered, for a fixed time, against one
server; meanwhile a reader looks up acknowledged traces and polls health. Prints what was acknowledged,
refused (by status), stored, lost (acknowledged but not stored: must be 0) and stored twice; export answer
times (all must come within the exporters' 10 s timeout); read latency p50/p99; peak memory of the server and
its workers together (sum of PSS).

    .venv/bin/python bench/overload.py                         # 60 s, 4 processes × 16 clients, 512-span exports
    .venv/bin/python bench/overload.py --seconds 20 --processes 2 --clients 8
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import httpx

from trajscope.memory_budget import memory_pss

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, ServerProcess, build_payloads, env_note, median, pct

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
MARK = b"\xa5" * 16  # the template export's trace id, replaced by a fresh one per send


def _template(spans: int) -> bytes:
    """One realistic export whose spans all carry the trace id ``MARK``."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest.FromString(build_payloads(spans, spans)[0])
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                span.trace_id = MARK
                for link in span.links:
                    link.trace_id = MARK
    return request.SerializeToString()


def _load(index: int, protocol: str, target: str, clients: int, seconds: float, template: bytes,
          out: str) -> None:
    """One load process: ``clients`` threads send fresh copies of the template until the time is up."""
    stop_at = time.monotonic() + seconds
    results: list[tuple[str, str, float]] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        rng = random.Random(index * 1000 + k)
        channel = grpc.insecure_channel(target) if protocol == "grpc" else None
        http = httpx.Client(timeout=10) if protocol == "http" else None
        call = channel.unary_unary(EXPORT) if channel else None
        while time.monotonic() < stop_at:
            trace_id = rng.randbytes(16)
            body = template.replace(MARK, trace_id)
            started = time.monotonic()
            try:
                if call is not None:
                    call(body, timeout=10)
                    verdict = "acked"
                else:
                    answer = http.post(target, content=body, headers={"Content-Type": "application/x-protobuf"})
                    verdict = "acked" if answer.status_code == 200 else f"http {answer.status_code}"
            except grpc.RpcError as exc:
                verdict = f"grpc {exc.code().name}"
            except httpx.HTTPError as exc:
                verdict = f"http {type(exc).__name__}"
            with lock:
                results.append((trace_id.hex(), verdict, time.monotonic() - started))
            if verdict != "acked":
                time.sleep(0.2)  # an exporter backs off before retrying
        if channel:
            channel.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    Path(out).write_text(json.dumps(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--processes", type=int, default=4, help="load processes, alternately gRPC and HTTP")
    parser.add_argument("--clients", type=int, default=16, help="client threads per load process")
    parser.add_argument("--spans", type=int, default=512, help="spans per export")
    parser.add_argument("--no-reads", action="store_true", help="no trace lookups or health checks during the burst")
    parser.add_argument("server_args", nargs="*", help="extra `trajscope serve` flags (after --)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    template = _template(args.spans)
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    per_export = sum(len(ss.spans) for rs in ExportTraceServiceRequest.FromString(template).resource_spans
                     for ss in rs.scope_spans)
    server = ServerProcess(OUT / "overload", *args.server_args)
    print(f"overload: {args.processes} processes × {args.clients} clients, {args.spans}-span exports, "
          f"{args.seconds:g} s; {env_note()}", flush=True)
    peak, reads, health_reads, stop = [0], [], [], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], sum(memory_pss(server.proc.pid)))
            time.sleep(0.25)

    def read() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                started = time.monotonic()
                http.get(server.url("/api/v1/health"))
                health_reads.append(time.monotonic() - started)
                listed = http.get(server.url("/api/v1/traces"), params={"limit": 20}).json().get("traces", [])
                if listed:
                    started = time.monotonic()
                    http.get(server.url(f"/api/v1/traces/{random.choice(listed)['trace_id']}"))
                    reads.append(time.monotonic() - started)
                time.sleep(0.05)

    helpers = [threading.Thread(target=watch, daemon=True)]
    if not args.no_reads:
        helpers.append(threading.Thread(target=read, daemon=True))
    for h in helpers:
        h.start()
    ctx = multiprocessing.get_context("spawn")
    outs, procs = [], []
    for i in range(args.processes):
        protocol = ("grpc", "http")[i % 2]
        target = f"127.0.0.1:{server.grpc_port}" if protocol == "grpc" else \
            f"http://127.0.0.1:{server.http_port}/v1/traces"
        out = str(OUT / f"overload-{i}.json")
        outs.append(out)
        procs.append(ctx.Process(target=_load, args=(i, protocol, target, args.clients, args.seconds, template, out)))
    started = time.monotonic()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    elapsed = time.monotonic() - started
    results = [r for out in outs for r in json.loads(Path(out).read_text())]
    acked = {t for t, v, _ in results if v == "acked"}
    # Everything acknowledged becomes queryable: wait for the backlog to drain.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ingest = httpx.get(server.url("/api/v1/health"), timeout=30).json()["ingest"]
        if ingest.get("pending_spans", 0) == 0 and ingest.get("decoding", 0) == 0:
            break
        time.sleep(0.5)
    stop.set()
    rows = httpx.post(server.url("/api/v1/sql"), timeout=120, json={
        "sql": "SELECT trace_id, count(*) AS n, count(DISTINCT span_id) AS d FROM spans GROUP BY trace_id",
        "limit": 1_000_000}).json()["rows"]
    stored = {r["trace_id"]: (r["n"], r["d"]) for r in rows}
    server.stop()
    verdicts = Counter(v for _, v, _ in results)
    lost = sum(per_export - min(stored.get(t, (0, 0))[1], per_export) for t in acked)
    twice = sum(1 for n, d in stored.values() if n != d)
    refused_stored = sum(1 for t, v, _ in results if v != "acked" and t in stored)
    answer_times = [s for _, _, s in results]
    print(f"exports sent {len(results):,} ({len(results) * per_export / elapsed:,.0f} spans/s offered), "
          f"acknowledged {len(acked):,} ({len(acked) * per_export / elapsed:,.0f} spans/s)")
    print("answers: " + ", ".join(f"{k} {n:,}" for k, n in verdicts.most_common()))
    print(f"export answer time: p50 {median(answer_times) * 1000:.0f} ms, "
          f"p99 {pct(answer_times, 0.99) * 1000:.0f} ms, max {max(answer_times) * 1000:.0f} ms "
          f"({sum(1 for s in answer_times if s >= 10):,} at or past 10 s)")
    print(f"stored: {sum(n for n, _ in stored.values()):,} spans of {len(stored):,} traces; "
          f"lost (acknowledged spans not stored): {lost}; traces with a span stored twice: {twice}; "
          f"refused but stored: {refused_stored}")
    if reads:
        print(f"reads during the burst: trace lookup p50 {median(reads) * 1000:.0f} ms, "
              f"p99 {pct(reads, 0.99) * 1000:.0f} ms ({len(reads)}); "
              f"health p99 {pct(health_reads, 0.99) * 1000:.0f} ms")
    print(f"peak memory, server and workers (sum of PSS): {peak[0] / 2**20:,.0f} MiB")
    for out in outs:
        os.unlink(out)


if __name__ == "__main__":
    main()
