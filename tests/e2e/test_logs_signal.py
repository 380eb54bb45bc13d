"""OTLP logs on both receivers: GenAI events sent as log records become events of the span they name,
whichever arrives first; the rest are listed with their trace; bad records get partial success."""

from __future__ import annotations

import base64
import json
import signal

import grpc
import httpx
import orjson
import pytest
from google.protobuf import json_format
from opentelemetry._logs import LogRecord
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from tests.e2e.conftest import make_server, wait_for
from tests.otlp_builders import kvs, make_span

TRACE = "5b8efff798038103d269b633813fc60c"


def _span_bytes(hex_id: str) -> bytes:
    return bytes.fromhex(hex_id)


def _emit(exporter, records: list[dict]) -> None:
    provider = LoggerProvider(resource=Resource.create({"service.name": "genai-events"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("opentelemetry.instrumentation.genai")
    for r in records:
        logger.emit(LogRecord(timestamp=r.get("time", 1_700_000_000_500_000_000), trace_id=int(r["trace"], 16),
                              span_id=int(r["span"], 16) if r.get("span") else 0, event_name=r["name"],
                              attributes=r.get("attributes"), body=r.get("body")))
    provider.shutdown()


def _llm_span(span_id: str, parent: str | None = None):
    span = make_span("chat gpt-4o", attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                                           "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 3},
                     start=1_700_000_000_000_000_000, end=1_700_000_001_000_000_000)
    span.trace_id = _span_bytes(TRACE)
    span.span_id = _span_bytes(span_id)
    if parent:
        span.parent_span_id = _span_bytes(parent)
    return span


DETAILS = {"gen_ai.operation.name": "chat",
           "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Weather?"}]}]),
           "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
               {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}]}])}


def test_log_events_join_their_span_before_and_after_it_arrives(server):
    root, llm, tool = "1111111111111111", "2222222222222222", "3333333333333333"
    # Before any span: an operation-details event and a guardrail result for the LLM span, over gRPC.
    _emit(GrpcLogExporter(endpoint=server.otlp_grpc, insecure=True), [
        {"trace": TRACE, "span": llm, "name": "gen_ai.client.inference.operation.details", "attributes": DETAILS},
        {"trace": TRACE, "span": llm, "name": "gen_ai.guardrail.result",
         "attributes": {"gen_ai.guardrail.name": "pii", "gen_ai.security.decision.type": "deny"}},
    ])
    root_span = make_span("invoke_agent Helper", attrs={"gen_ai.operation.name": "invoke_agent"},
                          start=1_699_999_999_000_000_000, end=1_700_000_003_000_000_000)
    root_span.trace_id, root_span.span_id = _span_bytes(TRACE), _span_bytes(root)
    tool_span = make_span("execute_tool get_weather", attrs={"gen_ai.operation.name": "execute_tool",
                                                             "gen_ai.tool.call.id": "call_1",
                                                             "gen_ai.agent.name": "Helper"},
                          start=1_700_000_001_100_000_000, end=1_700_000_002_000_000_000)
    tool_span.trace_id, tool_span.span_id = _span_bytes(TRACE), _span_bytes(tool)
    tool_span.parent_span_id = _span_bytes(root)
    assert server.export([root_span, _llm_span(llm, root), tool_span]).status_code == 200
    # After the spans: an evaluation of the LLM span, and a record naming a span that never arrives, over HTTP.
    _emit(HttpLogExporter(endpoint=server.otlp_http.replace("/v1/traces", "/v1/logs")), [
        {"trace": TRACE, "span": llm, "name": "gen_ai.evaluation.result", "time": 1_700_000_005_000_000_000,
         "attributes": {"gen_ai.evaluation.name": "Relevance", "gen_ai.evaluation.score.value": 4.0,
                        "gen_ai.evaluation.score.label": "relevant"}},
        {"trace": TRACE, "span": "4444444444444444", "name": "gen_ai.user.message", "body": {"content": "hi"}},
    ])

    trace = wait_for(lambda: (t := server.get(f"/api/v1/traces/{TRACE}").json()) and len(t.get("spans", [])) == 3
                     and t)
    spans = {s["span_id"]: s for s in trace["spans"]}
    llm_span = spans[llm]
    names = [e["name"] for e in llm_span["events"]]
    assert names == ["gen_ai.client.inference.operation.details", "gen_ai.guardrail.result",
                     "gen_ai.evaluation.result"]
    assert all(e["source"] == "log" for e in llm_span["events"])
    assert llm_span["messages"]["input"][0]["parts"][0]["content"] == "Weather?"
    assert llm_span["messages"]["sources"] == {"input": "event", "output": "event"}
    (evaluation,) = llm_span["evaluations"]
    assert (evaluation["name"], evaluation["score_value"], evaluation["score_label"], evaluation["source"]) == (
        "Relevance", 4.0, "relevant", "log")
    # The tool span is a tool (not an agent step) despite its agent name.
    assert (spans[tool]["category"], spans[tool]["agent_name"]) == ("tool", "Helper")
    (left,) = trace["logs"]
    assert (left["span_id"], left["event_name"], left["body"]) == ("4444444444444444", "gen_ai.user.message",
                                                                  {"content": "hi"})

    steps = {s["span_id"]: s for s in server.get(f"/api/v1/traces/{TRACE}/trajectory").json()["steps"]}
    assert steps[tool]["requested_by"] == llm  # the tool call id came from the log record's output messages
    assert steps[llm]["guardrail"] == {"name": "pii", "triggered": True, "action": "block"}
    assert steps[llm]["input_preview"] == "Weather?"
    listed = server.get(f"/api/v1/traces/{TRACE}/logs").json()["logs"]
    assert len(listed) == 4 and listed[0]["time_unix_nano"] <= listed[-1]["time_unix_nano"]

    groups = {g["key"]: g for g in server.get("/api/v1/stats/guardrails", group_by="name").json()["groups"]}
    assert (groups["pii"]["checks"], groups["pii"]["blocks"]) == (1, 1)  # the check that came as a log record
    sql = httpx.post(f"{server.api}/api/v1/sql", timeout=30, json={"sql": (
        "SELECT span_id, evaluation_name, score_value, score_label, source FROM evaluations "
        f"WHERE trace_id = '{TRACE}'")}).json()
    assert [tuple(r.values()) for r in sql["rows"]] == [(llm, "Relevance", 4.0, "relevant", "log")]


def _logs_request(records: list[tuple[bytes, bytes]], name: str = "e") -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    for trace_id, span_id in records:
        record = scope.log_records.add(time_unix_nano=5, trace_id=trace_id, span_id=span_id, event_name=name)
        record.attributes.extend(kvs({"k": "v"}))
    return request


def test_bad_records_get_partial_success_on_each_encoding(server):
    url = server.otlp_http.replace("/v1/traces", "/v1/logs")
    request = _logs_request([(bytes(16) + b"\x01", b""), (bytes.fromhex(TRACE), b"\x01" * 8)])
    got = httpx.post(url, content=request.SerializeToString(), headers={"Content-Type": "application/x-protobuf"})
    assert got.status_code == 200
    answer = ExportLogsServiceResponse.FromString(got.content)
    assert answer.partial_success.rejected_log_records == 1
    assert "trace_id must be empty or 16 bytes" in answer.partial_success.error_message

    doc = json_format.MessageToDict(_logs_request([(bytes.fromhex(TRACE), b"\x02" * 8)]))
    for record in doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"]:
        for key in ("traceId", "spanId"):
            record[key] = base64.b64decode(record[key]).hex()
    got = httpx.post(url, content=orjson.dumps(doc), headers={"Content-Type": "application/json"})
    assert (got.status_code, got.json()) == (200, {})
    doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["spanId"] = "zz"
    got = httpx.post(url, content=orjson.dumps(doc), headers={"Content-Type": "application/json"})
    assert got.status_code == 200 and got.json()["partialSuccess"]["rejectedLogRecords"] == "1"
    assert "not hex" in got.json()["partialSuccess"]["errorMessage"]
    got = httpx.post(url, content=b'{"resourceLogs": 7}', headers={"Content-Type": "application/json"})
    assert got.status_code == 400
    got = httpx.post(url, content=b"\xff\xfe", headers={"Content-Type": "application/x-protobuf"})
    assert got.status_code == 400

    with grpc.insecure_channel(server.otlp_grpc) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                                     request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=ExportLogsServiceResponse.FromString)
        answer = export(_logs_request([(bytes.fromhex(TRACE), b"\x03" * 3)]), timeout=10)
        assert answer.partial_success.rejected_log_records == 1
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")(b"\xff\xfe", timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The retried export of the very same body is stored once.
    body = _logs_request([(bytes.fromhex(TRACE), b"\x05" * 8)], name="retried").SerializeToString()
    for _ in range(2):
        assert httpx.post(url, content=body, headers={"Content-Type": "application/x-protobuf"}).status_code == 200
    logs = server.get(f"/api/v1/traces/{TRACE}/logs").json()["logs"]
    assert [r["event_name"] for r in logs].count("retried") == 1


def _send_named(srv, names: list[str]) -> None:
    """One acknowledged log export per name, each record naming its own span of ``TRACE``."""
    url = srv.otlp_http.replace("/v1/traces", "/v1/logs")
    for i, name in enumerate(names):
        body = _logs_request([(bytes.fromhex(TRACE), bytes([i + 1]) * 8)], name=name).SerializeToString()
        assert httpx.post(url, content=body, headers={"Content-Type": "application/x-protobuf"}).status_code == 200


def test_acknowledged_log_records_survive_a_kill(tmp_path):
    srv = make_server(tmp_path)
    srv.start()
    try:
        _send_named(srv, [f"r{i}" for i in range(20)])
        srv.stop(signal.SIGKILL)
        srv.start()
        logs = srv.get(f"/api/v1/traces/{TRACE}/logs").json()["logs"]
        assert sorted(r["event_name"] for r in logs) == sorted(f"r{i}" for i in range(20))
        srv.stop()
        srv.start()  # a clean restart after the replay keeps them once
        assert len(srv.get(f"/api/v1/traces/{TRACE}/logs").json()["logs"]) == 20
    finally:
        if srv.proc and srv.proc.poll() is None:
            srv.stop()


def test_compact_folds_in_log_records_a_killed_server_acknowledged(tmp_path):
    from tests.e2e.conftest import run_cli

    srv = make_server(tmp_path)
    srv.start()
    try:
        _send_named(srv, [f"c{i}" for i in range(5)])
        srv.stop(signal.SIGKILL)
        assert list((srv.data / "acklog-logs").glob("seg-*.log"))  # not yet in a checkpointed file
        done = run_cli("compact", "--data", str(srv.data))
        assert done.returncode == 0, done.stderr
        assert not list((srv.data / "acklog-logs").glob("seg-*.log"))  # folded in, checkpointed, let go
        srv.start()
        logs = srv.get(f"/api/v1/traces/{TRACE}/logs").json()["logs"]
        assert sorted(r["event_name"] for r in logs) == [f"c{i}" for i in range(5)]
    finally:
        if srv.proc and srv.proc.poll() is None:
            srv.stop()
