"""The real OpenTelemetry Python SDK, through both OTLP exporters: what the API returns equals what was sent."""

from __future__ import annotations

import pytest
from grpc import Compression as GrpcCompression
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from tests.e2e.conftest import wait_for
from trajscope.collector.anyvalue import untag


def _exporters(server, transport):
    if transport == "grpc":
        return GrpcExporter(endpoint=server.otlp_grpc, insecure=True, compression=GrpcCompression.Gzip)
    if transport == "http-gzip":
        return HttpExporter(endpoint=server.otlp_http, compression=HttpCompression.Gzip)
    return HttpExporter(endpoint=server.otlp_http)


def _emit(tracer):
    with tracer.start_as_current_span("invoke_agent planner", kind=SpanKind.SERVER, attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
        "gen_ai.conversation.id": "sess-sdk"}) as root:
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 321, "gen_ai.usage.output_tokens": 12,
            "gen_ai.request.temperature": 0.5, "flags.list": [1, 2, 3], "ok": True}) as llm:
            llm.add_event("gen_ai.choice", {"index": 0, "finish_reason": "tool_calls"})
        with tracer.start_as_current_span("execute_tool search", links=[Link(llm.get_span_context(),
                                                                               {"rel": "requested-by"})],
                                          attributes={"gen_ai.operation.name": "execute_tool",
                                                      "gen_ai.tool.name": "search"}) as tool:
            try:
                raise TimeoutError("search took too long")
            except TimeoutError as exc:
                tool.record_exception(exc)
                tool.set_status(Status(StatusCode.ERROR, "search took too long"))
    return root


@pytest.mark.parametrize("transport", ["grpc", "http", "http-gzip"])
def test_sdk_export_round_trips_through_the_api(server, transport):
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": f"sdk-{transport}",
                                                        "trajscope.project": "sdk-tests"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(_exporters(server, transport)))
    root = _emit(provider.get_tracer("tests.sdk", "9.9"))
    provider.shutdown()

    trace_id = format(root.get_span_context().trace_id, "032x")
    response = wait_for(lambda: (r := server.get(f"/api/v1/traces/{trace_id}")).status_code == 200 and r)
    assert response, "trace never became queryable"
    body = response.json()
    assert body["trace_id"] == trace_id
    got = {s["span_id"]: s for s in body["spans"]}
    sent = memory.get_finished_spans()
    assert len(got) == len(sent) == 3
    for span in sent:
        row = got[format(span.context.span_id, "016x")]
        assert row["name"] == span.name
        assert row["project"] == "sdk-tests"
        assert row["parent_span_id"] == (format(span.parent.span_id, "016x") if span.parent else None)
        assert row["start_time_unix_nano"] == span.start_time
        assert row["end_time_unix_nano"] == span.end_time
        assert row["kind"] == span.kind.name
        assert row["status_code"] == span.status.status_code.name
        assert row["status_message"] == span.status.description
        assert untag(row["attributes"]) == {k: list(v) if isinstance(v, tuple) else v
                                            for k, v in span.attributes.items()}
        assert row["resource_attributes"] == dict(span.resource.attributes)
        assert (row["scope_name"], row["scope_version"]) == ("tests.sdk", "9.9")
        assert [e["name"] for e in row["events"]] == [e.name for e in span.events]
        assert [e["time_unix_nano"] for e in row["events"]] == [e.timestamp for e in span.events]
        assert [(lk["trace_id"], lk["span_id"]) for lk in row["links"]] == [
            (format(lk.context.trace_id, "032x"), format(lk.context.span_id, "016x")) for lk in span.links]

    by_name = {s["name"]: s for s in body["spans"]}
    assert by_name["chat gpt-4o"]["category"] == "llm"
    assert by_name["chat gpt-4o"]["input_tokens"] == 321
    assert by_name["execute_tool search"]["category"] == "tool"
    assert by_name["execute_tool search"]["error_type"] == "TimeoutError"
    assert by_name["invoke_agent planner"]["agent_name"] == "planner"

    listed = server.get("/api/v1/traces", project="sdk-tests", service=f"sdk-{transport}").json()["traces"]
    assert [t["trace_id"] for t in listed] == [trace_id]
    item = listed[0]
    assert (item["root_name"], item["agent_name"], item["session_id"]) == (
        "invoke_agent planner", "planner", "sess-sdk")
    assert (item["span_count"], item["error_count"], item["input_tokens"], item["output_tokens"]) == (3, 1, 321, 12)
    assert item["duration_ms"] == pytest.approx((root.end_time - root.start_time) / 1e6)
