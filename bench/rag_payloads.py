"""Big retrieval payloads: what reading a step's documents costs at ingest, in storage and on the trace page.

    .venv/bin/python bench/rag_payloads.py [--docs 50] [--doc-bytes 4096] [--steps 200] [--runs 7]

Builds requests of retrieval steps, each returning ``--docs`` documents of ``--doc-bytes`` of text, in both
dialects that flatten documents into attributes or one JSON value (OpenInference, OTel GenAI). Decodes them
with the columnar decoder (the hot path) three ways, alternating run by run:

- ``steps``: as sent (retriever spans: documents read into the ``retrieval`` record);
- ``same attributes, no step``: the same attributes on spans of another kind (nothing read);
- ``no documents``: the spans without their documents.

Prints µs per document of decoding the attributes (no step − no documents) and of reading them into the
record (steps − no step): the record must cost no more per document than the attributes themselves. Then
bytes per step stored (one DuckDB file each, checkpointed) and the time to answer a trajectory of one run
holding all the steps, with and without the records (document content is read only on demand).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

from common import env_note, median
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from trajscope.analysis.retrieval import PREVIEW_CHARS
from trajscope.analysis.trajectory import COLUMNS, trajectory_of_table
from trajscope.collector import columnar_decode
from trajscope.storage.duckdb_store import DuckDBStore
from trajscope.workload import _kv

WORDS = ("retrieval", "augmented", "generation", "grounds", "answers", "in", "documents", "the", "index", "returns",
         "ranked", "chunks", "with", "scores", "policy", "refund", "shipping", "invoice", "customer", "order")


def _text(rng: random.Random, size: int) -> str:
    out: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        out.append(word)
        length += len(word) + 1
    return " ".join(out)[:size]


def _attrs(rng: random.Random, dialect: str, docs: int, size: int, kind: str) -> dict:
    if dialect == "openinference":
        attrs = {"openinference.span.kind": kind, "input.value": "what is the refund policy?"}
        for i in range(docs):
            attrs.update({f"retrieval.documents.{i}.document.id": f"doc-{rng.randrange(10**6)}",
                          f"retrieval.documents.{i}.document.content": _text(rng, size),
                          f"retrieval.documents.{i}.document.score": round(1 - i / docs, 4),
                          f"retrieval.documents.{i}.document.metadata": json.dumps({"source": f"s{i}.md"})})
        return attrs
    listed = [{"id": f"doc-{rng.randrange(10**6)}", "score": round(1 - i / docs, 4), "content": _text(rng, size)}
              for i in range(docs)]
    # Another kind: a span-kind attribute decides before the retrieval attributes would.
    other = {} if kind == "RETRIEVER" else {"openinference.span.kind": kind}
    return {"gen_ai.operation.name": "retrieval" if kind == "RETRIEVER" else "chain", **other,
            "gen_ai.data_source.id": "kb", "gen_ai.retrieval.query.text": "what is the refund policy?",
            **({"gen_ai.retrieval.documents": json.dumps(listed)} if docs else {})}


def payload(variant: str, steps: int, docs: int, size: int, seed: int = 1) -> tuple[bytes, bytes]:
    """One request of ``steps`` retrieval spans under one root (half per dialect); and its trace id."""
    rng = random.Random(seed)
    trace_id = rng.randbytes(16)
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.append(_kv("service.name", "rag-bench"))
    spans = rs.scope_spans.add().spans
    root = spans.add(trace_id=trace_id, span_id=rng.randbytes(8), name="invoke_agent rag",
                     start_time_unix_nano=10**18, end_time_unix_nano=10**18 + steps * 10**6 + 1)
    for i in range(steps):
        dialect = ("openinference", "genai")[i % 2]
        kind = "RETRIEVER" if variant == "steps" else "CHAIN"
        span = Span(trace_id=trace_id, span_id=rng.randbytes(8), parent_span_id=root.span_id, name=f"retrieve {i}",
                    start_time_unix_nano=10**18 + i * 10**6, end_time_unix_nano=10**18 + (i + 1) * 10**6)
        attrs = _attrs(rng, dialect, 0 if variant == "no documents" else docs, size, kind)
        span.attributes.extend(_kv(k, v) for k, v in attrs.items())
        spans.append(span)
    return request.SerializeToString(), trace_id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=50)
    ap.add_argument("--doc-bytes", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    variants = ("steps", "same attributes, no step", "no documents")
    built = {v: payload(v, args.steps, args.docs, args.doc_bytes) for v in variants}
    print(env_note())
    print(f"{args.steps} retrieval steps × {args.docs} documents × {args.doc_bytes} B "
          f"({len(built['steps'][0]) / 2**20:.1f} MiB per request), {args.runs} alternating runs")
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.runs):
        for v in variants:
            started = time.perf_counter()
            decoded = columnar_decode.decode_request(built[v][0], "default", strict=True)
            times[v].append(time.perf_counter() - started)
            assert decoded is not None and decoded.accepted == args.steps + 1
    per_doc = args.steps * args.docs
    took = {v: median(times[v]) for v in variants}
    attributes = (took["same attributes, no step"] - took["no documents"]) / per_doc * 1e6
    record = (took["steps"] - took["same attributes, no step"]) / per_doc * 1e6
    for v in variants:
        print(f"  decode, {v:<26} {took[v] * 1e3:8.1f} ms  ({took[v] / (args.steps + 1) * 1e6:7.1f} µs/span)")
    print(f"  per document: decoding its attributes {attributes:.2f} µs, reading it into the record {record:.2f} µs "
          f"({record / attributes:.2f}×)")

    out = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    try:
        for v in ("steps", "same attributes, no step"):
            store = DuckDBStore(out / v.replace(" ", "_").replace(",", ""))
            table = columnar_decode.decode_request(built[v][0], "default", strict=True).table
            store.write(table)
            store.checkpoint()
            trace_id = built[v][1].hex()
            reads = []
            for _ in range(args.runs):
                started = time.perf_counter()
                trajectory_of_table(trace_id, store.get_trace(trace_id, columns=COLUMNS))
                reads.append(time.perf_counter() - started)
            store.close()
            size = sum(f.stat().st_size for f in (out / v.replace(" ", "_").replace(",", "")).glob("*.duckdb"))
            print(f"  stored, {v:<26} {size / args.steps / 1024:8.1f} KiB per step; "
                  f"trajectory of the run {median(reads) * 1e3:6.1f} ms")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"  (the record keeps a {PREVIEW_CHARS}-character preview per document; the whole text is read on demand)")


if __name__ == "__main__":
    main()
