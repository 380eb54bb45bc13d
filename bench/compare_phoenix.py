"""trajscope and Arize Phoenix side by side: the same pre-serialised load, the same machine, one run.

Phoenix (default SQLite store) is installed by this script into bench/.peer/venv (pinned below) and run
on loopback ports. Both receive the demo workload over OTLP/gRPC from the same load generator
(bench/loadgen.py, a separate process). Reported: acknowledged spans/s, end-to-end spans/s (first send
until every acknowledged span is queryable), trace-lookup latency through each one's API, bytes per span
on disk, peak RSS — and trajscope's ratio to Phoenix for each.

    .venv/bin/python bench/compare_phoenix.py --spans 20000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, ServerProcess, build_payloads, dir_bytes, env_note, free_port, median, write_payloads

from trajscope.collector.otlp_decode import decode_request

PHOENIX = "arize-phoenix==20.26.1"
PEER = Path(__file__).parent / ".peer"


def ensure_phoenix() -> Path:
    exe = PEER / "venv" / "bin" / "phoenix"
    if not exe.exists():
        print(f"installing {PHOENIX} into {PEER / 'venv'} …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEER / "venv")], check=True)
        subprocess.run([str(PEER / "venv" / "bin" / "pip"), "install", "-q", PHOENIX], check=True)
    return exe


class Phoenix:
    def __init__(self, data: Path) -> None:
        if data.exists():
            shutil.rmtree(data)
        data.mkdir(parents=True)
        self.data, self.http_port, self.grpc_port = data, free_port(), free_port()
        self.client = httpx.Client(timeout=30)
        env = {**os.environ, "PHOENIX_WORKING_DIR": str(data), "PHOENIX_HOST": "127.0.0.1",
               "PHOENIX_PORT": str(self.http_port), "PHOENIX_GRPC_PORT": str(self.grpc_port)}
        self.log = open(data.parent / "phoenix.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([str(ensure_phoenix()), "serve"], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError("Phoenix did not start; see bench/.out/phoenix.log")

    def stored(self) -> int:
        query = {"query": "{ projects { edges { node { recordCount } } } }"}
        r = httpx.post(f"http://127.0.0.1:{self.http_port}/graphql", json=query, timeout=30).json()
        return sum(e["node"]["recordCount"] for e in r["data"]["projects"]["edges"])

    def lookup(self, trace_id: str) -> None:
        self.client.get(f"http://127.0.0.1:{self.http_port}/v1/projects/default/spans",
                        params={"trace_id": trace_id, "limit": 1000}).raise_for_status()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class Trajscope:
    def __init__(self, data: Path) -> None:
        self.server = ServerProcess(data)
        self.proc, self.data, self.grpc_port = self.server.proc, data, self.server.grpc_port
        self.client = httpx.Client(timeout=30)

    def stored(self) -> int:
        return self.server.ingest()["spans_written"]

    def lookup(self, trace_id: str) -> None:
        self.client.get(self.server.url(f"/api/v1/traces/{trace_id}")).raise_for_status()

    def stop(self) -> None:
        self.server.stop()


def measure(system, payload_file: Path, spans_per_payload: list[int], trace_ids: list[str], clients: int,
            e2e_timeout: float) -> dict:
    proc = psutil.Process(system.proc.pid)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            with contextlib.suppress(psutil.Error):
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]))
            time.sleep(0.1)

    threading.Thread(target=sample, daemon=True).start()
    out = subprocess.run([sys.executable, str(Path(__file__).parent / "loadgen.py"), str(payload_file), "grpc",
                          f"127.0.0.1:{system.grpc_port}", str(clients)], capture_output=True, text=True,
                         check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    acked = sum(spans_per_payload[i] for i in result["acked"])
    deadline = time.time() + e2e_timeout
    stored = system.stored()
    while stored < acked and time.time() < deadline:
        time.sleep(0.5 if stored else 0.05)
        stored = system.stored()
    queryable_at = time.time()
    time.sleep(3)  # let housekeeping after the burst (checkpoints, compaction) finish before timing reads
    for trace_id in trace_ids[:3]:
        system.lookup(trace_id)  # warm
    lookups = []
    for trace_id in trace_ids:
        start = time.perf_counter()
        system.lookup(trace_id)
        lookups.append((time.perf_counter() - start) * 1000)
    done.set()
    system.stop()
    return {
        "acked_spans": acked, "failed_requests": result["failures"],
        "acked_sps": acked / (result["last_ack"] - result["first_send"]),
        "e2e_sps": stored / (queryable_at - result["first_send"]), "stored": stored,
        "complete": stored >= acked, "lookup_ms": median(lookups),
        "bytes_per_span": dir_bytes(system.data) / max(stored, 1), "peak_rss_mb": peak[0] / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--e2e-timeout", type=float, default=900, help="seconds to wait for Phoenix to store")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    payloads = build_payloads(args.spans, args.batch)
    payload_file = OUT / "compare.bin"
    write_payloads(payload_file, payloads)
    batches = [decode_request(p) for p in payloads]
    per_payload = [b.accepted for b in batches]
    trace_ids = sorted({t for b in batches for t in b.table.column("trace_id").to_pylist()})[:: max(1, len(
        payloads) // 2)][:20]
    print(f"trajscope vs Arize Phoenix ({PHOENIX}, SQLite) — {env_note()}")
    print(f"load: {sum(per_payload)} spans in {len(payloads)} OTLP/gRPC requests, {args.clients} clients")
    results = {}
    for name, factory in (("trajscope", Trajscope), ("phoenix", Phoenix)):
        results[name] = r = measure(factory(OUT / f"compare-{name}"), payload_file, per_payload, trace_ids,
                                    args.clients, args.e2e_timeout)
        print(f"  {name:9}: acked {r['acked_sps']:,.0f} spans/s ({r['acked_spans']} acked, "
              f"{r['failed_requests']} requests refused), end-to-end {r['e2e_sps']:,.0f} spans/s"
              f"{'' if r['complete'] else ' (timed out before all were stored)'}, trace lookup "
              f"{r['lookup_ms']:.1f} ms, {r['bytes_per_span']:.0f} B/span, peak RSS {r['peak_rss_mb']:.0f} MiB",
              flush=True)
    t, p = results["trajscope"], results["phoenix"]
    print(f"ratios (trajscope / Phoenix): acked spans/s {t['acked_sps'] / p['acked_sps']:.1f}×, "
          f"end-to-end spans/s {t['e2e_sps'] / p['e2e_sps']:.1f}×, trace lookup "
          f"{p['lookup_ms'] / t['lookup_ms']:.1f}× faster, "
          f"bytes/span {t['bytes_per_span'] / p['bytes_per_span']:.2f}×, "
          f"peak RSS {t['peak_rss_mb'] / p['peak_rss_mb']:.2f}×")


if __name__ == "__main__":
    main()
