"""SIGKILL in the middle of a load: every acknowledged span is stored, none twice."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import duckdb
import grpc
import httpx
import psutil

from tests.e2e.conftest import make_server
from tests.e2e.crash_check import check_store
from tests.e2e.crash_loop import MOMENTS, crash_loop
from tests.otlp_builders import make_request, make_span

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _batch(rng: random.Random, n: int):
    trace_id = rng.randbytes(16)
    root = make_span("root", trace_id=trace_id, span_id=rng.randbytes(8))
    spans = [root] + [make_span(f"s{i}", trace_id=trace_id, span_id=rng.randbytes(8), parent=root,
                                attrs={"payload": "x" * 200, "i": i}) for i in range(n - 1)]
    return [(s.trace_id.hex(), s.span_id.hex()) for s in spans], make_request(spans).SerializeToString()


def test_sigkill_loses_no_acknowledged_span_and_stores_none_twice(tmp_path):
    server = make_server(tmp_path)
    server.start()
    acked: set[tuple[str, str]] = set()
    sent_payloads: list[bytes] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(seed: int, use_grpc: bool):
        rng = random.Random(seed)
        channel = grpc.insecure_channel(server.otlp_grpc)
        call = channel.unary_unary(EXPORT)
        while not stop.is_set():
            ids, payload = _batch(rng, rng.randint(20, 120))
            with lock:
                sent_payloads.append(payload)
            try:
                if use_grpc:
                    call(payload, timeout=5)
                else:
                    r = httpx.post(server.otlp_http, content=payload, timeout=5,
                                   headers={"Content-Type": "application/x-protobuf"})
                    if r.status_code != 200:
                        continue
            except (grpc.RpcError, httpx.HTTPError):
                continue  # not acknowledged: may or may not be stored
            with lock:
                acked.update(ids)
        channel.close()

    threads = [threading.Thread(target=client, args=(i, i % 2 == 0)) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(acked) < 3000 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = psutil.Process(server.proc.pid).children(recursive=True)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    # its decode processes must not outlive it
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"{len(alive)} decode processes outlived the killed server"
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) >= 1000, "load did not get going before the kill"

    # Restart on the same data, then re-send everything (acknowledged or not): idempotent.
    server.start()
    for payload in sent_payloads[:50]:
        assert httpx.post(server.otlp_http, content=payload, timeout=10,
                          headers={"Content-Type": "application/x-protobuf"}).status_code == 200
    assert server.stop() == 0, "SIGTERM must flush and exit cleanly"
    con = duckdb.connect(os.path.join(server.data, "trajscope.duckdb"), read_only=True)
    stored = con.execute("SELECT trace_id, span_id FROM spans").fetchall()
    con.close()
    stored_set = set(stored)
    assert len(stored) == len(stored_set), "a span is stored twice"
    missing = acked - stored_set
    assert not missing, f"{len(missing)} acknowledged spans lost, e.g. {sorted(missing)[:3]}"


def test_ten_kills_in_a_row_at_any_moment_lose_nothing_and_every_start_succeeds(tmp_path):
    """SIGKILL ten times on one data directory — under load on all three encodings, right after a restart's
    replay, while repricing, during a compaction — then every start must have succeeded, every acknowledged
    span be stored once, and every trace summary equal a from-scratch recomputation."""
    server = make_server(tmp_path)
    said: list[str] = []
    result = crash_loop(server, rounds=10, seed=19, say=said.append, most_spans=40_000)
    assert set(result.rounds) == set(MOMENTS)
    assert result.starts == 1 + sum(moment != "compact" for moment in result.rounds)
    assert len(result.acked) >= 2000, f"the load did not get going: {said}"
    assert server.stop() == 0
    log = server.log_text(tail=None)
    assert "Traceback" not in log, log[-5000:]
    # assert "set aside" in log  # some kill left a WAL, and the start that followed did not replay it
    assert check_store(server.data, result.acked) == []
