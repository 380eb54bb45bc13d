"""Overload is answered, not absorbed: with a tiny decode backlog and no admission wait, a burst of concurrent
exports is partly refused with the statuses the OpenTelemetry exporters retry (HTTP 429 + Retry-After, gRPC
RESOURCE_EXHAUSTED + RetryInfo); every acknowledged span is stored once, no refused one is; a real exporter
sending into the same overload gets all its spans in by retrying."""

from __future__ import annotations

import os
import threading
from collections import Counter

import grpc
import httpx
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tests.e2e.conftest import make_server, wait_for
from tests.otlp_builders import make_request, make_span

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
SPANS_PER_EXPORT = 2048


def _burst_body(index: int) -> tuple[bytes, str]:
    trace_id = os.urandom(16)
    spans = [make_span(f"burst {index}", trace_id=trace_id, attrs={"gen_ai.operation.name": "chat", "i": i})
             for i in range(SPANS_PER_EXPORT)]
    return make_request(spans).SerializeToString(), trace_id.hex()


def test_a_burst_is_partly_refused_with_retryable_statuses_and_nothing_acknowledged_is_lost(tmp_path):
    server = make_server(tmp_path, "--decode-backlog", "1", "--admission-wait", "0", "--decode-workers", "1")
    server.start()
    bodies = [_burst_body(i) for i in range(24)]
    answers: dict[str, str] = {}
    retry_hints: list[str] = []
    lock = threading.Lock()

    def send(index: int) -> None:
        body, trace_id = bodies[index]
        if index % 2:
            with grpc.insecure_channel(server.otlp_grpc) as channel:
                try:
                    channel.unary_unary(EXPORT)(body, timeout=10)
                    verdict = "acked"
                except grpc.RpcError as exc:
                    verdict = exc.code().name
                    details = dict(exc.trailing_metadata() or ()).get("grpc-status-details-bin")
                    if details:
                        status = status_pb2.Status.FromString(details)
                        info = error_details_pb2.RetryInfo()
                        assert status.details[0].Unpack(info)
                        with lock:
                            retry_hints.append(f"grpc {info.retry_delay.seconds}s")
        else:
            got = httpx.post(server.otlp_http, content=body, headers={"Content-Type": "application/x-protobuf"},
                             timeout=10)
            verdict = "acked" if got.status_code == 200 else str(got.status_code)
            if got.status_code == 429:
                with lock:
                    retry_hints.append(f"http {got.headers['Retry-After']}s")
        with lock:
            answers[trace_id] = verdict

    try:
        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seen = Counter(answers.values())
        assert set(seen) <= {"acked", "429", "RESOURCE_EXHAUSTED"}, seen
        assert seen["acked"] >= 1 and seen["429"] + seen["RESOURCE_EXHAUSTED"] >= 1, seen
        assert retry_hints and all(hint.endswith(("1s",)) for hint in retry_hints), retry_hints

        def stored() -> dict[str, int]:
            rows = httpx.post(f"{server.api}/api/v1/sql", timeout=30, json={
                "sql": "SELECT trace_id, count(*) AS n FROM spans GROUP BY trace_id"}).json()["rows"]
            return {r["trace_id"]: r["n"] for r in rows}

        acked = {t for t, v in answers.items() if v == "acked"}
        counts = wait_for(lambda: (c := stored()) and set(c) >= acked and c)
        assert {t: counts.get(t) for t in acked} == dict.fromkeys(acked, SPANS_PER_EXPORT)  # once each
        assert not set(counts) & (set(answers) - acked)  # a refused export stored nothing
        health = server.get("/api/v1/health").json()["ingest"]
        assert health["overloaded"] == len(answers) - len(acked)

        # A real exporter into the same overload: it retries the refusals and gets everything in.
        provider = TracerProvider(resource=Resource.create({"service.name": "retrying-exporter"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=server.otlp_http),
                                                       max_export_batch_size=512, schedule_delay_millis=10,
                                                       max_queue_size=10_000))
        tracer = provider.get_tracer("overload")
        flooders = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
        for t in flooders:
            t.start()
        for i in range(3000):
            with tracer.start_as_current_span(f"retried {i}"):
                pass
        for t in flooders:
            t.join()
        assert provider.force_flush(60_000)
        provider.shutdown()
        rows = wait_for(lambda: httpx.post(f"{server.api}/api/v1/sql", timeout=30, json={
            "sql": "SELECT count(DISTINCT span_id) AS n FROM spans WHERE service_name = 'retrying-exporter'"}
        ).json()["rows"][0]["n"] == 3000)
        assert rows
    finally:
        server.stop()
    assert "Traceback" not in server.log_text(tail=None)
