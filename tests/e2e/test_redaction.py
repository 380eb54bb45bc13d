"""Redaction against a real server (`--redact FILE`): what gRPC and OTLP/JSON exports carried is masked or dropped
before the store sees it (no column of any stored span holds the raw values), the span says which rules changed
it, and /metrics counts per rule."""

from __future__ import annotations

import json

import grpc
import httpx

from tests.e2e.conftest import make_server, wait_for
from tests.otlp_builders import make_request, make_span

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
EMAIL = "jane.roe@example.org"
CARD = "4111 1111 1111 1111"


def test_rules_apply_before_storage_on_every_path(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text('use_defaults = true\n[[rule]]\nname = "no-prompts"\ndrop = ["gen_ai.input.messages"]\n')
    srv = make_server(tmp_path, "--redact", str(rules))
    srv.start()
    try:
        prompt = json.dumps([{"role": "user", "parts": [{"type": "text", "content": f"my card is {CARD}"}]}])
        via_grpc = make_span("chat grpc", attrs={"gen_ai.request.model": "m", "gen_ai.input.messages": prompt,
                                                 "user.id": EMAIL, "note": f"contact {EMAIL}"})
        with grpc.insecure_channel(srv.otlp_grpc) as channel:
            channel.unary_unary(EXPORT)(make_request([via_grpc]).SerializeToString(), timeout=10)
        trace_hex = "0af7651916cd43dd8448eb211c80319c"
        doc = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "js"}}]},
                                  "scopeSpans": [{"spans": [{
                                      "traceId": trace_hex, "spanId": "b7ad6b7169203331", "name": "chat json",
                                      "startTimeUnixNano": "1000", "endTimeUnixNano": "2000",
                                      "attributes": [{"key": "note", "value": {"stringValue": f"card {CARD}"}}]}]}]}]}
        answer = httpx.post(srv.otlp_http, content=json.dumps(doc), headers={"Content-Type": "application/json"},
                            timeout=30)
        assert answer.status_code == 200
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

        logs = ExportLogsServiceRequest()
        record = logs.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=5, event_name="note")
        record.body.string_value = f"customer {EMAIL} called"
        sent = httpx.post(f"http://127.0.0.1:{srv.http_port}/v1/logs", content=logs.SerializeToString(),
                          headers={"Content-Type": "application/x-protobuf"}, timeout=30)
        assert sent.status_code == 200
        rows = wait_for(lambda: (r := httpx.post(f"{srv.api}/api/v1/sql", timeout=30, json={
            "sql": "SELECT name, user_id, attributes FROM spans ORDER BY name"}).json()["rows"]) and len(r) == 2
            and r)
        by_name = {r["name"]: r for r in rows}
        grpc_attrs, json_attrs = by_name["chat grpc"]["attributes"], by_name["chat json"]["attributes"]
        grpc_attrs = json.loads(grpc_attrs) if isinstance(grpc_attrs, str) else grpc_attrs
        json_attrs = json.loads(json_attrs) if isinstance(json_attrs, str) else json_attrs
        assert "gen_ai.input.messages" not in grpc_attrs
        assert grpc_attrs["note"] == "contact xxxx.xxx@xxxxxxx.xxx" and by_name["chat grpc"]["user_id"] == \
            "xxxx.xxx@xxxxxxx.xxx"
        assert grpc_attrs["trajscope.redacted"] == ["email", "no-prompts"]
        assert json_attrs["note"] == "card 0000 0000 0000 0000" and json_attrs["trajscope.redacted"] == ["card"]
        for table in ("spans", "log_records"):  # in no column of any row, whole rows cast to text
            for raw in ("jane.roe", "4111"):
                found = httpx.post(f"{srv.api}/api/v1/sql", timeout=30, json={
                    "sql": f"SELECT count(*) AS n FROM {table} s WHERE CAST(s AS VARCHAR) LIKE '%{raw}%'"}).json()
                assert found["rows"] == [{"n": 0}], (table, raw)
        (body,) = httpx.post(f"{srv.api}/api/v1/sql", timeout=30, json={
            "sql": "SELECT body FROM log_records"}).json()["rows"]
        assert "customer xxxx.xxx@xxxxxxx.xxx called" in str(body["body"])
        metrics = httpx.get(f"{srv.api}/metrics", timeout=30).text
        counted = {(line.split('rule="')[1].split('"')[0], line.split('signal="')[1].split('"')[0]):
                   float(line.split()[-1]) for line in metrics.splitlines()
                   if line.startswith("trajscope_redactions_total")}
        assert counted == {("card", "traces"): 1.0, ("email", "traces"): 1.0, ("no-prompts", "traces"): 1.0,
                           ("email", "logs"): 1.0}
    finally:
        srv.stop()
