"""Retrieval steps from each dialect, normalised the same way; both decoders store the same record."""

from __future__ import annotations

import json
import os

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.collector.test_columnar_decode import assert_same
from tests.otlp_builders import kvs, make_request, make_span
from trajscope.analysis.retrieval import PREVIEW_CHARS, retrieval
from trajscope.collector.otlp_decode import decode_request

LONG = "Paris is the capital of France. " * 20


def _oi_docs(prefix: str, docs: list[tuple[str, str, float]]) -> dict:
    attrs = {}
    for i, (doc_id, content, score) in enumerate(docs):
        attrs[f"{prefix}.{i}.document.id"] = doc_id
        attrs[f"{prefix}.{i}.document.content"] = content
        attrs[f"{prefix}.{i}.document.score"] = score
        attrs[f"{prefix}.{i}.document.metadata"] = json.dumps({"source": f"{doc_id}.md"})
    return attrs


def test_openinference_retriever_documents_in_rank_order_with_query_and_store():
    attrs = {"openinference.span.kind": "RETRIEVER", "input.value": "capital of France?",
             "metadata": json.dumps({"ls_vector_store_provider": "InMemoryVectorStore"}),
             # Keys past 9 sort as numbers, not text: document 10 is the eleventh.
             **_oi_docs("retrieval.documents", [(f"d{i}", LONG if i == 0 else f"text {i}", 1 - i / 20)
                                                for i in range(11)])}
    got = retrieval(attrs, None, "retriever")
    assert got["query"] == "capital of France?"
    assert got["index_name"] == "InMemoryVectorStore"
    assert [d["id"] for d in got["documents"]] == [f"d{i}" for i in range(11)]
    assert [d["rank"] for d in got["documents"]] == list(range(1, 12))
    first = got["documents"][0]
    assert first["score"] == 1.0 and first["chars"] == len(LONG)
    assert first["preview"] == LONG[:PREVIEW_CHARS] and "content" not in first
    assert first["metadata"] == {"source": "d0.md"}
    assert retrieval(attrs, None, "retriever", full=True)["documents"][0]["content"] == LONG


def test_openinference_reranker_keeps_the_rank_each_document_had_before():
    given = [("a", "alpha", 0.9), ("b", "beta", 0.8), ("c", "gamma", 0.7)]
    kept = [("c", "gamma", 0.99), ("a", "alpha", 0.5)]
    attrs = {"openinference.span.kind": "RERANKER", "reranker.query": "q", "reranker.model_name": "rerank-1",
             "reranker.top_k": 2, **_oi_docs("reranker.input_documents", given),
             **_oi_docs("reranker.output_documents", kept)}
    got = retrieval(attrs, None, "reranker")
    assert (got["query"], got["system"], got["top_k"]) == ("q", "rerank-1", 2)
    assert [(d["id"], d["rank"], d["previous_rank"]) for d in got["documents"]] == [("c", 1, 3), ("a", 2, 1)]
    assert [d["id"] for d in got["input_documents"]] == ["a", "b", "c"]


def test_genai_retrieval_operation_documents_as_json_text_or_array():
    docs = [{"id": "doc_1", "score": 0.95, "content": "rainy", "source_id": "kb"}, {"id": "doc_2", "score": 0.5}]
    attrs = {"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "weather-kb",
             "gen_ai.retrieval.query.text": "weather in Seattle?", "gen_ai.retrieval.top_k": 3,
             "gen_ai.retrieval.documents": json.dumps(docs)}
    got = retrieval(attrs, None, "retriever")
    assert (got["query"], got["index_name"], got["top_k"]) == ("weather in Seattle?", "weather-kb", 3)
    assert [(d["id"], d["rank"], d["score"]) for d in got["documents"]] == [("doc_1", 1, 0.95), ("doc_2", 2, 0.5)]
    assert got["documents"][0]["metadata"] == {"source_id": "kb"}  # fields beyond the known ones are kept
    assert retrieval({**attrs, "gen_ai.retrieval.documents": docs}, None, "retriever") == got


def test_traceloop_vector_store_result_events():
    events = [{"name": "db.query.result", "time_unix_nano": 1, "attributes": {
        "db.query.result.id": f"id{i}", "db.query.result.distance": 0.1 * (i + 1),
        "db.query.result.document": f"chunk {i}", "db.query.result.metadata": json.dumps({"page": i})}}
        for i in range(3)]
    attrs = {"db.system": "chroma", "db.operation": "query", "db.chroma.query.n_results": 3}
    got = retrieval(attrs, events, "retriever", "chroma.query")
    assert (got["system"], got["top_k"], got["query"]) == ("chroma", 3, None)
    assert [(d["id"], d["rank"], d["distance"], d["score"]) for d in got["documents"]] == [
        ("id0", 1, 0.1, None), ("id1", 2, 0.2, None), ("id2", 3, 0.30000000000000004, None)]
    assert got["documents"][2]["metadata"] == {"page": 2}


def test_an_empty_retrieval_is_a_step_with_no_documents_and_other_spans_are_none():
    got = retrieval({"gen_ai.operation.name": "retrieval", "gen_ai.retrieval.query.text": "nothing"}, None,
                    "retriever")
    assert got["documents"] == [] and got["query"] == "nothing"
    assert retrieval({"db.system": "postgresql", "db.query.text": "SELECT 1"}, None, "other") is None
    assert retrieval({"gen_ai.request.model": "m"}, None, "llm") is None


def test_both_decoders_store_the_same_retrieval_record():
    trace = os.urandom(16)
    oi = make_span("retrieve", trace_id=trace, attrs={
        "openinference.span.kind": "RETRIEVER", "input.value": "q",
        **_oi_docs("retrieval.documents", [("a", LONG, 0.9), ("b", "short", 0.1)])})
    chroma = make_span("chroma.query", trace_id=trace, attrs={"db.system": "chroma", "db.chroma.query.n_results": 2})
    for i in range(2):
        event = Span.Event(name="db.query.result", time_unix_nano=5)
        event.attributes.extend(kvs({"db.query.result.id": f"c{i}", "db.query.result.distance": 0.5 + i}))
        chroma.events.append(event)
    plain = make_span("llm", trace_id=trace, attrs={"gen_ai.request.model": "m"})
    payload = make_request([oi, chroma, plain]).SerializeToString()
    assert_same(payload)
    rows = {r["name"]: r for r in decode_request(payload).table.to_pylist()}
    assert rows["chroma.query"]["category"] == "retriever"
    assert [d["id"] for d in rows["chroma.query"]["retrieval"]["documents"]] == ["c0", "c1"]
    stored = rows["retrieve"]["retrieval"]
    assert stored["query"] == "q" and json.loads(stored["documents"][0]["metadata"]) == {"source": "a.md"}
    assert stored["documents"][0]["preview"] == LONG[:PREVIEW_CHARS]
    assert rows["llm"]["retrieval"] is None


def test_langchain_ids_come_from_its_output_and_a_wrapper_span_without_documents_is_no_step():
    listed = {"documents": [{"id": "sky", "metadata": {}, "page_content": "blue", "type": "Document"},
                            {"id": "cats", "metadata": {}, "page_content": "sleep", "type": "Document"}]}
    attrs = {"input.value": "q", "output.value": json.dumps(listed),
             "retrieval.documents.0.document.content": "blue", "retrieval.documents.1.document.content": "sleep"}
    assert [d["id"] for d in retrieval(attrs, None, "retriever")["documents"]] == ["sky", "cats"]
    # An empty answer is an empty retrieval ...
    empty = retrieval({"input.value": "q", "output.value": json.dumps({"documents": []})}, None, "retriever")
    assert empty["documents"] == []
    # ... but a span that returned something without listing it (LlamaIndex's inner `_retrieve`) is unknown.
    inner = {"input.value": json.dumps({"query_bundle": {"query_str": "q"}}),
             "output.value": json.dumps(["<NodeWithScore(node=TextNode(id_=1), score=0.9)>"])}
    assert retrieval(inner, None, "retriever") is None
