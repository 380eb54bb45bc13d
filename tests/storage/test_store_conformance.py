"""The contract of ``storage.interface.SpanStore``, run against every backend."""

import os
import random

from tests.otlp_builders import make_span
from tests.storage.conftest import table_of
from trajscope.storage.duckdb_store import DuckDBStore
from trajscope.storage.interface import TraceFilter


def _agent_trace(n_children=3, start=1_000, **root_attrs):
    tid = os.urandom(16)
    root = make_span("invoke_agent a", trace_id=tid, start=start, end=start + 10_000,
                     attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "a", **root_attrs})
    kids = [make_span(f"chat {i}", trace_id=tid, parent=root, start=start + 100 * i, end=start + 100 * i + 50,
                      attrs={"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 10,
                             "gen_ai.usage.output_tokens": 1})
            for i in range(n_children)]
    return tid.hex(), [root, *kids]


def test_store_write_is_idempotent_on_trace_and_span_id(store):
    tid, spans = _agent_trace()
    assert store.write(table_of(spans)) == 4
    assert store.write(table_of(spans)) == 0
    assert store.write(table_of(spans[:2])) == 0
    assert store.get_trace(tid).num_rows == 4
    summary = store.list_traces(TraceFilter()).to_pylist()
    assert len(summary) == 1 and summary[0]["span_count"] == 4


def test_store_keeps_only_the_new_spans_of_a_batch_mixing_stored_and_new_ones(store):
    tid, spans = _agent_trace(n_children=5)
    other_tid, others = _agent_trace()
    assert store.write(table_of(spans[:3])) == 3
    assert store.write(table_of(spans[1:] + others)) == 3 + 4
    assert sorted(store.get_trace(tid).column("span_id").to_pylist()) == sorted(s.span_id.hex() for s in spans)
    counts = {t["trace_id"]: t["span_count"] for t in store.list_traces(TraceFilter()).to_pylist()}
    assert counts == {tid: 6, other_tid: 4}


def test_store_duplicates_inside_one_batch_are_stored_once(store):
    tid, spans = _agent_trace()
    assert store.write(table_of(spans + spans)) == 4
    assert store.get_trace(tid).num_rows == 4


def test_store_get_trace_orders_by_start_and_filters_project(store):
    tid, spans = _agent_trace()
    random.Random(1).shuffle(spans)
    store.write(table_of(spans, resource={"trajscope.project": "p1"}))
    got = store.get_trace(tid).column("start_time_unix_nano").to_pylist()
    assert got == sorted(got)
    assert store.get_trace(tid, project="p1").num_rows == 4
    assert store.get_trace(tid, project="other").num_rows == 0
    assert store.get_trace("0" * 31 + "1").num_rows == 0


def test_store_get_trace_breaks_ties_by_end_then_span_id_also_for_a_column_subset(store):
    tid = os.urandom(16)
    # Same start for all; two share the end too, so the span id decides between them.
    spans = [make_span(f"s{i}", trace_id=tid, start=500, end=end) for i, end in enumerate((900, 700, 700, 600))]
    random.Random(2).shuffle(spans)
    store.write(table_of(spans))
    rows = store.get_trace(tid.hex()).select(["end_time_unix_nano", "span_id"]).to_pylist()
    expected = sorted(rows, key=lambda r: (r["end_time_unix_nano"], r["span_id"]))
    assert rows == expected and len(rows) == 4
    # The order's keys are read but not returned when the caller asks for other columns.
    subset = store.get_trace(tid.hex(), columns=("name",))
    assert subset.column_names == ["name"]
    by_name = {s.name: s.span_id.hex() for s in spans}
    assert [by_name[n] for n in subset.column("name").to_pylist()] == [r["span_id"] for r in expected]


def test_store_late_and_split_spans_give_the_same_summary(store, tmp_path):
    _, spans = _agent_trace(n_children=5)
    whole = DuckDBStore(":memory:")
    whole.write(table_of(spans))
    expected = whole.list_traces(TraceFilter()).to_pylist()[0]
    # children first (root missing: incomplete), then the root arrives late
    for span in spans[1:][::-1]:
        store.write(table_of([span]))
    partial = store.list_traces(TraceFilter()).to_pylist()[0]
    assert partial["complete"] is False
    store.write(table_of([spans[0]]))
    got = store.list_traces(TraceFilter()).to_pylist()[0]
    for key in ("root_span_id", "root_name", "agent_name", "span_count", "input_tokens", "output_tokens",
                "start_time_unix_nano", "end_time_unix_nano", "llm_calls", "complete"):
        assert got[key] == expected[key], key


def test_store_list_filters_and_paging(store):
    expected = []
    for i in range(7):
        attrs = {"gen_ai.conversation.id": "s1" if i % 2 else "s2"}
        tid, spans = _agent_trace(start=1_000_000 * (i + 1), **attrs)
        if i == 3:
            spans[1].status.code = 2
        store.write(table_of(spans, resource={"service.name": f"svc{i % 3}"}))
        expected.append(tid)
    newest_first = expected[::-1]
    assert [r["trace_id"] for r in store.list_traces(TraceFilter()).to_pylist()] == newest_first
    assert [r["trace_id"] for r in store.list_traces(TraceFilter(errors_only=True)).to_pylist()] == [expected[3]]
    assert {r["session_id"] for r in store.list_traces(TraceFilter(session_id="s1")).to_pylist()} == {"s1"}
    assert len(store.list_traces(TraceFilter(service="svc0")).to_pylist()) == 3
    window = TraceFilter(since_unix_nano=2_000_000, until_unix_nano=4_000_000)
    assert [r["trace_id"] for r in store.list_traces(window).to_pylist()] == [expected[2], expected[1]]
    pages, after = [], None
    while True:
        page = store.list_traces(TraceFilter(limit=3, after=after)).to_pylist()
        if not page:
            break
        pages.extend(r["trace_id"] for r in page)
        after = (page[-1]["start_time_unix_nano"], page[-1]["trace_id"])
    assert pages == newest_first


def test_store_survives_reopen(tmp_path):
    s = DuckDBStore(tmp_path / "d")
    tid, spans = _agent_trace()
    s.write(table_of(spans))
    s.close()
    again = DuckDBStore(tmp_path / "d")
    assert again.get_trace(tid).num_rows == 4
    assert again.schema_version >= 1
    again.close()


def test_a_file_store_spills_beside_its_database_file(tmp_path):
    store = DuckDBStore(tmp_path / "data")
    temp = store._con.execute("SELECT current_setting('temp_directory')").fetchone()[0]
    assert temp == str(tmp_path / "data" / "trajscope.duckdb.tmp")
    store.close()


def test_store_keeps_the_json_columns_typed_and_valid(store):
    # The insert hands DuckDB the JSON columns as Arrow's JSON extension type (not re-validated): the
    # column type must stay JSON and every stored value must parse, also with escapes and events.
    tid = os.urandom(16)
    span = make_span("tool", trace_id=tid, attrs={"q": 'a "quoted"\n\\ text \x01', "n": 2.5, "l": [1, "x"]})
    event = span.events.add()
    event.name, event.time_unix_nano = "exception", 5
    store.write(table_of([span]))
    row = store.query("SELECT typeof(attributes) AS t, typeof(events) AS e, json_valid(attributes) AS ok, "
                      "json_valid(events) AS ok_events, attributes->>'$.q' AS q FROM spans").to_pylist()
    assert row == [{"t": "JSON", "e": "JSON", "ok": True, "ok_events": True, "q": 'a "quoted"\n\\ text \x01'}]
