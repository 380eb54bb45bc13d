"""OTLP logs ingest: GenAI events as log records (operation details with messages, evaluation results) over
OTLP/HTTP protobuf from several client threads; acknowledged records/s, server CPU and peak RSS, then the
time to read one trace with its records attached as span events.

    .venv/bin/python bench/logs_ingest.py                       # 200,000 records, 4 clients, 3 runs
    .venv/bin/python bench/logs_ingest.py --records 50000 --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, ServerProcess, env_note, median


def _kv(key: str, value) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = value
    return kv


def build_requests(records: int, batch: int) -> tuple[list[bytes], str]:
    """Requests of ``batch`` records over ``records // 2`` spans of one trace per request: per span an
    operation-details event (~1 KB of messages) and an evaluation result."""
    messages_in = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Summarise the ticket. " * 20}]}])
    messages_out = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "The customer " * 30}]}])
    requests, first_trace = [], None
    for start in range(0, records, batch):
        request = ExportLogsServiceRequest()
        resource = request.resource_logs.add()
        resource.resource.attributes.append(_kv("service.name", "bench-genai"))
        scope = resource.scope_logs.add()
        trace_id = os.urandom(16)
        first_trace = first_trace or trace_id.hex()
        for i in range(start, min(records, start + batch)):
            span_id = (i // 2 + 1).to_bytes(8, "big")
            record = scope.log_records.add(time_unix_nano=1_700_000_000_000_000_000 + i, trace_id=trace_id,
                                           span_id=span_id)
            if i % 2 == 0:
                record.event_name = "gen_ai.client.inference.operation.details"
                record.attributes.extend([_kv("gen_ai.input.messages", messages_in),
                                          _kv("gen_ai.output.messages", messages_out)])
            else:
                record.event_name = "gen_ai.evaluation.result"
                record.attributes.extend([_kv("gen_ai.evaluation.name", "Relevance"),
                                          _kv("gen_ai.evaluation.score.value", 4.0)])
        requests.append(request.SerializeToString())
    return requests, first_trace


def one_run(args: argparse.Namespace, requests: list[bytes], trace_id: str, run: int) -> dict:
    server = ServerProcess(OUT / f"logs-{run}")
    url = f"http://127.0.0.1:{server.http_port}/v1/logs"
    proc = psutil.Process(server.proc.pid)
    peak, stop = [0], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    failures, lock = [0], threading.Lock()
    queue = list(enumerate(requests))

    def client() -> None:
        with httpx.Client(timeout=120) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    _, body = queue.pop()
                answer = http.post(url, content=body, headers={"Content-Type": "application/x-protobuf"})
                if answer.status_code != 200:
                    with lock:
                        failures[0] += 1

    cpu_before = proc.cpu_times()
    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    cpu = proc.cpu_times()
    busy = (cpu.user - cpu_before.user) + (cpu.system - cpu_before.system)
    read_started = time.perf_counter()
    body = httpx.get(server.url(f"/api/v1/traces/{trace_id}/logs"), timeout=60).json()
    read_ms = (time.perf_counter() - read_started) * 1000
    stop.set()
    server.stop()
    result = {"records_per_s": args.records / elapsed, "cpu_us_per_record": busy / args.records * 1e6,
              "peak_rss_mib": peak[0] / 2**20, "failures": failures[0], "trace_logs_read_ms": read_ms,
              "trace_logs": len(body["logs"])}
    print(f"  run {run}: {result['records_per_s']:,.0f} records/s acknowledged and stored, "
          f"{result['cpu_us_per_record']:.1f} µs server CPU per record, peak RSS {result['peak_rss_mib']:.0f} MiB, "
          f"one trace's {result['trace_logs']} records read in {read_ms:.0f} ms, failures {failures[0]}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    requests, trace_id = build_requests(args.records, args.batch)
    print(f"{args.records:,} log records in {len(requests)} requests of {args.batch}, {args.clients} clients; "
          f"{env_note()}", flush=True)
    results = [one_run(args, requests, trace_id, run) for run in range(1, args.runs + 1)]
    print(f"median: {median([r['records_per_s'] for r in results]):,.0f} records/s | "
          f"{median([r['cpu_us_per_record'] for r in results]):.1f} µs CPU/record | "
          f"peak RSS {median([r['peak_rss_mib'] for r in results]):.0f} MiB | "
          f"trace logs read {median([r['trace_logs_read_ms'] for r in results]):.0f} ms")


if __name__ == "__main__":
    main()
