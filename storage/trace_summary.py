"""Per-trace facts that listings need, computed from all of a trace's stored spans. Pure.

Recomputed whenever a span of the trace arrives, so late and out-of-order spans give the same row as if
the trace had arrived whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import pyarrow as pa

from trajscope.analysis.latency import SpanLabels, breakdowns
from trajscope.storage.schema import SUMMARY_SCHEMA


class SpanFacts(NamedTuple):
    """The columns of a stored span that the summary reads (see ``FACT_COLUMNS``)."""

    project: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    service_name: str | None
    start_time_unix_nano: int
    end_time_unix_nano: int
    status_code: str
    category: str
    agent_name: str | None
    session_id: str | None
    user_id: str | None
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int | None
    reasoning_tokens: int | None
    cost_usd: float | None
    tool_name: str | None
    request_model: str | None
    response_model: str | None
    guardrail_hits: int | None = None


FACT_COLUMNS: tuple[str, ...] = SpanFacts._fields


def pick_root(spans: Sequence[SpanFacts]) -> tuple[SpanFacts, bool]:
    """The trace's root and whether it is a real one (no parent) rather than the earliest orphan.

    With several real roots, the longest wins (ties: earliest start), as the latency view attributes it.
    """
    roots = [s for s in spans if s.parent_span_id is None]
    if len(roots) == 1:
        return roots[0], True
    if roots:
        return min(roots, key=lambda s: (-(s.end_time_unix_nano - s.start_time_unix_nano),
                                         s.start_time_unix_nano, s.span_id)), True
    return min(spans, key=lambda s: (s.start_time_unix_nano, s.span_id)), False


def _first_named(root: SpanFacts, spans: Sequence[SpanFacts], field: int) -> str | None:
    """The root's value of ``field``, else the value of the earliest span (by start, then id) naming one.
    Most roots name it: the spans are only searched when it does not."""
    value = root[field]
    if value:
        return value
    named = [s for s in spans if s[field]]
    if not named:
        return None
    return min(named, key=lambda s: (s.start_time_unix_nano, s.span_id))[field]


def _labels(spans: Sequence[SpanFacts]) -> list[SpanLabels]:
    return [SpanLabels(s.span_id, s.parent_span_id, s.start_time_unix_nano, s.end_time_unix_nano, s.name,
                       s.category, s.tool_name, s.response_model or s.request_model, s.agent_name, s.service_name,
                       s.status_code, s.input_tokens, s.output_tokens, s.cached_input_tokens, s.reasoning_tokens,
                       s.cost_usd) for s in spans]


_SERVICE, _AGENT, _SESSION, _USER = (SpanFacts._fields.index(f) for f in (
    "service_name", "agent_name", "session_id", "user_id"))


def summarise_trace(spans: Sequence[SpanFacts], updated_at: int) -> tuple:
    """One summary row (``schema.SUMMARY_SCHEMA`` order) for a non-empty list of one trace's spans."""
    root, has_root = pick_root(spans)
    # Token and call totals are the sums of the usage breakdown, which counts each model call once.
    critical, usage = breakdowns(_labels(spans))
    costs = [u.cost_usd for u in usage if u.cost_usd is not None]
    start = min([s.start_time_unix_nano for s in spans])
    end = max([s.end_time_unix_nano for s in spans])
    errors = tools = hits = 0
    for s in spans:
        if s.status_code == "ERROR":
            errors += 1
        if s.category == "tool":
            tools += 1
        if s.guardrail_hits:
            hits += s.guardrail_hits
    calls = inp = out = cached = reasoning = 0
    for u in usage:
        calls += u.calls
        inp += u.input_tokens
        out += u.output_tokens
        cached += u.cached_input_tokens
        reasoning += u.reasoning_tokens
    return (
        root.project,
        root.trace_id,
        root.span_id,
        root.name,
        # The root's own attributes first, then the earliest span that names one.
        _first_named(root, spans, _SERVICE),
        _first_named(root, spans, _AGENT),
        _first_named(root, spans, _SESSION),
        _first_named(root, spans, _USER),
        start,
        end,
        max(end - start, 0),
        len(spans),
        errors,
        calls,
        tools,
        inp,
        out,
        cached,
        reasoning,
        # Null when nothing reported a cost: unknown is not zero.
        sum(costs) if costs else None,
        hits,
        has_root,
        updated_at,
        # Tuples in field order: pyarrow builds the structs from them directly.
        critical,
        usage,
    )


def summary_table(rows: list[tuple]) -> pa.Table:
    """``summarise_trace`` rows → a ``SUMMARY_SCHEMA`` table."""
    return pa.Table.from_arrays(
        [pa.array(col, type=field.type) for col, field in zip(zip(*rows, strict=True), SUMMARY_SCHEMA, strict=True)]
        if rows else [pa.array([], type=field.type) for field in SUMMARY_SCHEMA],
        schema=SUMMARY_SCHEMA,
    )


def summarise_facts(facts: Iterable[SpanFacts], updated_at: int) -> pa.Table:
    """Summaries of the traces in one batch of spans, one trace at a time in Python: the reference that
    ``batch_summary`` is tested against, and what it uses for the traces it does not vectorise. A repeated
    span id keeps its first occurrence, as the store's dedup does."""
    by_trace: dict[str, dict[str, SpanFacts]] = {}
    for span in facts:
        by_trace.setdefault(span.trace_id, {}).setdefault(span.span_id, span)
    return summary_table([summarise_trace(list(spans.values()), updated_at) for spans in by_trace.values()])


def summarise_span_columns(columns: dict[str, list[Any]], updated_at: int) -> pa.Table:
    """``summarise_facts`` of spans given as one list per column (at least ``FACT_COLUMNS``)."""
    return summarise_facts(map(SpanFacts._make, zip(*(columns[c] for c in FACT_COLUMNS), strict=True)),
                           updated_at)
