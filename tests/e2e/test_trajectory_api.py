"""Trajectory, latency, sessions and stats through real servers fed by the real OpenTelemetry SDK."""

from __future__ import annotations

import json
import random

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.e2e.conftest import make_server, wait_for

MS = 1_000_000


def record(build) -> tuple[list, str]:
    """Run ``build(tracer, t0)`` under an in-memory SDK pipeline; return the finished spans and trace id."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "planner-svc"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    build(provider.get_tracer("tests.trajectory"), 1_800_000_000 * 10**9 + random.randrange(10**12))
    provider.shutdown()
    spans = memory.get_finished_spans()
    return list(spans), format(spans[0].context.trace_id, "032x")


def agent_run(tracer, t0, session="sess-1", tokens=(100, 10)):
    # root (agent)  |0=============================================100| ms
    # chat            |5=====25|        asks for call_1 (search) and call_2 (weather)
    # search                   |25==============60|
    # weather                   |26========50|          parallel with search, finishes first
    # chat2                                      |60==========90|
    root = tracer.start_span("invoke_agent planner", start_time=t0, attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
        "gen_ai.conversation.id": session, "user.id": "u-1"})
    ctx = otel_trace.set_span_in_context(root)
    out = json.dumps([{"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "search"},
                                                      {"type": "tool_call", "id": "call_2", "name": "weather"}]}])
    llm = tracer.start_span("chat gpt-4o", context=ctx, start_time=t0 + 5 * MS, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": tokens[0], "gen_ai.usage.output_tokens": tokens[1],
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "plan it"}]}]),
        "gen_ai.output.messages": out})
    llm.end(end_time=t0 + 25 * MS)
    for name, call_id, start, end in (("search", "call_1", 25, 60), ("weather", "call_2", 26, 50)):
        tool = tracer.start_span(f"execute_tool {name}", context=ctx, start_time=t0 + start * MS, attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.call.id": call_id})
        tool.end(end_time=t0 + end * MS)
    llm2 = tracer.start_span("chat gpt-4o", context=ctx, start_time=t0 + 60 * MS, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": tokens[0], "gen_ai.usage.output_tokens": tokens[1]})
    llm2.end(end_time=t0 + 90 * MS)
    root.end(end_time=t0 + 100 * MS)


def check_agent_run(server, trace_id):
    traj = wait_for(lambda: (r := server.get(f"/api/v1/traces/{trace_id}/trajectory")).status_code == 200
                    and r.json()["totals"]["span_count"] == 5 and r.json())
    assert traj, "trace incomplete"
    steps = traj["steps"]
    assert [(s["name"], s["depth"]) for s in steps] == [
        ("invoke_agent planner", 0), ("chat gpt-4o", 1), ("execute_tool search", 1), ("execute_tool weather", 1),
        ("chat gpt-4o", 1)]
    assert traj["complete"] is True and traj["anomalies"] == []
    assert steps[2]["parallel_group"] == steps[3]["parallel_group"] is not None
    assert steps[1]["parallel_group"] is None and steps[4]["parallel_group"] is None
    assert steps[2]["requested_by"] == steps[3]["requested_by"] == steps[1]["span_id"]
    assert steps[1]["input_preview"] == "plan it"
    assert (traj["totals"]["llm_calls"], traj["totals"]["tool_calls"], traj["totals"]["input_tokens"]) == (2, 2, 200)

    lat = server.get(f"/api/v1/traces/{trace_id}/latency").json()
    assert lat["duration_ms"] == 100 and lat["root_span_id"] == steps[0]["span_id"]
    assert [(c["name"], c["critical_ms"]) for c in lat["critical_path"]] == [
        ("invoke_agent planner", 5), ("chat gpt-4o", 20), ("execute_tool search", 35), ("chat gpt-4o", 30),
        ("invoke_agent planner", 10)]
    assert {k: v["critical_ms"] for k, v in lat["by_category"].items()} == {"agent": 15, "llm": 50, "tool": 35}
    assert lat["by_tool"]["weather"] == {"critical_ms": 0, "busy_ms": 24, "count": 1}
    spans = {s["name"]: s for s in lat["spans"]}
    assert spans["invoke_agent planner"]["self_ms"] == 15
    return traj, lat


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_trajectory_and_latency_of_a_real_sdk_trace(server, transport):
    spans, trace_id = record(agent_run)
    exporter = (GrpcExporter(endpoint=server.otlp_grpc, insecure=True) if transport == "grpc"
                else HttpExporter(endpoint=server.otlp_http))
    exporter.export(spans)
    exporter.shutdown()
    check_agent_run(server, trace_id)


def test_trace_in_shuffled_pieces_gives_the_same_answers(server, tmp_path):
    spans, trace_id = record(agent_run)
    whole = HttpExporter(endpoint=server.otlp_http)
    whole.export(spans)
    expected = check_agent_run(server, trace_id)

    other = make_server(tmp_path)
    other.start()
    try:
        pieces = spans[:]
        random.Random(11).shuffle(pieces)
        exporter = GrpcExporter(endpoint=other.otlp_grpc, insecure=True)
        for i in range(0, len(pieces), 2):  # root possibly first, children late, one request at a time
            exporter.export(pieces[i:i + 2])
        exporter.export(pieces[:1])  # and a late duplicate
        exporter.shutdown()
        assert check_agent_run(other, trace_id) == expected
        listed = other.get("/api/v1/traces").json()["traces"][0]
        assert (listed["span_count"], listed["complete"], listed["llm_calls"]) == (5, True, 2)
    finally:
        other.stop()


def test_sessions_and_stats_over_several_runs(tmp_path):
    srv = make_server(tmp_path)
    srv.start()
    try:
        exporter = HttpExporter(endpoint=srv.otlp_http)
        ids = []
        for turn, tokens in enumerate(((100, 10), (300, 30), (50, 5))):
            spans, trace_id = record(lambda tracer, t0, tk=tokens, i=turn: agent_run(tracer, t0 + i * 10**12,
                                                                                   "conv-9", tk))
            exporter.export(spans)
            ids.append((spans[-1].start_time, trace_id))
        spans, _ = record(lambda tracer, t0: agent_run(tracer, t0, "conv-other", (1, 1)))
        exporter.export(spans)
        exporter.shutdown()

        session = srv.get("/api/v1/sessions/conv-9").json()
        assert [t["trace_id"] for t in session["traces"]] == [t for _, t in sorted(ids)]
        assert [t["input_tokens"] for t in session["traces"]] == [200, 600, 100]
        assert session["totals"]["input_tokens"] == 900 and session["totals"]["output_tokens"] == 90
        assert session["totals"]["trace_count"] == 3 and session["totals"]["duration_ms"] == 300
        assert srv.get("/api/v1/sessions/nope").status_code == 404
        listed = srv.get("/api/v1/sessions").json()["sessions"]
        assert {s["session_id"]: s["trace_count"] for s in listed} == {"conv-9": 3, "conv-other": 1}

        lat = srv.get("/api/v1/stats/latency", group_by="category").json()
        groups = {g["key"]: g for g in lat["groups"]}
        assert lat["total_critical_ms"] == 400  # four runs of 100 ms
        assert {k: g["critical_ms"] for k, g in groups.items()} == {"agent": 60, "llm": 200, "tool": 140}
        assert groups["llm"]["critical_share"] == 0.5 and groups["tool"]["count"] == 8
        assert groups["tool"]["p50_ms"] == pytest.approx(29.5)  # 24 ms and 35 ms, four each
        tools = {g["key"]: g for g in srv.get("/api/v1/stats/latency", group_by="tool").json()["groups"]}
        assert tools["search"]["critical_ms"] == 140 and tools["weather"]["critical_ms"] == 0
        assert srv.get("/api/v1/stats/latency", group_by="bogus").status_code == 400

        usage = {g["key"]: g for g in srv.get("/api/v1/stats/usage", group_by="model").json()["groups"]}
        assert usage["gpt-4o"]["calls"] == 8 and usage["gpt-4o"]["input_tokens"] == 902
        by_session = {g["key"]: g for g in srv.get("/api/v1/stats/usage", group_by="session").json()["groups"]}
        assert by_session["conv-9"]["input_tokens"] == 900 and by_session["conv-9"]["traces"] == 3
        agents = srv.get("/api/v1/stats/usage", group_by="agent").json()["groups"]
        assert [(g["key"], g["calls"]) for g in agents] == [("planner", 8)]
    finally:
        srv.stop()
