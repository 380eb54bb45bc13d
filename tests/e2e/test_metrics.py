"""``GET /metrics`` (Prometheus text), request ids, JSON-lines logs."""

from __future__ import annotations

import json
import re

import httpx

from tests.e2e.conftest import make_server, wait_for
from tests.otlp_builders import make_span
from trajscope.memory_budget import DUCKDB_SHARE

_SAMPLE = re.compile(r'^([a-z_]+)(\{[^}]*\})? (\S+)$')


def _metrics(srv) -> dict[str, float]:
    response = httpx.get(f"{srv.api}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in response.text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ ", line), line
            continue
        match = _SAMPLE.match(line)
        assert match, line
        samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def test_metrics_count_what_ingest_and_the_api_did(tmp_path):
    srv = make_server(tmp_path, "--log-format", "json", "--log-level", "INFO", "--memory-limit", "2GiB")
    srv.start()
    try:
        bad = make_span("bad", span_id=bytes(8))
        assert srv.export([make_span("a"), make_span("b"), bad]).status_code == 200
        assert httpx.post(srv.otlp_http, content=b"\xff\xfe",
                          headers={"Content-Type": "application/x-protobuf"}).status_code == 400
        looked_up = httpx.get(f"{srv.api}/api/v1/traces", headers={"X-Request-Id": "req-42"}, timeout=30)
        assert looked_up.headers["x-request-id"] == "req-42"
        assert re.fullmatch(r"[0-9a-f]{16}", httpx.get(f"{srv.api}/api/v1/traces").headers["x-request-id"])
        m = wait_for(lambda: (s := _metrics(srv))["trajscope_spans_written_total"] >= 2 and s)
        assert m["trajscope_spans_accepted_total"] == 2
        assert m['trajscope_spans_refused_total{reason="invalid_span"}'] == 1
        assert m['trajscope_exports_refused_total{reason="invalid_request",signal="traces"}'] == 1
        assert m['trajscope_otlp_requests_total{signal="traces"}'] == 2
        assert m["trajscope_load_seconds_count"] >= 1
        assert m['trajscope_load_seconds_bucket{le="+Inf"}'] == m["trajscope_load_seconds_count"]
        assert m['trajscope_api_request_seconds_count{route="/api/v1/traces"}'] >= 2
        assert m['trajscope_memory_pss_bytes{process="server"}'] > 10 * 2**20
        assert m['trajscope_memory_pss_bytes{process="workers"}'] > 10 * 2**20  # the decode worker
        assert m["trajscope_memory_budget_bytes"] == 2 * 2**30
        assert m["trajscope_duckdb_memory_limit_bytes"] == int(2 * 2**30 * DUCKDB_SHARE) >> 20 << 20  # its share
        assert m["trajscope_memory_admission_bytes"] < m["trajscope_memory_budget_bytes"]
        assert m["trajscope_memory_peak_bytes"] >= m['trajscope_memory_pss_bytes{process="server"}']
        assert m['trajscope_duckdb_memory_bytes{tag="BASE_TABLE"}'] > 0  # the spans just written
        assert m["trajscope_memory_refusals_total"] == 0
        assert m['trajscope_ack_log_bytes{signal="traces"}'] >= 0
        assert 'trajscope_ack_log_oldest_unreleased_seconds{signal="traces"}' in m
        assert m["trajscope_load_backlog_spans"] >= 0 and m["trajscope_decode_backlog_spans"] >= 0
    finally:
        srv.stop()
    lines = [json.loads(line) for line in srv.log_text(tail=None).splitlines() if line.startswith("{")]
    access = [entry for entry in lines if entry.get("request_id") == "req-42"]
    assert access and access[0]["route"] == "/api/v1/traces" and access[0]["status"] == 200
    assert any(entry["level"] == "WARNING" and "partial success" in entry["message"] for entry in lines)
    assert "draining" in srv.log_text()
