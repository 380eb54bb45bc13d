"""The trajectory builder as it was before it worked on columns: the oracle the column version is tested
against (same answers on random traces). Test-only; not part of the package.

"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from trajscope.analysis import content, guardrails
from trajscope.analysis.span_tree import VIRTUAL_ROOT_ID, Interval, SpanTree, build_tree
from trajscope.analysis.tokens import token_counting_spans
from trajscope.analysis.trajectory import LOOP_THRESHOLD, parallel_groups
from trajscope.analysis.units import ns_to_ms as _ms


def tree_of(spans: list[dict[str, Any]]) -> SpanTree:
    return build_tree(Interval(s["span_id"], s["parent_span_id"], s["start_time_unix_nano"],
                               s["end_time_unix_nano"]) for s in spans)


def _requested_by(steps: list[dict[str, Any]], spans: dict[str, dict[str, Any]]) -> None:
    """Link tool steps to the LLM step that asked for them: by tool call id, else by tool name and order."""
    by_call_id: dict[str, str] = {}
    llm_names: list[tuple[int, str, set[str]]] = []  # (end, span_id, requested tool names)
    for step in steps:
        if step["category"] != "llm" or step.get("virtual"):
            continue
        span = spans[step["span_id"]]
        calls = content.requested_tool_calls(span["attributes"], span.get("events") or [])
        for call_id, _ in calls:
            if call_id:
                by_call_id.setdefault(call_id, step["span_id"])
        names = {name for _, name in calls if name}
        if names:
            llm_names.append((step["end_time_unix_nano"], step["span_id"], names))
    llm_names.sort()
    for step in steps:
        if step["category"] != "tool":
            continue
        link = by_call_id.get(step["tool_call_id"]) if step["tool_call_id"] else None
        if link is None and step["tool_name"]:
            candidates = [span_id for end, span_id, names in llm_names
                          if end <= step["start_time_unix_nano"] and step["tool_name"] in names]
            link = candidates[-1] if candidates else None
        step["requested_by"] = link


def _step(index: int, depth: int, span: dict[str, Any], group: int | None) -> dict[str, Any]:
    attrs, events = span["attributes"], span["events"]
    checks = guardrails.checks(attrs, events, span["name"], span["category"])
    return {
        "index": index, "span_id": span["span_id"], "parent_span_id": span["parent_span_id"], "depth": depth,
        "category": span["category"], "name": span["name"], "service_name": span["service_name"],
        "start_time_unix_nano": span["start_time_unix_nano"], "end_time_unix_nano": span["end_time_unix_nano"],
        "duration_ms": _ms(span["duration_ns"]), "status_code": span["status_code"],
        "status_message": span["status_message"], "error_type": span["error_type"],
        "agent_name": span["agent_name"], "model": span["response_model"] or span["request_model"],
        "tool_name": span["tool_name"], "tool_call_id": span["tool_call_id"],
        "input_tokens": span["input_tokens"], "output_tokens": span["output_tokens"],
        "cost_usd": span["cost_usd"],
        "input_preview": content.preview(content.input_text(attrs, events)),
        "output_preview": content.preview(content.output_text(attrs, events)),
        "guardrail": guardrails.outcome(checks),
        "guardrail_hits": guardrails.hits(checks),
        "parallel_group": group, "requested_by": None,
        "query": span.get("retrieval") and span["retrieval"]["query"],
        "documents": span.get("retrieval") and _documents(span["retrieval"]),
    }


def _documents(step: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for doc in step["documents"]:
        shown = {"id": doc["id"], "rank": doc["rank"], "score": doc["score"], "preview": doc["preview"]}
        if step["input_documents"] is not None:
            shown["previous_rank"] = doc["previous_rank"]
        out.append(shown)
    return out


def _virtual_step(tree: SpanTree) -> dict[str, Any]:
    node = tree.nodes[VIRTUAL_ROOT_ID]
    return {
        "index": 0, "span_id": VIRTUAL_ROOT_ID, "parent_span_id": None, "depth": 0, "category": "other",
        "name": "(missing root)", "service_name": None, "start_time_unix_nano": node.start,
        "end_time_unix_nano": node.end, "duration_ms": _ms(node.duration), "status_code": "UNSET",
        "status_message": None, "error_type": None, "agent_name": None, "model": None, "tool_name": None,
        "tool_call_id": None, "input_tokens": None, "output_tokens": None, "cost_usd": None,
        "input_preview": None, "output_preview": None, "guardrail": None, "guardrail_hits": 0,
        "parallel_group": None,
        "requested_by": None, "query": None, "documents": None, "virtual": True,
    }


def _skew(child: dict[str, Any], parent: Interval) -> str | None:
    early = parent.start - child["start_time_unix_nano"]
    late = child["end_time_unix_nano"] - parent.end
    problems = []
    if early > 0:
        problems.append(f"starts {_ms(early)} ms before its parent")
    if late > 0:
        problems.append(f"ends {_ms(late)} ms after its parent")
    return " and ".join(problems) or None


def _anomalies(tree: SpanTree, steps: list[dict[str, Any]], spans: dict[str, dict[str, Any]]) -> list[dict]:
    out: list[dict[str, Any]] = []
    if tree.virtual_root:
        out.append({"kind": "missing_root", "span_id": VIRTUAL_ROOT_ID,
                    "detail": "no span of this trace is a root; a virtual root stands in"})
    for span_id in tree.orphans:
        out.append({"kind": "orphan", "span_id": span_id,
                    "detail": f"parent {spans[span_id]['parent_span_id']} never arrived; shown under the root"})
    for span_id in tree.cycle_breaks:
        out.append({"kind": "cycle", "span_id": span_id,
                    "detail": "its parents loop back to it; shown under the root"})
    detached = set(tree.orphans) | set(tree.cycle_breaks)
    repeats: dict[tuple[str, str], list[str]] = defaultdict(list)
    for step in steps:
        span_id = step["span_id"]
        if step.get("virtual"):
            continue
        parent = tree.parent.get(span_id)
        if parent is not None and parent != VIRTUAL_ROOT_ID and span_id not in detached:
            outer = tree.nodes[parent]
            # Inside its parent is the rule; only a span outside it needs the detail worked out.
            if step["start_time_unix_nano"] < outer.start or step["end_time_unix_nano"] > outer.end:
                out.append({"kind": "clock_skew", "span_id": span_id, "detail": _skew(step, outer)})
        if step["status_code"] == "ERROR":
            out.append({"kind": "error", "span_id": span_id,
                        "detail": step["status_message"] or step["error_type"] or "status ERROR"})
        guard = step["guardrail"]
        if guard and guard["action"] == "block" and guard["triggered"] is not False:
            out.append({"kind": "guardrail_block", "span_id": span_id,
                        "detail": f"guardrail {guard['name']} blocked"})
        if step["category"] == "tool" and step["tool_name"]:
            args = content.tool_arguments(spans[span_id]["attributes"])
            if args is not None:
                repeats[(step["tool_name"], args)].append(span_id)
    for (tool, _), ids in repeats.items():
        if len(ids) >= LOOP_THRESHOLD:
            out.append({"kind": "loop", "span_id": ids[LOOP_THRESHOLD - 1],
                        "detail": f"{tool} called {len(ids)} times with the same arguments"})
    return out


def _totals(steps: list[dict[str, Any]], spans: dict[str, dict[str, Any]]) -> dict[str, Any]:
    real = [s for s in steps if not s.get("virtual")]
    counted = token_counting_spans(
        (s["span_id"], s["parent_span_id"], s["input_tokens"] is not None or s["output_tokens"] is not None)
        for s in spans.values())
    # Costs of the spans whose tokens count, and of spans with a cost and no tokens at all.
    costs = [s["cost_usd"] for s in real if s["cost_usd"] is not None
             and (s["span_id"] in counted or (s["input_tokens"] is None and s["output_tokens"] is None))]
    return {
        "span_count": len(real),
        "llm_calls": sum(1 for s in real if s["category"] == "llm"),
        "tool_calls": sum(1 for s in real if s["category"] == "tool"),
        "error_count": sum(1 for s in real if s["status_code"] == "ERROR"),
        "input_tokens": sum(spans[i]["input_tokens"] or 0 for i in counted),
        "output_tokens": sum(spans[i]["output_tokens"] or 0 for i in counted),
        "cost_usd": sum(costs) if costs else None,
        "guardrail_hits": sum(s["guardrail_hits"] for s in real),
    }


def build_trajectory(trace_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The trajectory response for one trace (see the API docs for the fields)."""
    spans = {}
    for row in rows:
        spans.setdefault(row["span_id"], row)
    tree = tree_of(list(spans.values()))
    groups = parallel_groups(tree)
    steps: list[dict[str, Any]] = []
    for span_id, depth in tree.walk():
        if span_id == VIRTUAL_ROOT_ID:
            steps.append(_virtual_step(tree))
        else:
            steps.append(_step(len(steps), depth, spans[span_id], groups.get(span_id)))
    _requested_by(steps, spans)
    start = min((n.start for n in tree.nodes.values()), default=0)
    end = max((n.end for n in tree.nodes.values()), default=0)
    return {
        "trace_id": trace_id,
        "complete": not (tree.virtual_root or tree.orphans or tree.cycle_breaks),
        "root_span_id": tree.root_id,
        "duration_ms": _ms(max(end - start, 0)),
        "steps": steps,
        "anomalies": _anomalies(tree, steps, spans),
        "totals": _totals(steps, spans),
    }
