"""An agent run as the ordered steps an engineer reads: depth-first from the root, siblings by start time,
parallel calls grouped, tool calls linked to the LLM step that requested them, anomalies flagged.

Input: a trace's spans as columns (``COLUMNS`` → one list each, attributes and events parsed), or as
stored-span dicts (``build_trajectory``). Working on columns matters for big runs: a 10,000-span trace was
~60 ms of per-row dicts before any analysis.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
import pyarrow as pa

from trajscope.analysis import content, guardrails
from trajscope.analysis.span_tree import VIRTUAL_ROOT_ID, Interval, SpanTree, build_tree
from trajscope.analysis.tokens import token_counting_spans
from trajscope.analysis.units import ns_to_ms as _ms

LOOP_THRESHOLD = 3
# The stored-span columns a trajectory reads.
COLUMNS = ("span_id", "parent_span_id", "name", "category", "start_time_unix_nano", "end_time_unix_nano",
           "duration_ns", "status_code", "status_message", "error_type", "service_name", "agent_name",
           "request_model", "response_model", "tool_name", "tool_call_id", "input_tokens", "output_tokens",
           "cost_usd", "attributes", "events", "retrieval")


class _Spans:
    """A trace's columns and, per span id, the row of its first copy (later duplicates are ignored)."""

    def __init__(self, cols: dict[str, list[Any]]) -> None:
        self.cols = cols
        self.row: dict[str, int] = {}
        for i, span_id in enumerate(cols["span_id"]):
            self.row.setdefault(span_id, i)

    def tree(self) -> SpanTree:
        parent, start, end = (self.cols["parent_span_id"], self.cols["start_time_unix_nano"],
                              self.cols["end_time_unix_nano"])
        return build_tree(Interval(span_id, parent[i], start[i], end[i]) for span_id, i in self.row.items())

    def get(self, column: str, span_id: str) -> Any:
        return self.cols[column][self.row[span_id]]


def parallel_groups(tree: SpanTree) -> dict[str, int]:
    """Group id per span for siblings whose intervals overlap (transitively); lone spans get none."""
    groups: dict[str, int] = {}
    next_id = 0
    for span_id, _ in tree.walk():
        kids = tree.children.get(span_id)
        if not kids or len(kids) < 2:
            continue
        cluster: list[str] = []
        cluster_end = None
        for kid in kids:  # sorted by start
            node = tree.nodes[kid]
            if cluster and node.start < cluster_end:
                cluster.append(kid)
                cluster_end = max(cluster_end, node.end)
                continue
            if len(cluster) > 1:
                groups.update((k, next_id) for k in cluster)
                next_id += 1
            cluster, cluster_end = [kid], node.end
        if len(cluster) > 1:
            groups.update((k, next_id) for k in cluster)
            next_id += 1
    return groups


# A step's fields, in the order of the ``table`` layout's rows. ``virtual`` (last) is only sent, as true, for
# the stand-in root of a trace without one in the default (objects) layout.
STEP_FIELDS = ("index", "span_id", "parent_span_id", "depth", "category", "name", "service_name",
               "start_time_unix_nano", "end_time_unix_nano", "duration_ms", "status_code", "status_message",
               "error_type", "agent_name", "model", "tool_name", "tool_call_id", "input_tokens", "output_tokens",
               "cost_usd", "input_preview", "output_preview", "guardrail", "guardrail_hits", "parallel_group",
               "requested_by", "query", "documents", "virtual")
(_SPAN_ID, _PARENT, _CATEGORY, _START, _END, _STATUS, _STATUS_MESSAGE, _ERROR_TYPE, _TOOL, _CALL_ID, _COST,
 _GUARDRAIL, _HITS, _REQUESTED_BY, _VIRTUAL) = (STEP_FIELDS.index(f) for f in (
    "span_id", "parent_span_id", "category", "start_time_unix_nano", "end_time_unix_nano", "status_code",
    "status_message", "error_type", "tool_name", "tool_call_id", "cost_usd", "guardrail", "guardrail_hits",
    "requested_by", "virtual"))


def _step_documents(step: dict[str, Any]) -> list[dict[str, Any]]:
    """A retrieval step's documents as a trajectory shows them; a reranker's with the rank each had before."""
    reranked = step.get("input_documents") is not None
    return [{"id": d["id"], "rank": d["rank"], "score": d["score"], "preview": d["preview"],
             **({"previous_rank": d["previous_rank"]} if reranked else {})} for d in step["documents"] or ()]


def _requested_by(steps: list[list[Any]], calls_of: dict[str, list[tuple[str | None, str | None]]]) -> None:
    """Link tool steps to the LLM step that asked for them (``calls_of``: the tool calls each LLM step's output
    requested): by tool call id, else by tool name and order."""
    by_call_id: dict[str, str] = {}
    llm_names: list[tuple[int, str, set[str]]] = []  # (end, span_id, requested tool names)
    for step in steps:
        calls = calls_of.get(step[_SPAN_ID]) if step[_CATEGORY] == "llm" and not step[_VIRTUAL] else None
        if not calls:
            continue
        for call_id, _ in calls:
            if call_id:
                by_call_id.setdefault(call_id, step[_SPAN_ID])
        names = {name for _, name in calls if name}
        if names:
            llm_names.append((step[_END], step[_SPAN_ID], names))
    llm_names.sort()
    for step in steps:
        if step[_CATEGORY] != "tool":
            continue
        link = by_call_id.get(step[_CALL_ID]) if step[_CALL_ID] else None
        if link is None and step[_TOOL] and llm_names:
            candidates = [span_id for end, span_id, names in llm_names
                          if end <= step[_START] and step[_TOOL] in names]
            link = candidates[-1] if candidates else None
        step[_REQUESTED_BY] = link


def _virtual_step(tree: SpanTree) -> list[Any]:
    node = tree.nodes[VIRTUAL_ROOT_ID]
    return [0, VIRTUAL_ROOT_ID, None, 0, "other", "(missing root)", None, node.start, node.end, _ms(node.duration),
            "UNSET", None, None, None, None, None, None, None, None, None, None, None, None, 0, None, None, None, None,
            True]


def _skew(step: list[Any], parent: Interval) -> str | None:
    early = parent.start - step[_START]
    late = step[_END] - parent.end
    problems = []
    if early > 0:
        problems.append(f"starts {_ms(early)} ms before its parent")
    if late > 0:
        problems.append(f"ends {_ms(late)} ms after its parent")
    return " and ".join(problems) or None


def _anomalies(tree: SpanTree, steps: list[list[Any]], spans: _Spans) -> list[dict]:
    out: list[dict[str, Any]] = []
    if tree.virtual_root:
        out.append({"kind": "missing_root", "span_id": VIRTUAL_ROOT_ID,
                    "detail": "no span of this trace is a root; a virtual root stands in"})
    for span_id in tree.orphans:
        out.append({"kind": "orphan", "span_id": span_id,
                    "detail": f"parent {spans.get('parent_span_id', span_id)} never arrived; shown under the root"})
    for span_id in tree.cycle_breaks:
        out.append({"kind": "cycle", "span_id": span_id,
                    "detail": "its parents loop back to it; shown under the root"})
    detached = set(tree.orphans) | set(tree.cycle_breaks)
    repeats: dict[tuple[str, str], list[str]] = defaultdict(list)
    parents, nodes = tree.parent, tree.nodes
    for step in steps:
        if step[_VIRTUAL]:
            continue
        span_id = step[_SPAN_ID]
        parent = parents.get(span_id)
        if parent is not None and parent != VIRTUAL_ROOT_ID and span_id not in detached:
            outer = nodes[parent]
            # Inside its parent is the rule; only a span outside it needs the detail worked out.
            if step[_START] < outer.start or step[_END] > outer.end:
                out.append({"kind": "clock_skew", "span_id": span_id, "detail": _skew(step, outer)})
        if step[_STATUS] == "ERROR":
            out.append({"kind": "error", "span_id": span_id,
                        "detail": step[_STATUS_MESSAGE] or step[_ERROR_TYPE] or "status ERROR"})
        guard = step[_GUARDRAIL]
        if guard and guard["action"] == "block" and guard["triggered"] is not False:
            out.append({"kind": "guardrail_block", "span_id": span_id,
                        "detail": f"guardrail {guard['name']} blocked"})
        if step[_CATEGORY] == "tool" and step[_TOOL]:
            args = content.tool_arguments(spans.get("attributes", span_id))
            if args is not None:
                repeats[(step[_TOOL], args)].append(span_id)
    for (tool, _), ids in repeats.items():
        if len(ids) >= LOOP_THRESHOLD:
            out.append({"kind": "loop", "span_id": ids[LOOP_THRESHOLD - 1],
                        "detail": f"{tool} called {len(ids)} times with the same arguments"})
    return out


def _totals(steps: list[list[Any]], spans: _Spans) -> dict[str, Any]:
    real = [s for s in steps if not s[_VIRTUAL]]
    cols = spans.cols
    inp, out = cols["input_tokens"], cols["output_tokens"]
    rows = spans.row
    counted = token_counting_spans(
        (span_id, cols["parent_span_id"][i], inp[i] is not None or out[i] is not None) for span_id, i in rows.items())
    # A wrapper span (an agent) reporting its calls' usage again is not counted twice, nor is its cost.
    cost_of = cols["cost_usd"]
    costs = [cost_of[rows[i]] for i in counted if cost_of[rows[i]] is not None]
    costs += [s[_COST] for s in real if s[_COST] is not None and s[_SPAN_ID] not in counted
              and inp[rows[s[_SPAN_ID]]] is None and out[rows[s[_SPAN_ID]]] is None]
    return {
        "span_count": len(real),
        "llm_calls": sum(1 for s in real if s[_CATEGORY] == "llm"),
        "tool_calls": sum(1 for s in real if s[_CATEGORY] == "tool"),
        "error_count": sum(1 for s in real if s[_STATUS] == "ERROR"),
        "input_tokens": sum(inp[rows[i]] or 0 for i in counted),
        "output_tokens": sum(out[rows[i]] or 0 for i in counted),
        "cost_usd": sum(costs) if costs else None,
        "guardrail_hits": sum(s[_HITS] for s in real),
    }


LAYOUTS = ("objects", "table")


def build_trajectory(trace_id: str, rows: list[dict[str, Any]], layout: str = "objects") -> dict[str, Any]:
    """The trajectory of stored-span dicts (``COLUMNS``, of which ``retrieval`` may be left out; attributes
    and events parsed)."""
    cols = {c: [r[c] for r in rows] for c in COLUMNS if c != "retrieval"}
    cols["retrieval"] = [r.get("retrieval") for r in rows]
    return trajectory_of_columns(trace_id, cols, layout)


def trajectory_of_table(trace_id: str, table: pa.Table, layout: str = "objects") -> dict[str, Any]:
    """The trajectory of a trace's stored spans as read (``COLUMNS``; JSON columns as text)."""
    cols = table.select(list(COLUMNS)).to_pydict()
    loads = orjson.loads
    cols["attributes"] = [loads(v) if v is not None else {} for v in cols["attributes"]]
    cols["events"] = [loads(v) if v is not None else [] for v in cols["events"]]
    return trajectory_of_columns(trace_id, cols, layout)


def trajectory_of_columns(trace_id: str, cols: dict[str, list[Any]], layout: str = "objects") -> dict[str, Any]:
    """The trajectory response for one trace (see the API docs for the fields). ``layout="table"`` sends the
    steps as ``{"fields": STEP_FIELDS, "rows": [[...], ...]}``: the same values without 10,000 copies of
    the keys, built and parsed several times faster for big runs."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}")
    spans = _Spans(cols)
    tree = spans.tree()
    groups = parallel_groups(tree)
    steps: list[list[Any]] = []
    append = steps.append
    (names, categories, services, starts, ends, durations, statuses, messages, errors, agents, request_models,
     response_models, tools, call_ids, inputs, outputs, costs, attributes, events, parents, retrievals) = (
        cols[c] for c in ("name", "category", "service_name", "start_time_unix_nano", "end_time_unix_nano",
                          "duration_ns", "status_code", "status_message", "error_type", "agent_name",
                          "request_model", "response_model", "tool_name", "tool_call_id", "input_tokens",
                          "output_tokens", "cost_usd", "attributes", "events", "parent_span_id", "retrieval"))
    row = spans.row
    group_of = groups.get
    checks_of, texts, limit = guardrails.checks, content.texts, content.PREVIEW_CHARS
    calls_of: dict[str, list[tuple[str | None, str | None]]] = {}
    for span_id, depth in tree.walk():
        if span_id == VIRTUAL_ROOT_ID:
            append(_virtual_step(tree))
            continue
        i = row[span_id]
        attrs, evs = attributes[i], events[i]
        checks = checks_of(attrs, evs, names[i], categories[i])
        if categories[i] == "llm":  # its messages read once, for the previews and the tool calls it asked for
            text_in, text_out, calls_of[span_id] = content.texts_and_calls(attrs, evs)
        else:
            text_in, text_out = texts(attrs, evs)
        step = retrievals[i]
        append([len(steps), span_id, parents[i], depth, categories[i], names[i], services[i], starts[i], ends[i],
                round(durations[i] / 1e6, 6), statuses[i], messages[i], errors[i], agents[i],
                response_models[i] or request_models[i], tools[i], call_ids[i], inputs[i], outputs[i], costs[i],
                None if text_in is None else text_in[:limit], None if text_out is None else text_out[:limit],
                guardrails.outcome(checks) if checks else None, guardrails.hits(checks) if checks else 0,
                group_of(span_id), None, step and step["query"], step and _step_documents(step), False])
    _requested_by(steps, calls_of)
    start = min((n.start for n in tree.nodes.values()), default=0)
    end = max((n.end for n in tree.nodes.values()), default=0)
    if layout == "table":
        shaped: Any = {"fields": STEP_FIELDS, "rows": steps}
    else:
        # The stand-in root says it is virtual; real steps do not carry the field at all.
        plain = STEP_FIELDS[:-1]
        shaped = [dict(zip(STEP_FIELDS, s, strict=True)) if s[_VIRTUAL] else dict(zip(plain, s[:-1], strict=True))
                  for s in steps]
    return {
        "trace_id": trace_id,
        "complete": not (tree.virtual_root or tree.orphans or tree.cycle_breaks),
        "root_span_id": tree.root_id,
        "duration_ms": _ms(max(end - start, 0)),
        "steps": shaped,
        "anomalies": _anomalies(tree, steps, spans),
        "totals": _totals(steps, spans),
    }
