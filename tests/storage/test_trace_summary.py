from trajscope.analysis.tokens import token_counting_spans
from trajscope.storage.schema import SUMMARY_SCHEMA
from trajscope.storage.trace_summary import SpanFacts, pick_root, summarise_trace


def facts(span_id, parent=None, start=0, end=10, inp=None, out=None, status="UNSET", category="other", **kw):
    base = dict(project="p", trace_id="t" * 32, span_id=span_id, parent_span_id=parent, name=f"n{span_id}",
                service_name=None, start_time_unix_nano=start, end_time_unix_nano=end, status_code=status,
                category=category, agent_name=None, session_id=None, user_id=None, input_tokens=inp,
                output_tokens=out, cached_input_tokens=None, reasoning_tokens=None, cost_usd=None, tool_name=None,
                request_model=None, response_model=None)
    base.update(kw)
    return SpanFacts(**base)


def counted(spans):
    return token_counting_spans((s.span_id, s.parent_span_id, s.input_tokens is not None) for s in spans)


def summary(spans):
    return dict(zip(SUMMARY_SCHEMA.names, summarise_trace(spans, 0), strict=True))


def test_tokens_counted_once_when_wrapper_and_client_both_report():
    # langchain LLM span (100/10) wraps the openai client span reporting the same call (100/10)
    spans = [facts("root"), facts("lc", "root", inp=100, out=10), facts("oa", "lc", inp=100, out=10),
             facts("other", "root", inp=5, out=1)]
    assert counted(spans) == {"oa", "other"}
    row = summary(spans)
    assert (row["input_tokens"], row["output_tokens"]) == (105, 11)


def test_tokens_shadowing_reaches_through_intermediate_spans():
    spans = [facts("agent", inp=999), facts("http", "agent"), facts("llm", "http", inp=10)]
    assert counted(spans) == {"llm"}


def test_tokens_cycle_in_bad_data_terminates():
    spans = [facts("a", "b", inp=1), facts("b", "a", inp=2)]
    assert counted(spans) <= {"a", "b"}


def test_root_prefers_real_root_then_longest():
    spans = [facts("short", start=0, end=5), facts("long", start=1, end=50), facts("kid", "long")]
    root, real = pick_root(spans)
    assert (root.span_id, real) == ("long", True)


def test_root_missing_falls_back_to_earliest_span():
    root, real = pick_root([facts("b", "x", start=5), facts("a", "x", start=3)])
    assert (root.span_id, real) == ("a", False)


def test_summary_counts_errors_llm_tool_and_unknown_cost_is_null():
    spans = [facts("r", start=0, end=100, agent_name="planner"),
             facts("l", "r", category="llm", status="ERROR", start=10, end=120),
             facts("t", "r", category="tool")]
    row = summary(spans)
    assert row["agent_name"] == "planner"
    assert (row["start_time_unix_nano"], row["end_time_unix_nano"], row["duration_ns"]) == (0, 120, 120)
    assert (row["span_count"], row["error_count"], row["llm_calls"], row["tool_calls"]) == (3, 1, 1, 1)
    assert row["cost_usd"] is None


def test_labels_come_from_the_root_else_the_earliest_span_naming_one():
    # The root names no session and no user; of the two children naming them, the earlier start wins
    # (ties: span id), whatever the order the spans came in.
    spans = [facts("r", start=5, end=100, service_name="svc", agent_name="root-agent"),
             facts("b", "r", start=20, session_id="late", user_id="u-b", agent_name="other"),
             facts("a", "r", start=10, session_id="early"),
             facts("c", "r", start=20, user_id="u-c")]
    for order in (spans, spans[::-1]):
        row = summary(order)
        assert (row["service_name"], row["agent_name"], row["session_id"], row["user_id"]) == (
            "svc", "root-agent", "early", "u-b")
    row = summary([facts("x", "gone", start=3, agent_name=None), facts("y", "gone", start=1, agent_name="a")])
    assert row["agent_name"] == "a" and row["complete"] is False


def test_guardrail_hits_and_usage_totals_are_summed():
    spans = [facts("r", start=0, end=100, guardrail_hits=2),
             facts("l1", "r", category="llm", inp=10, out=5, response_model="m", cost_usd=0.5),
             facts("l2", "r", category="llm", inp=3, out=1, response_model="m", guardrail_hits=1)]
    row = summary(spans)
    assert (row["guardrail_hits"], row["llm_calls"], row["input_tokens"], row["output_tokens"]) == (3, 2, 13, 6)
    assert row["cost_usd"] == 0.5
