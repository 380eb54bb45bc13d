"""Soak: a steady OTLP/gRPC stream at a fixed rate for many minutes, to see whether memory grows.

A fresh `trajscope serve` (default flags, or --server-args) receives --rate spans/s from --clients paced gRPC
clients for --minutes. The workload's requests are sent over and over with fresh trace ids each round, so
every span is new to the store. Every few seconds the PSS of the server and its workers is sampled; each
minute prints its spans stored and its highest memory, and the end prints the growth from the second minute
(after warm-up) to the last, failures and whether every acknowledged span is stored.

    .venv/bin/python bench/soak.py --minutes 10 --rate 30000
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import threading
import time
from pathlib import Path

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, ServerProcess, build_payloads, env_note

from trajscope.memory_budget import memory_pss

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def trace_ids(payload: bytes) -> tuple[list[bytes], int]:
    """(the request's distinct trace ids, its span count)."""
    request = ExportTraceServiceRequest.FromString(payload)
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    return sorted({s.trace_id for s in spans}), len(spans)


def renamed(payload: bytes, ids: list[bytes], round_no: int) -> bytes:
    """The request with each trace id replaced by one derived from it and the round (its bytes appear only
    as trace ids: random 16-byte values)."""
    for old in ids:
        payload = payload.replace(old, hashlib.md5(old + round_no.to_bytes(4, "little")).digest())
    return payload


def held(server: ServerProcess) -> str:
    """What holds the server's memory now, from its /metrics: DuckDB's buffers by tag, the C heap, Arrow."""
    parts = []
    for line in httpx.get(server.url("/metrics"), timeout=10).text.splitlines():
        for prefix, label in (("trajscope_duckdb_memory_bytes{tag=", ""), ("trajscope_malloc_in_use_bytes", "malloc"),
                              ("trajscope_arrow_memory_bytes", "arrow")):
            if line.startswith(prefix):
                name = label or line.split('"')[1].lower()
                parts.append(f"{name} {float(line.split()[-1]) / 2**20:.0f}")
    return ", ".join(parts) + " MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=30_000, help="spans per second, all clients together")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--sample-s", type=float, default=5.0)
    ap.add_argument("--server-args", nargs="*", default=[], help="extra flags for trajscope serve")
    args = ap.parse_args()

    payloads = build_payloads(50_000, args.batch)
    ids, counts = zip(*(trace_ids(p) for p in payloads), strict=True)
    spans_per_request = sum(counts) / len(payloads)
    print(f"trajscope soak — {env_note()}")
    print(f"{args.rate:,} spans/s from {args.clients} gRPC clients for {args.minutes:g} min "
          f"({len(payloads)} requests of ~{spans_per_request:.0f} spans, fresh trace ids each round)", flush=True)
    server = ServerProcess(OUT / "soak", *args.server_args)
    deadline = time.monotonic() + args.minutes * 60
    acked = [0] * args.clients
    failures = [0] * args.clients
    interval = args.clients * spans_per_request / args.rate

    def client(idx: int) -> None:
        call = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}").unary_unary(EXPORT)
        next_at, round_no, i = time.monotonic() + idx * interval / args.clients, 0, idx
        while time.monotonic() < deadline:
            if i >= len(payloads):
                i, round_no = i - len(payloads), round_no + 1
            body = renamed(payloads[i], ids[i], round_no) if round_no else payloads[i]
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_at += interval
            try:
                call(body, timeout=10)
                acked[idx] += counts[i]
            except grpc.RpcError:
                failures[idx] += 1
            i += args.clients

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    minutes: list[tuple[int, int]] = []  # (spans stored by the minute's end, highest PSS in the minute)
    minute_peak = 0
    while any(t.is_alive() for t in threads):
        time.sleep(args.sample_s)
        minute_peak = max(minute_peak, sum(memory_pss(server.proc.pid)))
        if time.monotonic() - started >= 60 * (len(minutes) + 1):
            written = server.ingest()["spans_written"]
            minutes.append((written, minute_peak))
            print(f"  minute {len(minutes)}: {written:,} spans stored, peak PSS {minute_peak / 2**20:.0f} MiB "
                  f"({held(server)})", flush=True)
            minute_peak = 0
    for t in threads:
        t.join()
    total = sum(acked)
    settle = time.monotonic() + 60
    while server.ingest()["spans_written"] < total and time.monotonic() < settle:
        time.sleep(0.2)
    written = server.ingest()["spans_written"]
    server.stop()
    if len(minutes) >= 3:
        base, last = minutes[1][1], max(m[1] for m in minutes[-2:])
        print(f"growth from minute 2 to the last two: {(last - base) / 2**20:+.0f} MiB "
              f"({base / 2**20:.0f} → {last / 2**20:.0f} MiB peak PSS)")
    print(f"acknowledged {total:,} spans, stored {written:,} (lost {max(0, total - written):,}), "
          f"failed exports {sum(failures)}, {total / (time.monotonic() - started):,.0f} spans/s sustained")


if __name__ == "__main__":
    main()
