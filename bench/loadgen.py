"""The load generator, run as its own process: K client threads send pre-serialised requests.

Usage: python bench/loadgen.py PAYLOAD_FILE grpc|http TARGET CLIENTS [RATE_PER_S]
Prints one JSON line: first send time, last ack time, per-request ack latencies, failures.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import grpc
import httpx

sys.path.insert(0, str(Path(__file__).parent))
from common import read_payloads

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def main() -> None:
    path, protocol, target, clients = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    rate = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0  # total requests/s, 0 = as fast as acked
    payloads = read_payloads(Path(path))
    latencies: list[float] = []
    sent_at: list[float] = []
    acked: list[int] = []
    t_zero = time.perf_counter()
    failures = [0]
    lock = threading.Lock()
    start_at = time.time() + 0.2

    def client(idx: int) -> None:
        mine = list(enumerate(payloads))[idx::clients]
        interval = clients / rate if rate else 0.0
        if protocol == "grpc":
            channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)])
            call = channel.unary_unary(EXPORT)
            send = lambda p: call(p, timeout=60)  # noqa: E731
        else:
            session = httpx.Client(timeout=60)
            headers = {"Content-Type": "application/json" if protocol == "json" else "application/x-protobuf"}

            def send(p: bytes) -> None:
                r = session.post(target, content=p, headers=headers)
                if r.status_code != 200:
                    raise RuntimeError(r.status_code)
        while time.time() < start_at:
            time.sleep(0.001)
        next_at = start_at + idx * (interval / clients if interval else 0)
        for index, p in mine:
            if interval:
                delay = next_at - time.time()
                if delay > 0:
                    time.sleep(delay)
                next_at += interval
            t0 = time.perf_counter()
            try:
                send(p)
            except Exception:  # counted, reported; the benchmark says how many failed
                with lock:
                    failures[0] += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)
                sent_at.append(t0 - t_zero)
                acked.append(index)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"first_send": start_at, "last_ack": time.time(), "latencies": latencies,
                      "failures": failures[0], "sent_at": sent_at,
                      "acked": acked}))


if __name__ == "__main__":
    main()
