"""`trajscope demo` against a real server: realistic agent data arrives, deterministically for a seed."""

from __future__ import annotations

import subprocess
import sys

from trajscope.workload import Workload, to_requests


def test_demo_sends_realistic_agent_runs(server):
    done = subprocess.run([sys.executable, "-m", "trajscope.cli", "demo", "--endpoint", server.otlp_http,
                           "--sessions", "12", "--seed", "6", "--project", "demo-test"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "acknowledged" in done.stdout

    traces = server.get("/api/v1/traces", project="demo-test", limit=1000).json()["traces"]
    expected = sum(len(r.resource_spans) for r in to_requests(Workload(seed=6, rag=True).sessions(12)))
    assert len(traces) == expected
    sessions = {}
    for t in traces:
        sessions.setdefault(t["session_id"], []).append(t)
    assert any(len(turns) >= 2 for turns in sessions.values()), "sessions should have several turns"
    # seed 6 draws all four agents, including the one that speaks OpenInference
    assert {t["agent_name"] for t in traces} == {"support-agent", "research-agent", "billing-agent",
                                                 "travel-planner"}
    assert any(t["error_count"] for t in traces), "some tool should fail"

    spans = [s for t in traces for s in server.get(f"/api/v1/traces/{t['trace_id']}").json()["spans"]]
    categories = {s["category"] for s in spans}
    assert {"agent", "llm", "tool", "retriever", "reranker", "guardrail"} <= categories
    # parallel tool calls: two tool spans of one trace whose intervals overlap
    by_trace = {}
    for s in spans:
        if s["category"] == "tool":
            by_trace.setdefault(s["trace_id"], []).append(s)
    assert any(a["start_time_unix_nano"] < b["end_time_unix_nano"] and b["start_time_unix_nano"] < a[
        "end_time_unix_nano"] for tools in by_trace.values() for a in tools for b in tools if a is not b)
    # both dialects are normalised into the same columns
    assert {s["scope_name"] for s in spans} == {"trajscope.demo"}
    assert any("openinference.span.kind" in s["attributes"] and s["category"] == "llm" and s["input_tokens"]
               for s in spans)
    assert any("gen_ai.operation.name" in s["attributes"] and s["category"] == "llm" and s["input_tokens"]
               for s in spans)


def test_workload_is_deterministic_for_a_seed():
    a = [r.SerializeToString() for r in to_requests(Workload(seed=9, now_ns=10**18).sessions(5))]
    b = [r.SerializeToString() for r in to_requests(Workload(seed=9, now_ns=10**18).sessions(5))]
    c = [r.SerializeToString() for r in to_requests(Workload(seed=10, now_ns=10**18).sessions(5))]
    assert a == b and a != c


def test_demo_rag_runs_show_a_weak_retrieval_stretch_in_the_stats(server):
    done = subprocess.run([sys.executable, "-m", "trajscope.cli", "demo", "--endpoint", server.otlp_http,
                           "--sessions", "60", "--seed", "11", "--project", "demo-rag"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    stats = server.get("/api/v1/stats/retrieval", group_by="index", project="demo-rag").json()
    groups = {g["key"]: g for g in stats["groups"]}
    assert {"knowledge_base", "policies"} <= set(groups)
    # The weak stretch serves the knowledge base: empty answers and weak top scores there, none elsewhere.
    assert groups["knowledge_base"]["empty_rate"] > 0 and groups["policies"]["empty_rate"] == 0
    assert groups["knowledge_base"]["top_score_p10"] < 0.5 < groups["policies"]["top_score_p10"]
    rerank = groups[None]
    assert rerank["reranks"] > 0 and 0 < rerank["rerank_top_changed_rate"] < 1
    # The legacy documents only come back in the stretch, where answers are judged unfaithful more often.
    legacy = [d for d in server.get("/api/v1/stats/retrieval", project="demo-rag", limit=1000).json()[
        "top_documents"] if d["document_id"].startswith("kb-legacy")]
    others = [d for d in server.get("/api/v1/stats/retrieval", project="demo-rag", limit=1000).json()[
        "top_documents"] if not d["document_id"].startswith("kb-legacy")]
    legacy_rate = sum(d["runs_failing_evaluation"] for d in legacy) / sum(d["runs"] for d in legacy)
    other_rate = sum(d["runs_failing_evaluation"] for d in others) / sum(d["runs"] for d in others)
    assert legacy_rate > other_rate
