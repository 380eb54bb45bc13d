"""One case per dialect and convention version: what a real span of it looks like, and what trajscope reads.

Adding a dialect or a renamed key is a row in ``collector.dialects`` (or ``analysis.guardrails.STYLES``) and a
case here; both normalisers — the per-span reference and the columnar hot path — must read it alike.
"""

from __future__ import annotations

import pytest

from tests.otlp_builders import make_request, make_span
from trajscope.collector import columnar_decode
from trajscope.collector.normalise import normalise

CASES = [
    ("genai-current-chat", "chat gpt-4o", {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06", "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30, "gen_ai.usage.cache_read.input_tokens": 100,
        "gen_ai.usage.cache_write.input_tokens": 20, "gen_ai.usage.reasoning.output_tokens": 10,
        "gen_ai.agent.name": "planner", "gen_ai.conversation.id": "c-1"},
     {"category": "llm", "provider": "openai", "request_model": "gpt-4o", "response_model": "gpt-4o-2024-08-06",
      "input_tokens": 120, "output_tokens": 30, "cached_input_tokens": 100, "cache_creation_input_tokens": 20,
      "reasoning_tokens": 10, "agent_name": "planner", "session_id": "c-1"}),
    ("genai-1.36-older-names", "chat gpt-4", {
        "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4", "gen_ai.usage.prompt_tokens": 12,
        "gen_ai.usage.completion_tokens": 3, "gen_ai.usage.cache_creation.input_tokens": 4},
     {"category": "llm", "provider": "openai", "input_tokens": 12, "output_tokens": 3,
      "cache_creation_input_tokens": 4}),
    ("genai-invoke-agent-client", "invoke_agent Researcher", {"gen_ai.operation.name": "invoke_agent"},
     {"category": "agent", "agent_name": "Researcher"}),
    ("genai-invoke-workflow", "invoke_workflow", {"gen_ai.operation.name": "invoke_workflow",
                                                  "gen_ai.workflow.name": "triage"},
     {"category": "agent", "agent_name": "triage"}),
    ("genai-create-agent", "create_agent Helper", {"gen_ai.operation.name": "create_agent"},
     {"category": "agent", "agent_name": "Helper"}),
    ("genai-execute-tool-inside-agent", "execute_tool search", {
        "gen_ai.operation.name": "execute_tool", "gen_ai.agent.name": "Researcher", "gen_ai.tool.call.id": "call_1"},
     {"category": "tool", "tool_name": "search", "agent_name": "Researcher", "tool_call_id": "call_1"}),
    ("genai-plan", "plan", {"gen_ai.operation.name": "plan", "gen_ai.agent.name": "Planner"},
     {"category": "plan", "agent_name": "Planner"}),
    ("genai-search-memory", "search_memory prefs", {"gen_ai.operation.name": "search_memory",
                                                    "gen_ai.memory.store.id": "prefs"}, {"category": "memory"}),
    ("genai-memory-by-store-only", "lookup", {"gen_ai.memory.store.id": "prefs"}, {"category": "memory"}),
    ("genai-retrieval", "retrieval kb", {"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "kb",
                                         "gen_ai.retrieval.query.text": "refunds"}, {"category": "retriever"}),
    ("genai-apply-guardrail", "apply_guardrail PII", {
        "gen_ai.operation.name": "apply_guardrail", "gen_ai.guardian.name": "PII",
        "gen_ai.security.decision.type": "deny"}, {"category": "guardrail"}),
    ("genai-span-name-only", "execute_tool lookup", {"gen_ai.agent.name": "A"},
     {"category": "tool", "tool_name": "lookup", "agent_name": "A"}),
    ("openinference-llm", "ChatCompletion", {
        "openinference.span.kind": "LLM", "llm.model_name": "claude-sonnet-4-5", "llm.provider": "anthropic",
        "llm.token_count.prompt": 50, "llm.token_count.completion": 5,
        "llm.token_count.prompt_details.cache_write": 7, "session.id": "s"},
     {"category": "llm", "provider": "anthropic", "request_model": "claude-sonnet-4-5", "input_tokens": 50,
      "output_tokens": 5, "cache_creation_input_tokens": 7, "session_id": "s"}),
    ("openinference-embedding", "OpenAIEmbedding", {
        "openinference.span.kind": "EMBEDDING", "embedding.model_name": "text-embedding-3-small",
        "embedding.embeddings.0.embedding.text": "why is the sky blue?"},
     {"category": "embedding", "request_model": "text-embedding-3-small",
      "response_model": "text-embedding-3-small"}),
    ("openinference-reranker", "rerank", {"openinference.span.kind": "RERANKER", "reranker.model_name": "r"},
     {"category": "reranker"}),
    ("openllmetry-chroma-query", "chroma.query", {"db.system": "chroma", "db.chroma.query.n_results": 3},
     {"category": "retriever"}),
    ("openllmetry-chroma-add", "chroma.add", {"db.system": "chroma", "db.chroma.add.ids_count": 3},
     {"category": "other"}),
    ("openinference-agent", "weather_agent", {"openinference.span.kind": "AGENT", "agent.name": "weather_agent"},
     {"category": "agent", "agent_name": "weather_agent"}),
    ("openllmetry-workflow", "support.workflow", {
        "traceloop.span.kind": "workflow", "traceloop.entity.name": "support",
        "traceloop.workflow.name": "support", "traceloop.association.properties.session_id": "tl-1"},
     {"category": "agent", "agent_name": "support", "session_id": "tl-1"}),
    ("openllmetry-task", "step.task", {"traceloop.span.kind": "task", "traceloop.entity.name": "step"},
     {"category": "chain"}),
    ("openllmetry-guardrail-run", "policy.guardrail", {
        "gen_ai.operation.name": "guardrail.run", "gen_ai.guardrail.name": "policy",
        "gen_ai.guardrail.status": "FAILED"}, {"category": "guardrail"}),
    ("openllmetry-guard", "no_ssn.guard", {"gen_ai.operation.name": "guard", "gen_ai.guardrail.name": "no_ssn"},
     {"category": "guardrail"}),
    ("openllmetry-legacy-llm", "openai.chat", {
        "llm.request.type": "chat", "gen_ai.system": "OpenAI", "gen_ai.request.model": "gpt-4",
        "llm.usage.prompt_tokens": 9, "llm.usage.completion_tokens": 2},
     {"category": "llm", "provider": "OpenAI", "input_tokens": 9, "output_tokens": 2}),
    ("strands-event-loop-cycle", "execute_event_loop_cycle", {"gen_ai.operation.name": "execute_event_loop_cycle"},
     {"category": "chain"}),
    ("unknown-dialect", "acme.step", {"acme.step.kind": "think", "acme.model": "m"}, {"category": "other"}),
]


@pytest.mark.parametrize(("name", "attrs", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_dialect_case(name, attrs, expected):
    reference = normalise(name, attrs)._asdict()
    assert {k: reference[k] for k in expected} == expected
    decoded = columnar_decode.decode_request(make_request([make_span(name, attrs=attrs)]).SerializeToString(),
                                             strict=True)
    row = decoded.table.to_pylist()[0]
    assert {k: row[k] for k in reference} == reference


def test_the_dialects_page_lists_every_key_the_tables_read():
    from pathlib import Path

    from trajscope.analysis import evaluations, guardrails, messages
    from trajscope.collector import dialects

    keys = {key for key, _ in dialects.CATEGORY_BY_KIND} | {key for key, _ in dialects.CATEGORY_BY_PRESENCE}
    for table in (dialects.STRING_FIELDS, dialects.INT_FIELDS, dialects.FLOAT_FIELDS, dialects.MODALITY_TOKENS):
        keys |= {key for candidates in table.values() for key in candidates}
    keys |= set(dialects.PROJECT_RESOURCE_KEYS) | {"traceloop.entity.name"}
    keys |= {key for style in guardrails.STYLES for key in style.keys} | set(guardrails.EVENT_NAMES)
    keys |= set(messages.ATTRIBUTE_KEYS.values()) | set(messages.MESSAGE_EVENTS) | {messages.DETAILS_EVENT}
    keys |= set(evaluations.FIELDS.values()) | {evaluations.EVENT_NAME}
    values = {value for _, mapping in dialects.CATEGORY_BY_KIND for value in mapping}
    page = (Path(__file__).resolve().parents[2] / "docs" / "dialects.md").read_text()
    missing = sorted(k for k in keys if f"`{k}`" not in page)
    assert not missing, f"docs/dialects.md does not list {missing}"
    unlisted_values = sorted(v for v in values if v not in page.lower())
    assert not unlisted_values, unlisted_values


@pytest.mark.parametrize("write_key", ["gen_ai.usage.cache_write.input_tokens",
                                       "gen_ai.usage.cache_creation.input_tokens",
                                       "llm.token_count.prompt_details.cache_write"])
def test_cache_writes_are_priced_as_cache_writes_under_every_name(write_key):
    from trajscope.analysis.pricing import call_cost
    from trajscope.collector import costing

    start = 1_760_000_000_000_000_000  # 2025-10: the built-in table prices this model then
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "claude-sonnet-4-5",
             "gen_ai.usage.input_tokens": 3000, "gen_ai.usage.output_tokens": 100,
             "gen_ai.usage.cache_read.input_tokens": 1000, write_key: 1500}
    span = make_span("chat claude-sonnet-4-5", attrs=attrs, start=start, end=start + 1)
    row = columnar_decode.decode_request(make_request([span]).SerializeToString(), strict=True).table.to_pylist()[0]
    price = costing.prices().price_at("claude-sonnet-4-5", start)
    assert price.cache_write is not None and price.cache_write != price.input
    assert row["cache_creation_input_tokens"] == 1500 and row["cost_source"] == "computed"
    assert row["cost_usd"] == pytest.approx(call_cost(price, 3000, 100, 1000, 1500))
    assert row["cost_usd"] != pytest.approx(call_cost(price, 3000, 100, 1000, 0))
