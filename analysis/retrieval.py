"""Retrieval steps — the query, where it searched, and the documents that came back, ranked — from whatever
dialect the sender used, normalised to one record. Pure.

Dialects (``../shared/SEMCONV.md``, ``docs/rag.md``):

- OpenInference retrievers: ``input.value`` (the query), ``retrieval.documents.{i}.document.{id,content,
  score,metadata}``; rerankers: ``reranker.{query,model_name,top_k}``, ``reranker.input_documents.{i}...``
  (before) and ``reranker.output_documents.{i}...`` (after). LangChain and LlamaIndex retrievers arrive this
  way through their OpenInference instrumentations; LangChain names its vector store in ``metadata``
  (``ls_vector_store_provider``).
- OTel GenAI ``retrieval`` operation: ``gen_ai.retrieval.query.text``, ``gen_ai.retrieval.top_k``,
  ``gen_ai.data_source.id`` (the index), ``gen_ai.retrieval.documents`` (a JSON array of ``{id, score,
  content, …}``, as a string or an array value).
- OpenLLMetry / Traceloop vector stores (Chroma, Pinecone, Qdrant, LanceDB, Milvus…): ``db.system``, the
  asked-for count (``db.vector.query.top_k`` and each store's own key), one ``db.query.result`` (or
  ``db.search.result``) event per returned document with ``.id``, ``.score`` or ``.distance``,
  ``.document`` and ``.metadata``.

A document's ``rank`` is its position in what the step returned (1 = first). Only a ``preview`` of its
content is kept in the record; the full text stays in the span's attributes or events, where
``retrieval(..., full=True)`` reads it again on demand.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from trajscope.collector.normalise import _as_float

PREVIEW_CHARS = 240

_OI_DOC = re.compile(r"^(retrieval\.documents|reranker\.input_documents|reranker\.output_documents)"
                     r"\.(\d+)\.document\.(id|content|score|metadata)$")
_RESULT_EVENTS = {"db.query.result": "db.query.result.", "db.search.result": "db.search.result."}
# The number of results a step asked for, by dialect and store.
TOP_K_KEYS = ("gen_ai.retrieval.top_k", "reranker.top_k", "db.vector.query.top_k", "db.chroma.query.n_results",
              "pinecone.query.top_k", "db.pinecone.query.top_k", "db.qdrant.search.limit", "db.lancedb.search.limit",
              "db.milvus.search.limit")
QUERY_KEYS = ("gen_ai.retrieval.query.text", "reranker.query", "db.query.text", "db.vector.query.text",
              "db.lancedb.search.query")
INDEX_KEYS = ("gen_ai.data_source.id", "db.collection.name", "db.qdrant.collection_name",
              "db.milvus.search.collection_name", "db.namespace", "pinecone.query.namespace")
RETRIEVAL_CATEGORIES = frozenset({"retriever", "reranker"})


def has_result_events(event_names: Any) -> bool:
    """Whether a span's events include a vector store's per-result ones."""
    return any(name in _RESULT_EVENTS for name in event_names)


def is_candidate(category: str, event_names: Any) -> bool:
    """Whether a span may describe a retrieval, from what both decoders know cheaply: its category (the
    dialect tables make retriever, reranker and vector-store query spans so) or a result event."""
    return category in RETRIEVAL_CATEGORIES or has_result_events(event_names)


def retrieval(attrs: dict[str, Any], events: list[dict[str, Any]] | None, category: str,
              name: str = "", *, full: bool = False) -> dict[str, Any] | None:
    """The span's retrieval record, or None when it describes none: ``{query, index_name, top_k, system,
    documents: [{id, rank, score, distance, preview, chars, metadata}], input_documents}`` — a reranker's
    ``input_documents`` are what it was given, and each output document has ``previous_rank``, its rank
    there (None when it was not among them). ``full`` keeps each document's whole ``content`` too."""
    oi = _openinference_documents(attrs, full)
    documents = oi.get("retrieval.documents") or oi.get("reranker.output_documents")
    inputs = oi.get("reranker.input_documents")
    if documents is not None:
        _ids_from_output(documents, attrs.get("output.value"))
    if documents is None:
        documents = _genai_documents(attrs.get("gen_ai.retrieval.documents"), full)
    if documents is None:
        documents = _event_documents(events, full)
    query = _first_text(attrs, QUERY_KEYS)
    if query is None and category in RETRIEVAL_CATEGORIES:
        query = _text(attrs.get("input.value"))
    top_k = _first_int(attrs, TOP_K_KEYS)
    index = _first_text(attrs, INDEX_KEYS) or _langchain_store(attrs.get("metadata"))
    system = _text(attrs.get("reranker.model_name")) or _text(attrs.get("db.system"))
    if documents is None and inputs is None and query is None and top_k is None and index is None:
        return None
    if documents is None and category not in RETRIEVAL_CATEGORIES and not _said_retrieval(attrs):
        return None  # a query or an index alone does not make, say, an SQL span a retrieval
    if documents is None and inputs is None and _returned_something(attrs.get("output.value")):
        # A retriever span that says it returned something but not what (LlamaIndex's inner `_retrieve`,
        # inside the `retrieve` span that lists the documents): what it returned is unknown, not nothing.
        return None
    documents = documents or []
    if inputs is not None:
        before = {_identity(d): d["rank"] for d in inputs}
        for doc in documents:
            doc["previous_rank"] = before.get(_identity(doc))
    return {"query": query, "index_name": index, "top_k": top_k, "system": system, "documents": documents,
            "input_documents": inputs}


def stored(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` as the ``spans.retrieval`` column holds it (``storage.schema.RETRIEVAL``, in a list of one):
    metadata as JSON text, no full content."""
    def row(doc: dict[str, Any]) -> dict[str, Any]:
        meta = doc.get("metadata")
        return {**{k: v for k, v in doc.items() if k != "content"},
                "metadata": None if meta is None else _json_text(meta)}

    inputs = record.get("input_documents")
    return {**record, "documents": [row(d) for d in record["documents"]],
            "input_documents": None if inputs is None else [row(d) for d in inputs]}


def _output_documents(output: Any) -> list[Any] | None:
    """The list an OpenInference ``output.value`` holds: a JSON list, or the ``documents`` / ``nodes`` of an
    object (LangChain: ``{"documents": [{"id", "metadata", "page_content"}, …]}``)."""
    if not isinstance(output, str):
        return None
    try:
        value = orjson.loads(output)
    except orjson.JSONDecodeError:
        return None
    if isinstance(value, dict):
        value = value.get("documents", value.get("nodes"))
    return value if isinstance(value, list) else None


def _returned_something(output: Any) -> bool:
    listed = _output_documents(output)
    return bool(listed) if listed is not None else isinstance(output, str) and output.strip() not in ("", "null")


def _ids_from_output(documents: list[dict[str, Any]], output: Any) -> None:
    """Fill the ids OpenInference left out (LangChain's retrievers) from the same documents in ``output.value``."""
    if all(d["id"] is not None for d in documents):
        return
    listed = _output_documents(output)
    if listed is None or len(listed) != len(documents):
        return
    for doc, item in zip(documents, listed, strict=True):
        if doc["id"] is None and isinstance(item, dict) and item.get("id") is not None:
            doc["id"] = str(item["id"])


def stored_record(attributes: str, events: str | None, category: str, name: str) -> dict[str, Any] | None:
    """The ``spans.retrieval`` value of a stored span, from its attributes and events as stored (JSON text)."""
    step = retrieval(orjson.loads(attributes), orjson.loads(events) if events else None, category, name)
    return stored(step) if step else None


def _said_retrieval(attrs: dict[str, Any]) -> bool:
    return attrs.get("gen_ai.operation.name") == "retrieval" or any(k in attrs for k in TOP_K_KEYS)


def _identity(doc: dict[str, Any]) -> Any:
    """What matches a reranked document with the one it was given: its id, else its content."""
    return ("id", doc["id"]) if doc.get("id") is not None else ("text", doc.get("content") or doc.get("preview"))


def _document(rank: int, doc_id: Any, content: Any, score: Any, distance: Any, metadata: Any,
              full: bool) -> dict[str, Any]:
    text = content if isinstance(content, str) else (None if content is None else _json_text(content))
    out: dict[str, Any] = {
        "id": None if doc_id is None else str(doc_id),
        "rank": rank,
        "score": _as_float(score),
        "distance": _as_float(distance),
        "previous_rank": None,
        "preview": None if text is None else text[:PREVIEW_CHARS],
        "chars": None if text is None else len(text),
        "metadata": _metadata(metadata),
    }
    if full:
        out["content"] = text
    return out


def _openinference_documents(attrs: dict[str, Any], full: bool) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for key, value in attrs.items():
        if not key.startswith(("retrieval.", "reranker.")):
            continue
        match = _OI_DOC.match(key)
        if match:
            found.setdefault(match[1], {}).setdefault(int(match[2]), {})[match[3]] = value
    out = {}
    for group, docs in found.items():
        out[group] = [_document(rank, d.get("id"), d.get("content"), d.get("score"), None, d.get("metadata"), full)
                      for rank, (_, d) in enumerate(sorted(docs.items()), start=1)]
    return out


def _genai_documents(value: Any, full: bool) -> list[dict[str, Any]] | None:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(value, list):
        return None
    docs = []
    for rank, item in enumerate(value, start=1):
        if not isinstance(item, dict):
            item = {"content": item}
        content = item.get("content", item.get("text", item.get("page_content")))
        metadata = item.get("metadata")
        extra = {k: v for k, v in item.items() if k not in ("id", "score", "content", "text", "page_content",
                                                               "metadata", "distance")}
        if extra:
            metadata = {**(metadata if isinstance(metadata, dict) else {}), **extra}
        docs.append(_document(rank, item.get("id"), content, item.get("score"), item.get("distance"), metadata,
                              full))
    return docs


def _event_documents(events: list[dict[str, Any]] | None, full: bool) -> list[dict[str, Any]] | None:
    docs = []
    for event in events or ():
        prefix = _RESULT_EVENTS.get(event.get("name", ""))
        if prefix is None:
            continue
        a = event.get("attributes") or {}
        docs.append(_document(len(docs) + 1, a.get(prefix + "id"), a.get(prefix + "document", a.get(prefix + "entity")),
                              a.get(prefix + "score"), a.get(prefix + "distance"), a.get(prefix + "metadata"), full))
    return docs or None


def _metadata(value: Any) -> dict[str, Any] | None:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return {"value": value}
    if isinstance(value, dict):
        return value or None
    return None if value is None else {"value": value}


def _langchain_store(metadata: Any) -> str | None:
    meta = _metadata(metadata) or {}
    return _text(meta.get("ls_vector_store_provider")) or _text(meta.get("ls_retriever_name"))


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _first_text(attrs: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = attrs.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _first_int(attrs: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        raw = attrs.get(key)
        if raw is None:
            continue
        value = _as_float(raw)
        if value is not None and value.is_integer() and value >= 0:
            return int(value)
    return None
