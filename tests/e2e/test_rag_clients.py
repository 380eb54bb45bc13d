"""Real RAG clients (``tests/clients/rag``: LangChain and LlamaIndex through their OpenInference
instrumentations, Chroma through OpenLLMetry's), offline, each in its own trace: what a user reads back — the
trajectory's retrieval steps, the SQL views, a document's whole content, the stats — against what each client
itself returned."""

from __future__ import annotations

import json
import os
import subprocess

import httpx
import pytest

from tests.clients import venvs
from tests.clients.fake_openai import ANSWER, FakeOpenAI
from tests.e2e.conftest import wait_for

SERVICE = "rag-clients"


@pytest.fixture(scope="module")
def rag(server):
    python = venvs.python_of("rag")
    with FakeOpenAI() as base_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACELOOP_"))}
        env.update({"TRAJSCOPE_OTLP_HTTP": f"http://127.0.0.1:{server.http_port}", "FAKE_OPENAI_BASE_URL": base_url,
                    "OTEL_SERVICE_NAME": SERVICE, "ANONYMIZED_TELEMETRY": "False", "PYTHONUNBUFFERED": "1"})
        done = subprocess.run([str(python), str(venvs.scenario("rag"))], env=env, capture_output=True, text=True,
                              timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    returned = json.loads(done.stdout.strip().splitlines()[-1])
    def roots() -> dict[str, str]:  # the runs (indexing documents makes traces of its own too)
        return {t["root_name"]: t["trace_id"] for t in server.get("/api/v1/traces", service=SERVICE,
                                                                   limit=50).json()["traces"]
                if t["root_name"].startswith("rag-")}

    wait_for(lambda: len(roots()) == 3)
    found = roots()
    assert set(found) == {"rag-langchain", "rag-chroma", "rag-llamaindex"}, (found, done.stderr[-2000:])
    return server, returned, found


def _steps(server, trace_id: str) -> list[dict]:
    return server.get(f"/api/v1/traces/{trace_id}/trajectory").json()["steps"]


def _sql(server, sql: str) -> list[dict]:
    answer = httpx.post(f"{server.api}/api/v1/sql", json={"sql": sql}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["rows"]


def test_langchain_retriever_step_has_the_query_and_the_documents_it_returned(rag):
    server, returned, roots = rag
    lc = returned["langchain"]
    assert lc["answer"] == ANSWER
    steps = _steps(server, roots["rag-langchain"])
    (retriever,) = [s for s in steps if s["category"] == "retriever"]
    assert retriever["query"] == returned["question"]
    assert [(d["id"], d["rank"], d["preview"]) for d in retriever["documents"]] == [
        (doc_id, rank, content)
        for rank, (doc_id, content) in enumerate(zip(lc["ids"], lc["contents"], strict=True), start=1)]
    assert all(d["score"] is None for d in retriever["documents"])  # a LangChain retriever reports none
    assert [s["category"] for s in steps].count("llm") == 1  # the answer, from the retrieved context
    (row,) = _sql(server, f"SELECT index_name, documents, empty FROM retrievals "
                          f"WHERE trace_id = '{roots['rag-langchain']}'")
    assert row == {"index_name": "InMemoryVectorStore", "documents": 2, "empty": False}
    metadata = _sql(server, f"SELECT metadata FROM retrieved_documents WHERE trace_id = '{roots['rag-langchain']}' "
                            "ORDER BY rank")
    assert [json.loads(m["metadata"]) if isinstance(m["metadata"], str) else m["metadata"]
            for m in metadata] == lc["metadata"]


def test_chroma_query_documents_with_their_distances_and_whole_content(rag):
    server, returned, roots = rag
    chroma = returned["chroma"]
    trace_id = roots["rag-chroma"]
    (step,) = [s for s in _steps(server, trace_id) if s["category"] == "retriever"]
    rows = _sql(server, f"SELECT rank, document_id, distance, preview FROM retrieved_documents "
                        f"WHERE trace_id = '{trace_id}' ORDER BY rank")
    assert rows == [{"rank": i, "document_id": doc_id, "distance": pytest.approx(distance), "preview": content}
                    for i, (doc_id, distance, content) in enumerate(zip(chroma["ids"], chroma["distances"],
                                                                         chroma["contents"], strict=True), start=1)]
    (summary,) = _sql(server, f"SELECT system, top_k, documents FROM retrievals WHERE trace_id = '{trace_id}'")
    assert summary == {"system": "chroma", "top_k": 3, "documents": 3}
    full = server.get(f"/api/v1/traces/{trace_id}/spans/{step['span_id']}/documents").json()
    assert [d["content"] for d in full["documents"]] == chroma["contents"]


def test_llamaindex_retrieve_step_with_scores_and_no_step_for_its_inner_span(rag):
    server, returned, roots = rag
    li = returned["llamaindex"]
    trace_id = roots["rag-llamaindex"]
    with_documents = [s for s in _steps(server, trace_id) if s["documents"] is not None]
    assert len(with_documents) == 1  # the inner `_retrieve` span lists nothing: not a second, empty step
    (step,) = with_documents
    assert step["query"] == returned["question"]
    assert [(d["id"], d["rank"], d["score"], d["preview"]) for d in step["documents"]] == [
        (node_id, rank, pytest.approx(score), content)
        for rank, (node_id, score, content) in enumerate(zip(li["ids"], li["scores"], li["contents"], strict=True),
                                                       start=1)]


def test_retrieval_stats_over_the_three_clients(rag):
    server, returned, _ = rag
    stats = server.get("/api/v1/stats/retrieval", group_by="retriever", service=SERVICE).json()
    calls = {g["key"]: g["calls"] for g in stats["groups"]}
    assert calls == {"VectorStoreRetriever": 1, "chroma.query": 1, "VectorIndexRetriever.retrieve": 1}
    top = {d["document_id"]: d["retrieved"] for d in stats["top_documents"]}
    # The sky document came back first from LangChain and Chroma (by id) and from LlamaIndex (by node id).
    assert top["sky"] == 2
    assert returned["chroma"]["ids"][0] == "sky" and returned["langchain"]["ids"][0] == "sky"
