"""The analyst views, against hand-computed expectations on a small known store."""

import pytest

from tests.otlp_builders import kvs, make_request, make_span
from trajscope.collector.otlp_decode import decode_request
from trajscope.storage.duckdb_store import DuckDBStore
from trajscope.storage.views import ANALYST_RELATIONS

MS = 1_000_000


def _turn(session: str, input_tokens: int, *, guard: bool = False) -> list:
    root = make_span("invoke_agent planner", start=0, end=100 * MS, attrs={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner", "session.id": session,
        "user.id": "u1"})
    spans = [root,
             make_span("chat gpt-4o", trace_id=root.trace_id, parent=root, start=1 * MS, end=41 * MS, attrs={
                 "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                 "gen_ai.usage.input_tokens": input_tokens, "gen_ai.usage.output_tokens": 20}),
             make_span("execute_tool search", trace_id=root.trace_id, parent=root, start=41 * MS, end=71 * MS,
                       attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
                              "gen_ai.tool.call.arguments": '{"q": "x"}'})]
    if guard:
        spans.append(make_span("pii check", trace_id=root.trace_id, parent=root, start=71 * MS, end=72 * MS,
                               attrs={"guardrail.name": "pii", "guardrail.action": "block",
                                      "guardrail.reason": "email address"}))
        checked = make_span("moderate", trace_id=root.trace_id, parent=root, start=72 * MS, end=73 * MS)
        event = checked.events.add()
        event.name, event.time_unix_nano = "guardrail", 72 * MS + 5
        event.attributes.extend(kvs({"guardrail.name": "toxicity", "guardrail.triggered": False,
                                     "guardrail.score": 0.1}))
        spans.append(checked)
    return spans


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = DuckDBStore(tmp_path_factory.mktemp("views") / "data")
    for spans in (_turn("s1", 100, guard=True), _turn("s1", 50), _turn("s2", 7)):
        s.write(decode_request(make_request(spans).SerializeToString()).table)
    yield s
    s.close()


def _rows(store, sql):
    return store.query(sql).to_pylist()


def test_every_documented_relation_exists(store):
    names = {r["name"] for r in _rows(store, "SELECT table_name AS name FROM information_schema.tables")}
    assert set(ANALYST_RELATIONS) <= names


def test_llm_calls(store):
    rows = _rows(store, "SELECT model, input_tokens, output_tokens, duration_ms, agent_name, session_id "
                        "FROM llm_calls ORDER BY input_tokens")
    assert rows == [
        {"model": "gpt-4o", "input_tokens": t, "output_tokens": 20, "duration_ms": 40.0, "agent_name": "planner",
         "session_id": s} for t, s in ((7, "s2"), (50, "s1"), (100, "s1"))]


def test_tool_calls(store):
    rows = _rows(store, "SELECT tool_name, arguments, duration_ms FROM tool_calls")
    assert rows == [{"tool_name": "search", "arguments": '{"q": "x"}', "duration_ms": 30.0}] * 3


def test_guardrail_events_from_spans_and_span_events(store):
    rows = _rows(store, "SELECT guardrail_name, triggered, action, reason, score, source, time_unix_nano "
                        "FROM guardrail_events ORDER BY guardrail_name")
    assert rows == [
        # No `guardrail.triggered`: a block counts as a hit.
        {"guardrail_name": "pii", "triggered": True, "action": "block", "reason": "email address",
         "score": None, "source": "span", "time_unix_nano": 71 * MS},
        {"guardrail_name": "toxicity", "triggered": False, "action": None, "reason": None, "score": 0.1,
         "source": "event", "time_unix_nano": 72 * MS + 5},
    ]


def test_sessions(store):
    rows = _rows(store, "SELECT session_id, turns, spans, input_tokens, output_tokens, user_id, agent_name "
                        "FROM sessions ORDER BY session_id")
    assert rows == [
        {"session_id": "s1", "turns": 2, "spans": 5 + 3, "input_tokens": 150, "output_tokens": 40,
         "user_id": "u1", "agent_name": "planner"},
        {"session_id": "s2", "turns": 1, "spans": 3, "input_tokens": 7, "output_tokens": 20,
         "user_id": "u1", "agent_name": "planner"},
    ]


def test_views_are_stored_and_readable_from_a_read_only_store(tmp_path):
    writer = DuckDBStore(tmp_path / "data")
    writer.write(decode_request(make_request(_turn("s9", 3)).SerializeToString()).table)
    writer.close()
    reader = DuckDBStore(tmp_path / "data", read_only=True)
    assert _rows(reader, "SELECT session_id, input_tokens FROM llm_calls") == [{"session_id": "s9", "input_tokens": 3}]
    reader.close()
