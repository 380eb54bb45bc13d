"""The vectorised batch summaries against the per-trace reference (``trace_summary``), on hand-made shapes
and on generated batches full of ties, clipping, shared ends, broken trees and odd labels."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.summaries import canonical_summaries
from trajscope.storage import batch_summary
from trajscope.storage.batch_summary import summarise_table
from trajscope.storage.schema import SPAN_SCHEMA
from trajscope.storage.trace_summary import FACT_COLUMNS, summarise_span_columns

_DEFAULTS: dict[str, Any] = {
    "project": "p", "parent_span_id": None, "service_name": "svc", "status_code": "UNSET", "category": "other",
    "agent_name": None, "session_id": None, "user_id": None, "input_tokens": None, "output_tokens": None,
    "cached_input_tokens": None, "reasoning_tokens": None, "cost_usd": None, "tool_name": None,
    "request_model": None, "response_model": None, "guardrail_hits": None,
}


def _table(spans: list[dict[str, Any]]) -> pa.Table:
    rows = [{**_DEFAULTS, "name": f"span {i}", **span} for i, span in enumerate(spans)]
    return pa.Table.from_arrays([pa.array([r[c] for r in rows], SPAN_SCHEMA.field(c).type) for c in FACT_COLUMNS],
                                names=list(FACT_COLUMNS))


def _reference(table: pa.Table) -> pa.Table:
    return summarise_span_columns({c: table.column(c).to_pylist() for c in FACT_COLUMNS}, 7)


def assert_matches(spans: list[dict[str, Any]]) -> pa.Table:
    table = _table(spans)
    got = summarise_table(table, 7)
    assert got.schema == _reference(table).schema
    assert canonical_summaries(got) == canonical_summaries(_reference(table))
    return got


def _id(n: int) -> str:
    return f"{n:016x}"


T1, T2 = "a" * 32, "b" * 32


def test_chain_ties_prefer_the_earliest_start_then_the_lowest_id_and_touching_ends_count():
    got = assert_matches([
        {"trace_id": T1, "span_id": _id(1), "start_time_unix_nano": 0, "end_time_unix_nano": 100,
         "category": "agent", "agent_name": "root-agent"},
        # Two children end together: the one that started earlier covers more waiting.
        {"trace_id": T1, "span_id": _id(3), "parent_span_id": _id(1), "start_time_unix_nano": 60,
         "end_time_unix_nano": 90, "category": "llm", "response_model": "m"},
        {"trace_id": T1, "span_id": _id(2), "parent_span_id": _id(1), "start_time_unix_nano": 50,
         "end_time_unix_nano": 90, "category": "llm", "request_model": "m"},
        # Ends exactly where the chosen one starts: still on the path.
        {"trace_id": T1, "span_id": _id(4), "parent_span_id": _id(1), "start_time_unix_nano": 10,
         "end_time_unix_nano": 50, "category": "tool", "tool_name": "search"},
        # Same interval as span 4, higher id: loses the tie.
        {"trace_id": T1, "span_id": _id(5), "parent_span_id": _id(1), "start_time_unix_nano": 10,
         "end_time_unix_nano": 50, "category": "tool", "tool_name": "fetch"},
        # Runs past its parent: clipped.
        {"trace_id": T1, "span_id": _id(6), "parent_span_id": _id(2), "start_time_unix_nano": 80,
         "end_time_unix_nano": 200, "category": "tool", "tool_name": "late"},
    ])
    critical = {(r["category"], r["tool_name"]): r["critical_ns"] for r in got.to_pylist()[0]["critical_breakdown"]}
    assert critical == {("agent", None): 10 + 10, ("llm", None): 30, ("tool", "search"): 40, ("tool", "late"): 10}


def test_broken_traces_go_to_the_reference_and_regular_ones_do_not():
    spans = [
        # regular
        {"trace_id": T1, "span_id": _id(1), "start_time_unix_nano": 0, "end_time_unix_nano": 10},
        {"trace_id": T1, "span_id": _id(2), "parent_span_id": _id(1), "start_time_unix_nano": 1,
         "end_time_unix_nano": 5, "category": "llm", "input_tokens": 3, "cost_usd": 0.5},
        # an orphan, a repeated span id and two roots in the other trace
        {"trace_id": T2, "span_id": _id(1), "start_time_unix_nano": 0, "end_time_unix_nano": 10},
        {"trace_id": T2, "span_id": _id(1), "start_time_unix_nano": 2, "end_time_unix_nano": 3, "name": "again"},
        {"trace_id": T2, "span_id": _id(7), "parent_span_id": _id(99), "start_time_unix_nano": 2,
         "end_time_unix_nano": 4},
        {"trace_id": T2, "span_id": _id(8), "start_time_unix_nano": 0, "end_time_unix_nano": 30},
    ]
    got = assert_matches(spans)
    by_id = {r["trace_id"]: r for r in got.to_pylist()}
    assert by_id[T2]["span_count"] == 3  # the repeat keeps its first occurrence
    assert by_id[T1]["cost_usd"] == 0.5 and by_id[T1]["input_tokens"] == 3


def test_cycles_and_traces_deeper_than_the_level_limit(monkeypatch):
    cycle = [{"trace_id": T1, "span_id": _id(1), "start_time_unix_nano": 0, "end_time_unix_nano": 10},
             {"trace_id": T1, "span_id": _id(2), "parent_span_id": _id(3), "start_time_unix_nano": 1,
              "end_time_unix_nano": 2},
             {"trace_id": T1, "span_id": _id(3), "parent_span_id": _id(2), "start_time_unix_nano": 2,
              "end_time_unix_nano": 3}]
    assert_matches(cycle)
    monkeypatch.setattr(batch_summary, "MAX_DEPTH", 3)
    chain = [{"trace_id": T2, "span_id": _id(i + 1), "parent_span_id": _id(i) if i else None,
              "start_time_unix_nano": i, "end_time_unix_nano": 100 - i, "agent_name": "deep" if i == 2 else None,
              "category": "llm" if i % 2 else "chain", "output_tokens": i}
             for i in range(8)]
    assert_matches(chain + cycle)


def test_agents_models_and_names_fall_back_as_the_reference_does():
    assert_matches([
        {"trace_id": T1, "span_id": _id(1), "start_time_unix_nano": 0, "end_time_unix_nano": 50,
         "agent_name": "", "service_name": "", "session_id": None},
        {"trace_id": T1, "span_id": _id(2), "parent_span_id": _id(1), "start_time_unix_nano": 5,
         "end_time_unix_nano": 20, "agent_name": "inner", "session_id": "s-late", "user_id": "u"},
        {"trace_id": T1, "span_id": _id(3), "parent_span_id": _id(2), "start_time_unix_nano": 6,
         "end_time_unix_nano": 19, "category": "llm", "response_model": "", "request_model": "req",
         "input_tokens": 5, "output_tokens": 1, "status_code": "ERROR"},
        # A wrapper and the client call inside it both report the tokens: the call counts once.
        {"trace_id": T1, "span_id": _id(4), "parent_span_id": _id(1), "start_time_unix_nano": 20,
         "end_time_unix_nano": 40, "category": "llm", "response_model": "m", "input_tokens": 9, "cost_usd": 1.0,
         "session_id": "s-early", "service_name": "named"},
        {"trace_id": T1, "span_id": _id(5), "parent_span_id": _id(4), "start_time_unix_nano": 21,
         "end_time_unix_nano": 39, "category": "llm", "response_model": "m", "input_tokens": 9, "cost_usd": 1.0,
         "guardrail_hits": 2},
    ])


def test_token_sums_are_exact_beyond_float_precision():
    big = 2**53 + 1  # a float64 sum would round it
    got = assert_matches([
        {"trace_id": T1, "span_id": _id(1), "start_time_unix_nano": 0, "end_time_unix_nano": 10},
        {"trace_id": T1, "span_id": _id(2), "parent_span_id": _id(1), "start_time_unix_nano": 1,
         "end_time_unix_nano": 5, "category": "llm", "input_tokens": big, "reasoning_tokens": big},
    ])
    assert got.column("input_tokens").to_pylist() == [big]


_POOL = [None, "", "a", "b"]


@st.composite
def _batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 25))
    spans = []
    for i in range(n):
        trace = draw(st.sampled_from([T1, T2, "c" * 32]))
        span_id = _id(draw(st.integers(1, n + 2)))
        parent = draw(st.one_of(st.none(), st.integers(0, n + 3).map(_id)))
        start = draw(st.integers(0, 30))
        spans.append({
            "trace_id": trace, "span_id": span_id, "parent_span_id": parent,
            "start_time_unix_nano": start, "end_time_unix_nano": start + draw(st.integers(-3, 30)),
            "name": draw(st.sampled_from(["x", "y", f"s{i}"])),
            "category": draw(st.sampled_from(["llm", "tool", "agent", "chain", "other"])),
            "status_code": draw(st.sampled_from(["OK", "ERROR", "UNSET"])),
            **{c: draw(st.sampled_from(_POOL)) for c in ("agent_name", "tool_name", "request_model",
                                                         "response_model", "service_name", "session_id",
                                                         "user_id")},
            **{c: draw(st.one_of(st.none(), st.integers(0, 50))) for c in ("input_tokens", "output_tokens",
                                                                            "cached_input_tokens",
                                                                            "reasoning_tokens",
                                                                            "guardrail_hits")},
            "cost_usd": draw(st.one_of(st.none(), st.floats(0, 2, allow_nan=False))),
        })
    # Make some generated batches proper trees, so the vectorised path is exercised, not only the fallback.
    if draw(st.booleans()):
        for i, span in enumerate(spans):
            span["trace_id"] = T1
            span["span_id"] = _id(i + 1)
            span["parent_span_id"] = _id(draw(st.integers(1, i))) if i else None
    return spans


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_batches())
def test_generated_batches_match_the_reference(spans):
    assert_matches(spans)
