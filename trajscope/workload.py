"""A realistic synthetic agent workload as OTLP export requests (used by ``trajscope demo`` and bench/).

Sessions of several turns; each turn is one trace: an agent run with retrieval, a guardrail check, LLM
calls that request parallel tool calls, a tool that sometimes fails, and a final answer. Two services
speak two dialects (OTel GenAI and OpenInference) so normalisation is visible. Deterministic for a seed.

With ``rag=True`` (``trajscope demo``) retrieval returns ranked documents from a small corpus, a reranker
reorders them in some runs, a judge scores each answer (``gen_ai.evaluation.result``), and runs in the middle
of the time range hit a weak-retrieval stretch: an index serving stale documents with low scores or none,
and answers judged unfaithful more often. The default (the benches' workload) keeps retrieval bare.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

MS = 1_000_000
AGENTS = ("support-agent", "research-agent", "billing-agent", "travel-planner")
MODELS = (("openai", "gpt-4o-2024-08-06"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"),
          ("google", "gemini-2.5-flash"))
TOOLS = ("search_docs", "get_order", "get_weather", "lookup_customer", "create_ticket", "convert_currency",
         "book_flight")
TOPICS = ("my order never arrived", "refund for a double charge", "weather in Lisbon next week",
          "flights from Berlin to Oslo", "upgrade my plan", "reset my password", "compare two invoices")
FILLER = ("The customer has been with us since 2019 and prefers email contact. Previous tickets mention a "
          "delayed shipment and a partial refund. Policy: refunds within 30 days, escalate above 500 EUR. ",
          "Search results: 3 documents matched. The most relevant says orders ship within 2 business days and "
          "tracking numbers are emailed once the parcel leaves the warehouse. ",
          "Forecast data for the next 7 days shows mild temperatures, light rain on Tuesday and clear skies "
          "from Thursday. Flights on the route depart hourly between 06:00 and 22:00. ")


def _kv(key: str, value: Any) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    elif isinstance(value, list):
        for item in value:
            kv.value.array_value.values.add().string_value = str(item)
    else:
        kv.value.string_value = str(value)
    return kv


@dataclass
class _Trace:
    rng: random.Random
    trace_id: bytes
    service: str
    dialect: str  # "genai" | "openinference"
    spans: list[Span] = field(default_factory=list)

    def span(self, name: str, parent: Span | None, start: int, duration: int, attrs: dict[str, Any],
             *, kind: int = Span.SPAN_KIND_INTERNAL, error: str | None = None) -> Span:
        span = Span(trace_id=self.trace_id, span_id=self.rng.randbytes(8), name=name, kind=kind,
                    start_time_unix_nano=start, end_time_unix_nano=start + duration)
        if parent is not None:
            span.parent_span_id = parent.span_id
        span.attributes.extend(_kv(k, v) for k, v in attrs.items() if v is not None)
        if error:
            span.status.code = Status.STATUS_CODE_ERROR
            span.status.message = error
            event = span.events.add(name="exception", time_unix_nano=start + duration)
            event.attributes.extend([_kv("exception.type", "ToolError"), _kv("exception.message", error),
                                     _kv("exception.stacktrace", f"Traceback (most recent call last):\n  "
                                                                 f"File \"tools.py\", line 88\nToolError: {error}")])
        self.spans.append(span)
        return span


def _messages(role: str, text: str, tool_calls: list[tuple[str, str]] = ()) -> str:
    parts: list[dict[str, Any]] = [{"type": "text", "content": text}]
    parts += [{"type": "tool_call", "id": call_id, "name": tool} for call_id, tool in tool_calls]
    return json.dumps([{"role": role, "parts": parts}])


def _text(rng: random.Random, prefix: str, length: int = 300) -> str:
    return (prefix + " " + "".join(rng.choice(FILLER) for _ in range(4)))[:length]


# The demo's corpus: (document id, text); the "legacy" ones are what the weak stretch serves.
CORPUS = tuple((f"kb-{i:03d}", f"{TOPICS[i % len(TOPICS)].capitalize()}: {FILLER[i % len(FILLER)]}")
               for i in range(24))
LEGACY = tuple((f"kb-legacy-{i:02d}", f"(archived 2019) {TOPICS[i % len(TOPICS)]}: see the old policy binder.")
               for i in range(4))
INDEXES = ("knowledge_base", "policies")
RERANKER = "rerank-english-v3"
# Share of the time range, around its middle, where retrieval is weak (``rag`` only).
WEAK_STRETCH = (0.4, 0.6)


class Workload:
    """Generates traces turn by turn; ``requests`` packs them into export requests."""

    def __init__(self, seed: int = 42, now_ns: int | None = None, *, rag: bool = False) -> None:
        self.rng = random.Random(seed)
        self.now_ns = now_ns if now_ns is not None else time.time_ns()
        self.rag = rag
        self._weak = (0, 0)  # the weak stretch's (start, end), set by ``sessions``

    # -- retrieval (rag) ----------------------------------------------------------------------------
    def _documents(self, rng: random.Random, weak: bool, k: int) -> list[tuple[str, str, float]]:
        """``k`` ranked (id, text, score): strong scores from the corpus, or, in the weak stretch, low ones
        that lean on the legacy documents."""
        pool = (LEGACY + CORPUS[:6]) if weak else CORPUS
        picked = rng.sample(pool, k)
        top = rng.uniform(0.2, 0.45) if weak else rng.uniform(0.7, 0.95)
        return [(doc_id, text, round(top - i * rng.uniform(0.02, 0.08), 4)) for i, (doc_id, text) in enumerate(picked)]

    def _retrieve(self, t: _Trace, parent: Span, start: int, query: str, weak: bool) -> tuple[Span, list]:
        rng = t.rng
        index = rng.choice(INDEXES) if not weak else "knowledge_base"
        empty = weak and rng.random() < 0.3
        docs = [] if empty else self._documents(rng, weak, 5)
        if t.dialect == "openinference":
            attrs: dict[str, Any] = {"openinference.span.kind": "RETRIEVER", "input.value": query,
                                     "metadata": json.dumps({"ls_vector_store_provider": index})}
            for i, (doc_id, text, score) in enumerate(docs):
                attrs.update({f"retrieval.documents.{i}.document.id": doc_id,
                              f"retrieval.documents.{i}.document.content": text,
                              f"retrieval.documents.{i}.document.score": score,
                              f"retrieval.documents.{i}.document.metadata": json.dumps({"index": index})})
            name = "VectorStoreRetriever"
        else:
            attrs = {"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": index,
                     "gen_ai.retrieval.query.text": query, "gen_ai.retrieval.top_k": 5,
                     "gen_ai.retrieval.documents": json.dumps([{"id": d, "score": s, "content": text}
                                                               for d, text, s in docs])}
            name = f"retrieval {index}"
        span = t.span(name, parent, start, rng.randint(40, 400 if not weak else 1200) * MS, attrs,
                      kind=Span.SPAN_KIND_CLIENT)
        return span, docs

    def _rerank(self, t: _Trace, parent: Span, start: int, query: str, docs: list) -> Span:
        rng = t.rng
        kept = sorted(docs, key=lambda d: -(d[2] + rng.uniform(-0.1, 0.1)))[:3]
        attrs: dict[str, Any] = {"openinference.span.kind": "RERANKER", "reranker.query": query,
                                 "reranker.model_name": RERANKER, "reranker.top_k": 3}
        for group, items in (("reranker.input_documents", docs), ("reranker.output_documents", kept)):
            for i, (doc_id, text, score) in enumerate(items):
                attrs.update({f"{group}.{i}.document.id": doc_id, f"{group}.{i}.document.content": text,
                              f"{group}.{i}.document.score": score if group.endswith("input_documents")
                              else round(rng.uniform(0.5, 0.99) - 0.1 * i, 4)})
        return t.span("rerank", parent, start, rng.randint(20, 120) * MS, attrs)

    @staticmethod
    def _judge(llm: Span, end: int, faithful: float) -> None:
        event = llm.events.add(name="gen_ai.evaluation.result", time_unix_nano=end)
        event.attributes.extend([_kv("gen_ai.evaluation.name", "faithfulness"),
                                 _kv("gen_ai.evaluation.score.value", round(faithful, 3)),
                                 _kv("gen_ai.evaluation.score.label", "faithful" if faithful >= 0.5 else "unfaithful")])

    # -- one agent run ------------------------------------------------------------------------------
    def _llm(self, t: _Trace, parent: Span, start: int, agent: str, session: str,
             tool_calls: list[tuple[str, str]]) -> Span:
        rng = t.rng
        provider, model = rng.choice(MODELS)
        duration = rng.randint(300, 2500) * MS
        inp, out = rng.randint(400, 6000), rng.randint(20, 600)
        cached = rng.choice((0, 0, inp // 2))
        prompt = _text(rng, f"User asks: {rng.choice(TOPICS)}.")
        completion = _text(rng, "Assistant: let me check that for you.")
        if t.dialect == "openinference":
            attrs = {"openinference.span.kind": "LLM", "llm.model_name": model, "llm.provider": provider,
                     "llm.token_count.prompt": inp, "llm.token_count.completion": out,
                     "llm.token_count.total": inp + out, "llm.token_count.prompt_details.cache_read": cached,
                     "input.value": prompt, "output.value": completion, "session.id": session,
                     "agent.name": agent}
            for j, (call_id, tool) in enumerate(tool_calls):
                attrs[f"llm.output_messages.0.message.tool_calls.{j}.tool_call.id"] = call_id
                attrs[f"llm.output_messages.0.message.tool_calls.{j}.tool_call.function.name"] = tool
        else:
            attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
                     "gen_ai.request.model": model.split("-2024")[0], "gen_ai.response.model": model,
                     "gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out,
                     "gen_ai.usage.cache_read.input_tokens": cached or None,
                     "gen_ai.response.finish_reasons": ["tool_calls" if tool_calls else "stop"],
                     "gen_ai.request.temperature": 0.2, "gen_ai.agent.name": agent,
                     "gen_ai.conversation.id": session,
                     "gen_ai.input.messages": _messages("user", prompt),
                     "gen_ai.output.messages": _messages("assistant", completion, tool_calls)}
        name = f"chat {model}" if t.dialect == "genai" else "ChatCompletion"
        return t.span(name, parent, start, duration, attrs, kind=Span.SPAN_KIND_CLIENT)

    def _tool(self, t: _Trace, parent: Span, start: int, tool: str, call_id: str, fail: bool) -> Span:
        rng = t.rng
        duration = rng.randint(20, 1800) * MS
        args = f'{{"query": "{rng.choice(TOPICS)}", "limit": {rng.randint(1, 10)}}}'
        if t.dialect == "openinference":
            attrs = {"openinference.span.kind": "TOOL", "tool.name": tool, "tool_call.id": call_id,
                     "tool.parameters": args, "input.value": args,
                     "output.value": None if fail else _text(rng, f"{tool} result:", 200)}
        else:
            attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
                     "gen_ai.tool.call.id": call_id, "gen_ai.tool.type": "function",
                     "gen_ai.tool.call.arguments": args,
                     "gen_ai.tool.call.result": None if fail else _text(rng, f"{tool} result:", 200)}
        error = f"{tool} timed out after {duration // MS} ms" if fail else None
        if error:
            attrs["error.type"] = "timeout"
        name = f"execute_tool {tool}" if t.dialect == "genai" else tool
        return t.span(name, parent, start, duration, attrs, error=error)

    def trace(self, agent: str, session: str, user: str, start: int) -> list[Span]:
        """One agent run; returns its spans (root first)."""
        rng = self.rng
        dialect = "openinference" if agent == "research-agent" else "genai"
        t = _Trace(rng, rng.randbytes(16), f"{agent}-svc", dialect)
        root_attrs: dict[str, Any] = {"gen_ai.agent.name": agent, "gen_ai.conversation.id": session,
                                      "user.id": user}
        if dialect == "openinference":
            root_attrs = {"openinference.span.kind": "AGENT", "agent.name": agent, "session.id": session,
                          "user.id": user, "input.value": rng.choice(TOPICS)}
        else:
            root_attrs["gen_ai.operation.name"] = "invoke_agent"
        root = t.span(f"invoke_agent {agent}", None, start, 0, root_attrs, kind=Span.SPAN_KIND_SERVER)
        cursor = start + rng.randint(1, 5) * MS
        guard_block = rng.random() < 0.05
        guard = t.span("guardrail input_moderation", root, cursor, rng.randint(15, 80) * MS, {
            "openinference.span.kind": "GUARDRAIL", "guardrail.name": "input_moderation",
            "guardrail.triggered": guard_block or rng.random() < 0.1,
            "guardrail.action": "block" if guard_block else "allow", "guardrail.score": round(rng.random(), 3),
        })
        cursor = guard.end_time_unix_nano
        weak = self._weak[0] <= start < self._weak[1]
        if not guard_block and self.rag:
            query = rng.choice(TOPICS)
            retr, docs = self._retrieve(t, root, cursor, query, weak)
            cursor = retr.end_time_unix_nano
            if docs and rng.random() < 0.5:
                cursor = self._rerank(t, root, cursor, query, docs).end_time_unix_nano
        elif not guard_block:
            retr = t.span("retrieval knowledge_base", root, cursor, rng.randint(40, 400) * MS, {
                "gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "knowledge_base",
                "gen_ai.retrieval.query.text": rng.choice(TOPICS)})
            cursor = retr.end_time_unix_nano
        if not guard_block:
            for _ in range(rng.randint(1, 3)):
                planned = [(f"call_{rng.randbytes(6).hex()}", rng.choice(TOOLS))
                           for _ in range(rng.choice((1, 1, 2, 3)))]
                llm = self._llm(t, root, cursor, agent, session, planned)
                cursor = llm.end_time_unix_nano
                ends = []
                for i, (call_id, tool) in enumerate(planned):
                    call = self._tool(t, root, cursor + i * rng.randint(0, 3) * MS, tool, call_id,
                                      fail=rng.random() < 0.06)
                    ends.append(call.end_time_unix_nano)
                cursor = max(ends)
            final = self._llm(t, root, cursor, agent, session, [])
            cursor = final.end_time_unix_nano
            if self.rag:
                self._judge(final, cursor, rng.uniform(0.05, 0.6) if weak else rng.uniform(0.45, 1.0))
        root.end_time_unix_nano = cursor + rng.randint(1, 10) * MS
        return t.spans

    def sessions(self, count: int, spread_ns: int = 3600 * 10**9) -> Iterator[tuple[str, list[Span]]]:
        """``count`` sessions of 1–4 turns, spread over the last ``spread_ns``; yields (service, spans)."""
        rng = self.rng
        span_s = max(61, spread_ns // 10**9)
        self._weak = (self.now_ns - int(span_s * (1 - WEAK_STRETCH[0])) * 10**9,
                      self.now_ns - int(span_s * (1 - WEAK_STRETCH[1])) * 10**9)
        for _ in range(count):
            agent = rng.choice(AGENTS)
            session = f"sess-{rng.randbytes(5).hex()}"
            user = f"user-{rng.randint(1, 40):03d}"
            start = self.now_ns - rng.randint(60, span_s) * 10**9
            for _turn in range(rng.randint(1, 4)):
                spans = self.trace(agent, session, user, start)
                yield f"{agent}-svc", spans
                start = max(s.end_time_unix_nano for s in spans) + rng.randint(5, 90) * 10**9


def to_requests(traces: Iterator[tuple[str, list[Span]]], spans_per_request: int = 512,
                project: str | None = None) -> Iterator[ExportTraceServiceRequest]:
    """Pack (service, spans) into export requests of about ``spans_per_request`` spans."""
    request, size = ExportTraceServiceRequest(), 0
    for service, spans in traces:
        rs = request.resource_spans.add()
        rs.resource.attributes.extend([_kv("service.name", service), _kv("telemetry.sdk.language", "python"),
                                       _kv("deployment.environment", "demo")])
        if project:
            rs.resource.attributes.append(_kv("trajscope.project", project))
        ss = rs.scope_spans.add()
        ss.scope.name, ss.scope.version = "trajscope.demo", "1.0"
        ss.spans.extend(spans)
        size += len(spans)
        if size >= spans_per_request:
            yield request
            request, size = ExportTraceServiceRequest(), 0
    if size:
        yield request
