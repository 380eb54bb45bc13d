"""GET /api/v1/stats/retrieval over an in-memory store with three hand-made RAG runs."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.otlp_builders import kvs, make_request, make_span
from trajscope.collector.otlp_decode import decode_request
from trajscope.query.api import AppState, create_app
from trajscope.storage.duckdb_store import DuckDBStore

MS = 1_000_000


def _retrieve(root, start, end, index, docs, query="q"):
    return make_span(f"retrieve {index}", trace_id=root.trace_id, parent=root, start=start, end=end, attrs={
        "gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": index, "gen_ai.retrieval.query.text": query,
        "gen_ai.retrieval.top_k": 5, "gen_ai.agent.name": "qa",
        "gen_ai.retrieval.documents": json.dumps([{"id": d, "score": s, "content": f"text {d}"} for d, s in docs])})


def _rerank(root, start, end, given, kept):
    attrs = {"openinference.span.kind": "RERANKER", "reranker.query": "q", "gen_ai.agent.name": "qa"}
    for group, docs in (("reranker.input_documents", given), ("reranker.output_documents", kept)):
        for i, (d, s) in enumerate(docs):
            attrs.update({f"{group}.{i}.document.id": d, f"{group}.{i}.document.score": s})
    return make_span("rerank", trace_id=root.trace_id, parent=root, start=start, end=end, attrs=attrs)


@pytest.fixture
def api():
    store = DuckDBStore(":memory:")
    # Run A (fails): kb returns a, b in 10 ms on the critical path of a 100 ms run; the reranker puts b first.
    a = make_span("invoke_agent qa", start=0, end=100 * MS, attrs={"gen_ai.agent.name": "qa"},
                  status=Status(code=Status.STATUS_CODE_ERROR))
    # Run B: kb returns a alone (30 ms); a judge fails the answer.
    b = make_span("invoke_agent qa", start=0, end=100 * MS, attrs={"gen_ai.agent.name": "qa"})
    judged = _retrieve(b, 0, 30 * MS, "kb", [("a", 0.8)])
    verdict = Span.Event(name="gen_ai.evaluation.result", time_unix_nano=50 * MS)
    verdict.attributes.extend(kvs({"gen_ai.evaluation.name": "faithfulness", "gen_ai.evaluation.score.value": 0.1}))
    b.events.append(verdict)
    # Run C: web returns nothing (20 ms).
    c = make_span("invoke_agent qa", start=0, end=100 * MS, attrs={"gen_ai.agent.name": "qa"})
    store.write(decode_request(make_request([
        a, _retrieve(a, 0, 10 * MS, "kb", [("a", 0.9), ("b", 0.5)]), _rerank(a, 10 * MS, 15 * MS,
                                                                                [("a", 0.9), ("b", 0.5)],
                                                                                [("b", 0.99), ("a", 0.3)]),
        b, judged,
        c, _retrieve(c, 0, 20 * MS, "web", []),
    ]).SerializeToString()).table)
    state = AppState(store)
    state.ready = True
    yield TestClient(create_app(state))
    store.close()


def test_per_index_calls_documents_empty_rate_scores_and_critical_share(api):
    got = api.get("/api/v1/stats/retrieval", params={"group_by": "index"}).json()
    groups = {g["key"]: g for g in got["groups"]}
    assert set(groups) == {"kb", "web", None}  # the reranker names no index
    kb, web = groups["kb"], groups["web"]
    assert (kb["calls"], kb["traces"], web["calls"]) == (2, 2, 1)
    assert kb["mean_documents"] == 1.5 and kb["empty_rate"] == 0.0
    assert web["empty_rate"] == 1.0 and web["top_score_mean"] is None
    assert kb["top_score_mean"] == pytest.approx(0.85)
    assert kb["top_score_p10"] == pytest.approx(0.81)  # 0.8 + 0.1 × (0.9 − 0.8)
    assert kb["p50_ms"] == pytest.approx(20.0)
    # Critical time of the three runs: 300 ms; kb's steps held 10 + 30 of it, web's 20.
    assert kb["critical_ms"] == pytest.approx(40.0) and kb["critical_share"] == pytest.approx(40 / 300, abs=1e-6)
    assert web["critical_share"] == pytest.approx(20 / 300, abs=1e-6)
    rerank = groups[None]
    assert (rerank["reranks"], rerank["rerank_top_changed_rate"]) == (1, 1.0)


def test_per_agent_and_day_and_the_documents_in_bad_runs(api):
    agents = api.get("/api/v1/stats/retrieval", params={"group_by": "agent"}).json()
    (qa,) = agents["groups"]
    assert (qa["key"], qa["calls"], qa["reranks"]) == ("qa", 4, 1)
    (day,) = api.get("/api/v1/stats/retrieval", params={"group_by": "day"}).json()["groups"]
    assert day["key"] == "1970-01-01" and day["calls"] == 4
    docs = {d["document_id"]: d for d in agents["top_documents"]}
    # a: retrieved in runs A (error) and B (failing evaluation); b only in A.
    assert (docs["a"]["retrieved"], docs["a"]["runs"], docs["a"]["runs_with_error"],
            docs["a"]["runs_failing_evaluation"], docs["a"]["bad_run_rate"]) == (2, 2, 1, 1, 1.0)
    assert (docs["b"]["retrieved"], docs["b"]["mean_rank"], docs["b"]["bad_run_rate"]) == (1, 2.0, 1.0)
    assert [d["document_id"] for d in agents["top_documents"]] == ["a", "b"]
    # In bad runs: a (two: A's error, B's verdict) before b (one).
    assert [(d["document_id"], d["bad_runs"]) for d in agents["bad_run_documents"]] == [("a", 2), ("b", 1)]
    strict = api.get("/api/v1/stats/retrieval", params={"fail_below": 0.05}).json()
    assert {d["document_id"]: d["runs_failing_evaluation"] for d in strict["top_documents"]} == {"a": 0, "b": 0}
    # With B's verdict passing, both documents were in one bad run (A's error) and b's rate is the higher.
    assert [(d["document_id"], d["bad_run_rate"]) for d in strict["bad_run_documents"]] == [("b", 1.0), ("a", 0.5)]


def test_group_by_is_checked(api):
    assert api.get("/api/v1/stats/retrieval", params={"group_by": "model"}).status_code in (400, 422)


def test_a_steps_documents_with_their_whole_content_on_demand():
    store = DuckDBStore(":memory:")
    long_text = "Rayleigh scattering. " * 100
    root = make_span("invoke_agent qa")
    step = _retrieve(root, 0, 5, "kb", [("a", 0.9)])
    step.attributes.pop()  # documents with a long content instead
    step.attributes.extend(kvs({"gen_ai.retrieval.documents": json.dumps([{"id": "a", "score": 0.9,
                                                                            "content": long_text}])}))
    store.write(decode_request(make_request([root, step]).SerializeToString()).table)
    state = AppState(store)
    state.ready = True
    api = TestClient(create_app(state))
    trace, span = root.trace_id.hex(), step.span_id.hex()
    got = api.get(f"/api/v1/traces/{trace}/spans/{span}/documents").json()
    assert (got["span_id"], got["query"], got["index_name"]) == (span, "q", "kb")
    (doc,) = got["documents"]
    assert doc["content"] == long_text and doc["chars"] == len(long_text) and len(doc["preview"]) < len(long_text)
    # The trajectory carries the preview only.
    steps = api.get(f"/api/v1/traces/{trace}/trajectory").json()["steps"]
    assert [s["documents"] for s in steps if s["span_id"] == span] == [[{"id": "a", "rank": 1, "score": 0.9,
                                                                         "preview": doc["preview"]}]]
    assert api.get(f"/api/v1/traces/{trace}/spans/{root.span_id.hex()}/documents").status_code == 404
    assert api.get(f"/api/v1/traces/{trace}/spans/{'0' * 16}/documents").status_code == 404
    assert api.get(f"/api/v1/traces/{trace}/spans/xyz/documents").status_code == 400
    store.close()
