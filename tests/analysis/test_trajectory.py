"""Trajectory shapes. Each case opens with a drawing of the spans (one column ≈ one time unit)."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from trajscope.analysis.span_tree import VIRTUAL_ROOT_ID
from trajscope.analysis.trajectory import build_trajectory


def span(span_id, parent, start, end, *, category="other", name=None, status="UNSET", attrs=None, events=None,
         **fields):
    row = {"span_id": span_id, "parent_span_id": parent, "name": name or span_id, "category": category,
           "start_time_unix_nano": start, "end_time_unix_nano": end, "duration_ns": max(end - start, 0),
           "status_code": status, "status_message": None, "error_type": None, "service_name": "svc",
           "agent_name": None, "request_model": None, "response_model": None, "tool_name": None,
           "tool_call_id": None, "input_tokens": None, "output_tokens": None, "cost_usd": None,
           "attributes": attrs or {}, "events": events or []}
    row.update(fields)
    return row


def ids(result):
    return [s["span_id"] for s in result["steps"]]


def kinds(result):
    return sorted((a["kind"], a["span_id"]) for a in result["anomalies"])


def test_trajectory_depth_first_siblings_by_start_then_end_then_id():
    # root |0===============20|
    # b        |4=====10|
    # b1         |5=7|
    # a      |2==4|
    # c        |4===8|           same start as b, ends earlier → before b
    # d        |4===8|           same start and end as c → by span id
    rows = [span("root", None, 0, 20), span("b", "root", 4, 10), span("b1", "b", 5, 7), span("a", "root", 2, 4),
            span("d", "root", 4, 8), span("c", "root", 4, 8)]
    result = build_trajectory("t", rows)
    assert ids(result) == ["root", "a", "c", "d", "b", "b1"]
    assert [s["depth"] for s in result["steps"]] == [0, 1, 1, 1, 1, 2]
    assert [s["index"] for s in result["steps"]] == list(range(6))
    assert result["complete"] is True and result["anomalies"] == []


def test_trajectory_parallel_tool_calls_share_a_group():
    # root |0=================20|
    # llm    |1==3|
    # t1         |3=====9|
    # t2          |4==6|             t1, t2 overlap → one group
    # t3                 |9==12|     starts when t1 ends: back to back, not parallel
    rows = [span("root", None, 0, 20), span("llm", "root", 1, 3, category="llm"),
            span("t1", "root", 3, 9, category="tool"), span("t2", "root", 4, 6, category="tool"),
            span("t3", "root", 9, 12, category="tool")]
    steps = {s["span_id"]: s for s in build_trajectory("t", rows)["steps"]}
    assert steps["t1"]["parallel_group"] is not None
    assert steps["t1"]["parallel_group"] == steps["t2"]["parallel_group"]
    assert steps["t3"]["parallel_group"] is None and steps["llm"]["parallel_group"] is None


def test_trajectory_tool_linked_to_requesting_llm_by_call_id_then_by_name():
    # root |0======================30|
    # llm1   |1==4|       asks for call_a (search) and weather (by name only, OpenInference style)
    # search     |4==8|   tool_call_id call_a
    # weather    |4===9|  no call id
    # llm2              |10=12|  asks for search again
    # search2                 |12=15|
    out1 = json.dumps([{"role": "assistant", "parts": [{"type": "tool_call", "id": "call_a", "name": "search"},
                                                       {"type": "tool_call", "name": "weather"}]}])
    rows = [span("root", None, 0, 30),
            span("llm1", "root", 1, 4, category="llm",
                 attrs={"gen_ai.output.messages": out1,
                        # Ignored: the GenAI attribute wins over flattened OpenInference messages.
                        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "search2"}),
            span("search", "root", 4, 8, category="tool", tool_name="search", tool_call_id="call_a"),
            span("weather", "root", 4, 9, category="tool", tool_name="weather"),
            span("llm2", "root", 10, 12, category="llm",
                 attrs={"gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.tool_calls.0.name": "search"}),
            span("search2", "root", 12, 15, category="tool", tool_name="search")]
    steps = {s["span_id"]: s for s in build_trajectory("t", rows)["steps"]}
    assert steps["search"]["requested_by"] == "llm1"
    assert steps["weather"]["requested_by"] == "llm1"
    assert steps["search2"]["requested_by"] == "llm2"


def test_trajectory_orphan_is_shown_under_the_root():
    # root |0==========10|
    # orph     |3===7|      parent "gone" never arrived
    result = build_trajectory("t", [span("root", None, 0, 10), span("orph", "gone", 3, 7)])
    assert ids(result) == ["root", "orph"]
    assert result["steps"][1]["depth"] == 1
    assert kinds(result) == [("orphan", "orph")]
    assert result["complete"] is False


def test_trajectory_missing_root_synthesises_a_virtual_root():
    # (virtual) |1=========9|
    # a         |1===4|         parent "p" missing
    # b               |6===9|   parent "p" missing
    result = build_trajectory("t", [span("b", "p", 6, 9), span("a", "p", 1, 4)])
    assert ids(result) == [VIRTUAL_ROOT_ID, "a", "b"]
    assert result["steps"][0]["virtual"] is True and result["complete"] is False
    assert ("missing_root", VIRTUAL_ROOT_ID) in kinds(result)
    assert result["totals"]["span_count"] == 2


def test_trajectory_clock_skew_error_guardrail_block_and_loop():
    # root  |0=====================20|
    # early |-2==3|                         starts before its parent → clock_skew
    # guard     |3=4|                       guardrail blocked
    # s1          |5=6| s2 |7=8| s3 |9=10|  same tool, same arguments, 3 times → loop
    # bad                          |11=13|  status ERROR
    args = {"gen_ai.tool.call.arguments": '{"q": "x"}'}
    rows = [span("root", None, 0, 20), span("early", "root", -2, 3),
            span("guard", "root", 3, 4, category="guardrail",
                 attrs={"guardrail.name": "pii", "guardrail.triggered": True, "guardrail.action": "block"}),
            span("s1", "root", 5, 6, category="tool", tool_name="search", attrs=args),
            span("s2", "root", 7, 8, category="tool", tool_name="search", attrs=args),
            span("s3", "root", 9, 10, category="tool", tool_name="search", attrs=args),
            span("bad", "root", 11, 13, status="ERROR", status_message="boom")]
    result = build_trajectory("t", rows)
    assert kinds(result) == [("clock_skew", "early"), ("error", "bad"), ("guardrail_block", "guard"),
                             ("loop", "s3")]
    guard = next(s for s in result["steps"] if s["span_id"] == "guard")["guardrail"]
    assert guard == {"name": "pii", "triggered": True, "action": "block"}
    assert result["totals"]["guardrail_hits"] == 1 and result["totals"]["error_count"] == 1


def test_trajectory_guardrail_from_span_event():
    ev = [{"name": "guardrail", "attributes": {"guardrail.name": "toxicity", "guardrail.action": "redact",
                                               "guardrail.triggered": True}}]
    steps = build_trajectory("t", [span("root", None, 0, 5, events=ev)])["steps"]
    assert steps[0]["guardrail"] == {"name": "toxicity", "triggered": True, "action": "redact"}


def test_trajectory_previews_from_each_dialect():
    long_prompt = "q" * 500
    msgs = json.dumps([{"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
                       {"role": "user", "parts": [{"type": "text", "content": long_prompt}]}])
    rows = [span("root", None, 0, 9, attrs={"input.value": "hello", "output.value": "bye"}),
            span("genai", "root", 1, 2, category="llm", attrs={"gen_ai.input.messages": msgs}),
            span("flat", "root", 2, 3, attrs={"gen_ai.prompt.0.content": "sys", "gen_ai.prompt.1.content": "user?",
                                              "gen_ai.completion.0.content": "answer"}),
            span("events", "root", 3, 4, events=[{"name": "gen_ai.user.message", "attributes": {"content": "hi"}},
                                                 {"name": "gen_ai.choice", "attributes": {"message": "yo"}}])]
    steps = {s["span_id"]: s for s in build_trajectory("t", rows)["steps"]}
    assert (steps["root"]["input_preview"], steps["root"]["output_preview"]) == ("hello", "bye")
    assert steps["genai"]["input_preview"] == "q" * 200
    assert (steps["flat"]["input_preview"], steps["flat"]["output_preview"]) == ("user?", "answer")
    assert (steps["events"]["input_preview"], steps["events"]["output_preview"]) == ("hi", "yo")


def test_trajectory_totals_count_each_model_call_once():
    # root |0==========10|
    # lc     |1======8|          LangChain wrapper reports 100/10
    # oa       |2==6|            the OpenAI call inside reports the same 100/10
    rows = [span("root", None, 0, 10),
            span("lc", "root", 1, 8, category="llm", input_tokens=100, output_tokens=10, cost_usd=0.5),
            span("oa", "lc", 2, 6, category="llm", input_tokens=100, output_tokens=10)]
    totals = build_trajectory("t", rows)["totals"]
    assert (totals["input_tokens"], totals["output_tokens"], totals["llm_calls"]) == (100, 10, 2)


def test_trajectory_of_50000_spans_with_thousands_of_roots_answers():
    rng = random.Random(3)
    rows = [span(f"r{i}", None, i, i + 5) for i in range(3000)]
    rows += [span(f"s{i}", f"r{rng.randrange(3000)}" if i % 7 else "missing", i, i + 3) for i in range(47_000)]
    result = build_trajectory("t", rows)
    assert len(result["steps"]) == 50_000
    assert sum(1 for a in result["anomalies"] if a["kind"] == "orphan") == len(range(0, 47_000, 7))


@st.composite
def shuffled_trace(draw):
    n = draw(st.integers(1, 30))
    rows = [span("s0", None, 0, 100)]
    for i in range(1, n):
        start = draw(st.integers(-10, 110))
        parent = draw(st.sampled_from([f"s{j}" for j in range(n)] + ["missing", None]))
        rows.append(span(f"s{i}", parent, start, start + draw(st.integers(0, 50)),
                         category=draw(st.sampled_from(["llm", "tool", "other"]))))
    return rows, draw(st.randoms())


@settings(max_examples=200, deadline=None)
@given(shuffled_trace())
def test_property_every_span_once_and_order_independent_of_arrival(case):
    rows, rnd = case
    expected = build_trajectory("t", rows)
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    got = build_trajectory("t", shuffled + shuffled[: len(shuffled) // 3])  # late duplicates too
    assert got == expected
    real = [s["span_id"] for s in got["steps"] if not s.get("virtual")]
    assert sorted(real) == sorted(r["span_id"] for r in rows)


_texts = st.one_of(st.none(), st.text(max_size=30), st.just('[{"role": "user", "content": "hi"}]'))


@st.composite
def rich_trace(draw):
    """Random traces whose spans carry what the step fields read: content, tool calls, guardrails, tokens."""
    rows, _ = draw(shuffled_trace())
    for row in rows:
        attrs = {}
        for key in ("input.value", "gen_ai.output.messages", "gen_ai.tool.call.arguments", "guardrail.name",
                    "guardrail.action", "llm.output_messages.0.message.tool_calls.0.tool_call.function.name",
                    "gen_ai.prompt.0.content"):
            value = draw(_texts)
            if value is not None:
                attrs[key] = value
        row["attributes"] = attrs
        row["tool_name"] = draw(st.sampled_from([None, "search", "calc"]))
        row["tool_call_id"] = draw(st.sampled_from([None, "c1", "c2"]))
        row["input_tokens"] = draw(st.one_of(st.none(), st.integers(0, 100)))
        row["status_code"] = draw(st.sampled_from(["UNSET", "OK", "ERROR"]))
        if draw(st.booleans()):
            row["events"] = [{"name": "gen_ai.choice", "attributes": {"content": draw(st.text(max_size=10))}}]
    return rows


@settings(max_examples=200, deadline=None)
@given(rich_trace())
def test_column_builder_answers_as_the_row_builder_did(rows):
    from tests.analysis.reference_trajectory import build_trajectory as reference

    assert build_trajectory("t", rows) == reference("t", rows)


@settings(max_examples=50, deadline=None)
@given(rich_trace())
def test_table_layout_carries_the_same_steps(rows):
    objects = build_trajectory("t", rows)
    table = build_trajectory("t", rows, layout="table")
    assert table["steps"]["fields"][-1] == "virtual"
    rebuilt = [{k: v for k, v in zip(table["steps"]["fields"], row, strict=True) if k != "virtual" or v}
               for row in table["steps"]["rows"]]
    assert rebuilt == objects["steps"]
    assert {k: v for k, v in table.items() if k != "steps"} == {k: v for k, v in objects.items() if k != "steps"}


def test_retriever_and_reranker_steps_carry_query_and_ranked_documents():
    # root |0=========10|
    # ret    |1==4|
    # rerank      |4=6|
    from trajscope.analysis.retrieval import retrieval, stored

    def docs(prefix, items):
        return {f"{prefix}.{i}.document.{k}": v for i, (doc_id, score) in enumerate(items)
                for k, v in (("id", doc_id), ("content", f"text of {doc_id}"), ("score", score))}

    ret_attrs = {"input.value": "why is the sky blue?", **docs("retrieval.documents", [("a", 0.9), ("b", 0.7)])}
    rr_attrs = {"reranker.query": "why is the sky blue?", **docs("reranker.input_documents", [("a", 0.9), ("b", 0.7)]),
                **docs("reranker.output_documents", [("b", 0.95), ("a", 0.2)])}
    rows = [span("root", None, 0, 10),
            span("ret", "root", 1, 4, category="retriever", attrs=ret_attrs,
                 retrieval=stored(retrieval(ret_attrs, None, "retriever"))),
            span("rerank", "root", 4, 6, category="reranker", attrs=rr_attrs,
                 retrieval=stored(retrieval(rr_attrs, None, "reranker")))]
    steps = {s["span_id"]: s for s in build_trajectory("t", rows)["steps"]}
    assert steps["root"]["query"] is None and steps["root"]["documents"] is None
    assert steps["ret"]["query"] == "why is the sky blue?"
    assert steps["ret"]["documents"] == [
        {"id": "a", "rank": 1, "score": 0.9, "preview": "text of a"},
        {"id": "b", "rank": 2, "score": 0.7, "preview": "text of b"}]
    assert [(d["id"], d["rank"], d["previous_rank"]) for d in steps["rerank"]["documents"]] == [("b", 1, 2),
                                                                                                   ("a", 2, 1)]
    table = build_trajectory("t", rows, layout="table")["steps"]
    at = table["fields"].index("documents")
    assert [r[at] for r in table["rows"]][1] == steps["ret"]["documents"]
