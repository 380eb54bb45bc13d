import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trajscope.collector.normalise import NORMALISED_FIELDS, category_of, normalise
from trajscope.storage.schema import SPAN_COLUMN_NAMES


def test_normalise_fields_match_the_stored_column_order():
    start = SPAN_COLUMN_NAMES.index(NORMALISED_FIELDS[0])
    assert SPAN_COLUMN_NAMES[start:start + len(NORMALISED_FIELDS)] == NORMALISED_FIELDS


def test_normalise_genai_current_chat_span():
    n = normalise("chat gpt-4o", {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300,
        "gen_ai.usage.cache_read.input_tokens": 1000, "gen_ai.usage.reasoning.output_tokens": 100,
        "gen_ai.conversation.id": "conv-1", "gen_ai.agent.name": "planner",
    })
    assert n.category == "llm"
    assert (n.provider, n.request_model, n.response_model) == ("openai", "gpt-4o", "gpt-4o-2024-08-06")
    # cached and reasoning are sub-counts: the totals are not increased
    assert (n.input_tokens, n.output_tokens, n.cached_input_tokens, n.reasoning_tokens) == (1200, 300, 1000, 100)
    assert (n.session_id, n.agent_name) == ("conv-1", "planner")


def test_normalise_genai_older_names():
    n = normalise("chat gpt-3.5-turbo", {
        "gen_ai.system": "openai", "gen_ai.request.model": "gpt-3.5-turbo",
        "gen_ai.usage.prompt_tokens": "42", "gen_ai.usage.completion_tokens": 7.0,
    })
    assert n.category == "llm"  # by presence of a model: no operation name was sent
    assert n.provider == "openai"
    assert (n.input_tokens, n.output_tokens) == (42, 7)


def test_normalise_genai_tool_from_span_name_when_attribute_missing():
    n = normalise("execute_tool get_weather", {"gen_ai.operation.name": "execute_tool",
                                               "gen_ai.tool.call.id": "call_1"})
    assert (n.category, n.tool_name, n.tool_call_id) == ("tool", "get_weather", "call_1")


def test_normalise_genai_agent():
    n = normalise("invoke_agent Researcher", {"gen_ai.operation.name": "invoke_agent"})
    assert (n.category, n.agent_name) == ("agent", "Researcher")


@pytest.mark.parametrize(("kind", "category"), [
    ("LLM", "llm"), ("EMBEDDING", "embedding"), ("CHAIN", "chain"), ("RETRIEVER", "retriever"),
    ("RERANKER", "reranker"), ("TOOL", "tool"), ("AGENT", "agent"), ("GUARDRAIL", "guardrail"),
    ("EVALUATOR", "evaluator"), ("PROMPT", "chain"), ("SOMETHING_NEW", "other"),
])
def test_normalise_openinference_span_kinds(kind, category):
    assert category_of({"openinference.span.kind": kind}) == category


def test_normalise_openinference_llm_span():
    n = normalise("ChatCompletion", {
        "openinference.span.kind": "LLM", "llm.model_name": "claude-sonnet-4-5", "llm.provider": "anthropic",
        "llm.token_count.prompt": 500, "llm.token_count.completion": 50, "llm.token_count.total": 550,
        "llm.token_count.prompt_details.cache_read": 200,
        "llm.token_count.completion_details.reasoning": 10, "llm.cost.total": 0.0123,
        "session.id": "s-9", "user.id": "u-1",
    })
    assert n.category == "llm"
    assert (n.request_model, n.response_model, n.provider) == ("claude-sonnet-4-5",) * 2 + ("anthropic",)
    assert (n.input_tokens, n.output_tokens, n.cached_input_tokens, n.reasoning_tokens) == (500, 50, 200, 10)
    assert n.cost_usd == pytest.approx(0.0123)
    assert (n.session_id, n.user_id) == ("s-9", "u-1")


def test_normalise_openinference_tool_span():
    n = normalise("lookup", {"openinference.span.kind": "TOOL", "tool.name": "lookup", "tool_call.id": "t-1"})
    assert (n.category, n.tool_name, n.tool_call_id) == ("tool", "lookup", "t-1")


@pytest.mark.parametrize(("kind", "category", "field"), [
    ("workflow", "agent", "agent_name"), ("task", "chain", None), ("agent", "agent", "agent_name"),
    ("tool", "tool", "tool_name"),
])
def test_normalise_openllmetry_span_kinds(kind, category, field):
    n = normalise("x", {"traceloop.span.kind": kind, "traceloop.entity.name": "entity-1",
                        "traceloop.association.properties.session_id": "sess-7"})
    assert n.category == category
    assert n.session_id == "sess-7"
    if field:
        assert getattr(n, field) == "entity-1"


def test_normalise_openllmetry_legacy_llm_attributes():
    n = normalise("openai.chat", {"llm.request.type": "chat", "gen_ai.system": "OpenAI",
                                  "gen_ai.request.model": "gpt-4", "gen_ai.usage.prompt_tokens": 10,
                                  "gen_ai.usage.completion_tokens": 5, "llm.usage.total_tokens": 15})
    assert (n.category, n.operation, n.input_tokens, n.output_tokens) == ("llm", "chat", 10, 5)


def test_normalise_explicit_kind_beats_presence():
    # An agent span that also names the model it was configured with is still an agent.
    assert category_of({"openinference.span.kind": "AGENT", "llm.model_name": "gpt-4o"}) == "agent"


def test_normalise_guardrail_by_convention():
    assert category_of({"guardrail.name": "pii", "guardrail.triggered": True}) == "guardrail"


@pytest.mark.parametrize(("operation", "category"), [
    ("invoke_agent", "agent"), ("create_agent", "agent"), ("invoke_workflow", "agent"), ("execute_tool", "tool"),
    ("plan", "plan"), ("search_memory", "memory"), ("upsert_memory", "memory"), ("retrieval", "retriever"),
    ("apply_guardrail", "guardrail"), ("guardrail.run", "guardrail"), ("guard", "guardrail"),
    ("embeddings", "embedding"), ("generate_content", "llm"),
])
def test_current_genai_operations(operation, category):
    assert category_of({"gen_ai.operation.name": operation}) == category


def test_category_by_operation_first_agent_name_alone_is_not_an_agent_step():
    # Current instrumentations put gen_ai.agent.name on the tool and model spans inside an agent.
    tool = normalise("execute_tool search", {"gen_ai.operation.name": "execute_tool", "gen_ai.agent.name": "A"})
    assert (tool.category, tool.tool_name, tool.agent_name) == ("tool", "search", "A")
    assert category_of({"gen_ai.agent.name": "A"}) == "other"
    assert category_of({"gen_ai.agent.name": "A", "gen_ai.request.model": "m"}) == "llm"
    # The operation wins over another dialect's kind on the same span.
    assert category_of({"gen_ai.operation.name": "execute_tool", "openinference.span.kind": "AGENT"}) == "tool"


@pytest.mark.parametrize(("name", "category"), [
    ("invoke_agent Planner", "agent"), ("invoke_workflow support", "agent"), ("execute_tool search", "tool"),
    ("apply_guardrail PII", "guardrail"), ("chat gpt-4o", "other"),
])
def test_genai_span_name_decides_without_a_kind(name, category):
    assert category_of({"x": 1}, name) == category
    assert category_of({"openinference.span.kind": "CHAIN"}, name) == "chain"


def test_workflow_name_is_the_agent_name_of_an_invoke_workflow_span():
    n = normalise("invoke_workflow", {"gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": "triage"})
    assert (n.category, n.agent_name) == ("agent", "triage")


def test_cache_write_tokens_newest_name_first():
    n = normalise("chat", {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 300,
                           "gen_ai.usage.cache_write.input_tokens": 200,
                           "gen_ai.usage.cache_creation.input_tokens": 150})
    assert (n.input_tokens, n.cache_creation_input_tokens) == (300, 200)
    old = normalise("chat", {"gen_ai.usage.input_tokens": 300, "gen_ai.usage.cache_creation.input_tokens": 150})
    assert old.cache_creation_input_tokens == 150


def test_normalise_plain_span_is_other_with_nulls():
    n = normalise("GET /health", {"http.method": "GET"})
    assert n.category == "other"
    assert all(getattr(n, f) is None for f in n._fields if f != "category")


def test_normalise_anthropic_style_uncached_input_is_made_whole():
    # Anthropic reports input_tokens without the cache reads; the total must include them once.
    n = normalise("chat", {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 10,
                           "gen_ai.usage.cache_read.input_tokens": 1000,
                           "gen_ai.usage.cache_creation.input_tokens": 200})
    assert n.input_tokens == 1210
    assert n.cached_input_tokens == 1000


def test_normalise_error_type_from_exception_event():
    n = normalise("tool", {}, [{"name": "exception", "attributes": {"exception.type": "TimeoutError"}}])
    assert n.error_type == "TimeoutError"


def test_normalise_ignores_unusable_values():
    n = normalise("x", {"gen_ai.usage.input_tokens": "many", "gen_ai.request.model": ["a", "b"],
                        "gen_ai.usage.output_tokens": True})
    assert (n.input_tokens, n.request_model, n.output_tokens) == (None, None, None)


@pytest.mark.parametrize("narrow_below", [1 << 24, 0])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from([0, 1, 2, 7, 100, 254, 255]), min_size=3, max_size=3), max_size=30),
       st.lists(st.integers(0, 4), min_size=1, max_size=8))
def test_winners_pick_the_lowest_rank_then_the_first_attribute(monkeypatch, narrow_below, rows, per_span):
    # 32-bit codes (the usual case) and 64-bit ones (requests of 16M+ attributes) must agree with a plain loop.
    from trajscope.collector import normalise_columns
    monkeypatch.setattr(normalise_columns, "_NARROW_CODES_BELOW", narrow_below)
    total = sum(per_span)
    rows = (rows * (total // max(len(rows), 1) + 1))[:total] if rows else [[255, 255, 255]] * total
    ranks = np.array(rows, np.uint8).reshape(total, 3)
    starts = np.concatenate(([0], np.cumsum(per_span))).astype(np.int64)
    got = normalise_columns._winners(ranks, starts, len(per_span))
    for span in range(len(per_span)):
        for col in range(3):
            candidates = [(int(ranks[i, col]), i) for i in range(starts[span], starts[span + 1])
                          if ranks[i, col] < normalise_columns._NONE]
            assert got[span, col] == (min(candidates)[1] if candidates else -1)
