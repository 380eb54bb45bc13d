"""Latency attribution of one trace: critical path, self time, and breakdowns that sum to the wall time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from trajscope.analysis.critical_path import critical_path, critical_time, self_time
from trajscope.analysis.span_tree import Interval, SpanTree, build_tree
from trajscope.analysis.tokens import token_counting_spans
from trajscope.analysis.units import ns_to_ms as _ms


class SpanLabels(NamedTuple):
    """What a span is, for grouping its time."""

    span_id: str
    parent_span_id: str | None
    start: int
    end: int
    name: str
    category: str
    tool_name: str | None
    model: str | None
    agent_name: str | None
    service_name: str | None
    status_code: str = "UNSET"
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None


class BreakdownRow(NamedTuple):
    """Critical time of one trace per (category, tool, model, agent, span name, service)."""

    category: str
    tool_name: str | None
    model: str | None
    agent_name: str | None
    span_name: str
    service_name: str | None
    critical_ns: int


class UsageRow(NamedTuple):
    """Model usage of one trace per (model, agent): innermost LLM calls, tokens counted once."""

    model: str | None
    agent_name: str | None
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    cost_usd: float | None


def _tree(spans: Iterable[SpanLabels]) -> tuple[SpanTree, dict[str, SpanLabels]]:
    labels: dict[str, SpanLabels] = {}
    for s in spans:
        labels.setdefault(s.span_id, s)
    tree = build_tree(Interval(s.span_id, s.parent_span_id, s.start, s.end) for s in labels.values())
    return tree, labels


def effective_agents(tree: SpanTree, labels: dict[str, SpanLabels]) -> dict[str, str | None]:
    """Each span's agent: its own ``agent_name``, else the nearest ancestor's."""
    agent: dict[str, str | None] = {}
    for span_id, _ in tree.walk():
        own = labels[span_id].agent_name if span_id in labels else None
        parent = tree.parent.get(span_id)
        agent[span_id] = own or (agent.get(parent) if parent is not None else None)
    return agent


def breakdowns(spans: Iterable[SpanLabels]) -> tuple[list[BreakdownRow], list[UsageRow]]:
    """Critical time and model usage of one trace, grouped for the cross-run stats (computed at write
    time, so the stats never re-read traces one by one)."""
    tree, labels = _tree(spans)
    if tree.root_id is None:
        return [], []
    agents = effective_agents(tree, labels)
    return _critical_rows(tree, labels, agents), _usage_rows(labels, agents)


def critical_breakdown(spans: Iterable[SpanLabels]) -> list[BreakdownRow]:
    return breakdowns(spans)[0]


def _usage_rows(labels: dict[str, SpanLabels], agents: dict[str, str | None]) -> list[UsageRow]:
    values = list(labels.values())
    # A wrapper LLM span around the client span of the same call is one call, not two.
    calls = token_counting_spans((s.span_id, s.parent_span_id, s.category == "llm") for s in values)
    tokened = token_counting_spans(
        (s.span_id, s.parent_span_id, s.input_tokens is not None or s.output_tokens is not None) for s in values)
    acc: dict[tuple[str | None, str | None], list] = {}
    for span_id in calls | tokened:
        s = labels[span_id]
        entry = acc.setdefault((s.model, agents.get(span_id)), [0, 0, 0, 0, 0, 0, None])
        if span_id in calls:
            entry[0] += 1
            entry[1] += s.status_code == "ERROR"
        if span_id in tokened:
            entry[2] += s.input_tokens or 0
            entry[3] += s.output_tokens or 0
            entry[4] += s.cached_input_tokens or 0
            entry[5] += s.reasoning_tokens or 0
            if s.cost_usd is not None:
                entry[6] = (entry[6] or 0.0) + s.cost_usd
    return [UsageRow(model, agent, *values) for (model, agent), values in acc.items()]


def _critical_rows(tree: SpanTree, labels: dict[str, SpanLabels],
                   agents: dict[str, str | None]) -> list[BreakdownRow]:
    crit = critical_time(critical_path(tree))
    totals: dict[tuple, int] = {}
    for span_id, ns in crit.items():
        s = labels.get(span_id)
        key = (("other", None, None, None, "(missing root)", None) if s is None else
               (s.category, s.tool_name, s.model, agents.get(span_id), s.name, s.service_name))
        totals[key] = totals.get(key, 0) + ns
    return [BreakdownRow(*key, ns) for key, ns in totals.items()]


# The stored-span columns a latency report reads.
COLUMNS = ("span_id", "parent_span_id", "start_time_unix_nano", "end_time_unix_nano", "name", "category",
           "tool_name", "response_model", "request_model", "agent_name", "service_name")


def labels_from_columns(columns: dict[str, list[Any]]) -> list[SpanLabels]:
    """Labels from column lists (``COLUMNS``), without building a dict per span."""
    models = [r or q for r, q in zip(columns["response_model"], columns["request_model"], strict=True)]
    return [SpanLabels(*values) for values in zip(
        columns["span_id"], columns["parent_span_id"], columns["start_time_unix_nano"],
        columns["end_time_unix_nano"], columns["name"], columns["category"], columns["tool_name"], models,
        columns["agent_name"], columns["service_name"], strict=True)]


def labels_from_rows(rows: list[dict[str, Any]]) -> list[SpanLabels]:
    return labels_from_columns({name: [r[name] for r in rows] for name in COLUMNS})


def _add(group: dict[str, list[int]], key: str, critical_ns: int, duration: int) -> None:
    entry = group.get(key)
    if entry is None:
        group[key] = [critical_ns, duration, 1]
    else:
        entry[0] += critical_ns
        entry[1] += duration
        entry[2] += 1


LAYOUTS = ("objects", "table")
SPAN_FIELDS = ("span_id", "name", "category", "duration_ms", "self_ms", "critical_ms")


def latency_report(trace_id: str, spans: list[dict[str, Any]] | list[SpanLabels],
                   layout: str = "objects") -> dict[str, Any]:
    """The latency response: critical path sections, per-span self/critical time, breakdowns. ``spans``
    are stored-span dicts or ready-made ``SpanLabels``. ``layout="table"`` sends the per-span list as
    ``{"fields": SPAN_FIELDS, "rows": [[...], ...]}``."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}")
    labels_in = spans if not spans or isinstance(spans[0], SpanLabels) else labels_from_rows(spans)
    tree, labels = _tree(labels_in)
    sections = critical_path(tree)
    crit = critical_time(sections)
    own = self_time(tree)
    root = tree.nodes[tree.root_id] if tree.root_id else None

    def name_of(span_id: str) -> tuple[str, str]:
        s = labels.get(span_id)
        return ("(missing root)", "other") if s is None else (s.name, s.category)

    # [critical ns, busy ns, count] per key, converted to milliseconds once at the end.
    by_category: dict[str, list[int]] = {}
    by_tool: dict[str, list[int]] = {}
    by_model: dict[str, list[int]] = {}
    rows = []
    nodes = tree.nodes
    append = rows.append
    crit_of = crit.get
    for span_id, _ in tree.walk():
        node = nodes[span_id]
        critical_ns = crit_of(span_id, 0)
        s = labels.get(span_id)
        if s is None:  # the virtual root: its time counts, it is not a span
            entry = by_category.setdefault("other", [0, 0, 0])
            entry[0] += critical_ns
            continue
        duration = node.end - node.start if node.end > node.start else 0
        category = s.category
        _add(by_category, category, critical_ns, duration)
        if category == "tool":
            _add(by_tool, s.tool_name or "(unnamed)", critical_ns, duration)
        elif category == "llm":
            _add(by_model, s.model or "(unknown)", critical_ns, duration)
        append([span_id, s.name, category, duration / 1e6, own[span_id] / 1e6, critical_ns / 1e6])

    def as_ms(group: dict[str, list[int]]) -> dict[str, dict[str, float]]:
        return {key: {"critical_ms": _ms(c), "busy_ms": _ms(b), "count": n} for key, (c, b, n) in group.items()}

    groups = {"by_category": as_ms(by_category), "by_tool": as_ms(by_tool), "by_model": as_ms(by_model)}
    return {
        "trace_id": trace_id,
        "root_span_id": tree.root_id,
        "duration_ms": _ms(root.duration) if root else 0.0,
        "critical_path": [{"span_id": s.span_id, "name": name, "category": category,
                           "start_time_unix_nano": s.start, "end_time_unix_nano": s.end,
                           "critical_ms": _ms(s.end - s.start)}
                          for s in sections for name, category in (name_of(s.span_id),)],
        "spans": ({"fields": SPAN_FIELDS, "rows": rows} if layout == "table"
                  else [dict(zip(SPAN_FIELDS, row, strict=True)) for row in rows]),
        **groups,
    }
