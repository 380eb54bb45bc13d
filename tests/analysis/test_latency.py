from __future__ import annotations

import pytest

from tests.analysis.test_trajectory import span
from trajscope.analysis.latency import SpanLabels, critical_breakdown, latency_report


def test_latency_report_breakdowns_sum_to_the_root_duration():
    # root (agent) |0==========================30|  ms
    # llm            |2====8|
    # search                 |8========20|
    # fetch                  |8====14|            parallel with search, not blocking
    # llm2                               |20==26|
    ms = 1_000_000
    rows = [span("root", None, 0, 30 * ms, category="agent", agent_name="planner"),
            span("llm", "root", 2 * ms, 8 * ms, category="llm", response_model="gpt-4o"),
            span("search", "root", 8 * ms, 20 * ms, category="tool", tool_name="search"),
            span("fetch", "root", 8 * ms, 14 * ms, category="tool", tool_name="fetch"),
            span("llm2", "root", 20 * ms, 26 * ms, category="llm", request_model="claude")]
    report = latency_report("t", rows)
    assert report["root_span_id"] == "root" and report["duration_ms"] == 30
    assert [(s["span_id"], s["critical_ms"]) for s in report["critical_path"]] == [
        ("root", 2), ("llm", 6), ("search", 12), ("llm2", 6), ("root", 4)]
    for group in ("by_category", "by_tool", "by_model"):
        assert all(v["critical_ms"] >= 0 for v in report[group].values())
    assert sum(v["critical_ms"] for v in report["by_category"].values()) == pytest.approx(30, abs=1e-3)
    assert report["by_category"]["agent"] == {"critical_ms": 6, "busy_ms": 30, "count": 1}
    assert report["by_category"]["tool"] == {"critical_ms": 12, "busy_ms": 18, "count": 2}
    assert report["by_tool"]["fetch"] == {"critical_ms": 0, "busy_ms": 6, "count": 1}
    assert set(report["by_model"]) == {"gpt-4o", "claude"}
    spans = {s["span_id"]: s for s in report["spans"]}
    assert spans["root"]["self_ms"] == 6  # 0–2 and 26–30: covered by no child
    assert spans["search"]["self_ms"] == 12 and spans["fetch"]["critical_ms"] == 0


def test_critical_breakdown_uses_the_nearest_agent_and_sums_to_the_root():
    # root (agent a) |0==================20|
    # sub (agent b)     |2=========12|
    # tool                 |4==8|          inherits agent b
    # llm                              |14=18|  inherits agent a
    labels = [SpanLabels("root", None, 0, 20, "invoke_agent a", "agent", None, None, "a", "svc"),
              SpanLabels("sub", "root", 2, 12, "invoke_agent b", "agent", None, None, "b", "svc"),
              SpanLabels("tool", "sub", 4, 8, "execute_tool x", "tool", "x", None, None, "svc"),
              SpanLabels("llm", "root", 14, 18, "chat", "llm", None, "gpt", None, "svc")]
    rows = {(r.category, r.tool_name, r.model, r.agent_name): r.critical_ns for r in critical_breakdown(labels)}
    assert rows == {("agent", None, None, "a"): 2 + 2 + 2, ("agent", None, None, "b"): 2 + 4,
                    ("tool", "x", None, "b"): 4, ("llm", None, "gpt", "a"): 4}
    assert sum(rows.values()) == 20


def test_critical_breakdown_missing_root_time_is_other():
    labels = [SpanLabels("a", "gone", 0, 4, "a", "llm", None, "m", None, None),
              SpanLabels("b", "gone", 6, 10, "b", "tool", "t", None, None, None)]
    rows = {(r.category, r.span_name): r.critical_ns for r in critical_breakdown(labels)}
    assert rows == {("llm", "a"): 4, ("other", "(missing root)"): 2, ("tool", "b"): 4}


def test_table_layout_carries_the_same_spans():
    ms = 1_000_000
    rows = [span("root", None, 0, 30 * ms, category="agent"), span("a", "root", 2 * ms, 8 * ms, category="llm"),
            span("b", "root", 5 * ms, 20 * ms, category="tool", tool_name="search"),
            span("orphan", "gone", 1 * ms, 3 * ms)]
    objects, table = latency_report("t", rows), latency_report("t", rows, layout="table")
    assert [dict(zip(table["spans"]["fields"], r, strict=True)) for r in table["spans"]["rows"]] == objects["spans"]
    assert {k: v for k, v in table.items() if k != "spans"} == {k: v for k, v in objects.items() if k != "spans"}
    with pytest.raises(ValueError):
        latency_report("t", rows, layout="columns")
