"""Traces no real agent makes still get their specified answers while the server keeps serving: a 10,000-deep
parent chain is analysed; a trace past --max-trace-spans is refused by the trace routes (413, pointing to SQL)
and stays queryable with SQL; ends before starts, zero and far-future times get the documented answers."""

from __future__ import annotations

import os

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.e2e.conftest import make_server, wait_for
from tests.otlp_builders import make_span

DEPTH = 10_000


def test_deep_chains_big_traces_and_odd_times(tmp_path):
    srv = make_server(tmp_path, "--max-trace-spans", "12000")
    srv.start()
    try:
        chain_trace = os.urandom(16)
        chain, parent = [], None
        for i in range(DEPTH):
            span = make_span(f"level {i}", trace_id=chain_trace, parent=parent, start=1_000 + i, end=10**9 - i)
            chain.append(span)
            parent = span
        for start in range(0, DEPTH, 2_000):
            assert srv.export(chain[start:start + 2_000]).status_code == 200
        trace_id = chain_trace.hex()
        steps = wait_for(lambda: (t := srv.get(f"/api/v1/traces/{trace_id}/trajectory")).status_code == 200
                         and len(t.json()["steps"]) == DEPTH and t.json()["steps"])
        assert steps[-1]["depth"] == DEPTH - 1 and steps[-1]["name"] == f"level {DEPTH - 1}"
        latency = srv.get(f"/api/v1/traces/{trace_id}/latency").json()
        assert round(sum(s["critical_ms"] for s in latency["critical_path"]), 3) == round(latency["duration_ms"], 3)

        big_trace = os.urandom(16)
        for part in range(3):
            spans = [make_span(f"b{part}-{i}", trace_id=big_trace) for i in range(5_000)]
            assert srv.export(spans).status_code == 200
        big = big_trace.hex()
        wait_for(lambda: srv.get("/api/v1/traces", q=big).json()["traces"][0]["span_count"] == 15_000)
        for route in ("", "/trajectory", "/latency"):
            refused = srv.get(f"/api/v1/traces/{big}{route}")
            assert refused.status_code == 413, route
            assert refused.json()["error"]["code"] == "too_large" and "--max-trace-spans" in refused.json()[
                "error"]["message"]
        counted = httpx.post(f"{srv.api}/api/v1/sql", timeout=30, json={
            "sql": f"SELECT count(*) AS n FROM spans WHERE trace_id = '{big}'"}).json()["rows"][0]["n"]
        assert counted == 15_000

        odd = os.urandom(16)
        backwards = make_span("ends before it starts", trace_id=odd, start=5_000, end=1_000)
        at_zero = make_span("at zero", trace_id=odd, start=0, end=0)
        far = make_span("year 2300", trace_id=odd, start=10_500_000_000 * 10**9, end=10_500_000_001 * 10**9)
        answer = ExportTraceServiceResponse.FromString(srv.export([backwards, at_zero, far]).content)
        assert answer.partial_success.rejected_spans == 1 and "beyond year 2262" in answer.partial_success.error_message
        spans = {s["name"]: s for s in wait_for(lambda: srv.get(f"/api/v1/traces/{odd.hex()}").json()["spans"])}
        assert spans["ends before it starts"]["duration_ns"] == 0 and spans["at zero"]["start_time_unix_nano"] == 0
        assert "year 2300" not in spans
        assert srv.get("/api/v1/health").status_code == 200
    finally:
        srv.stop()
    assert "Traceback" not in srv.log_text(tail=None)
