"""Sessions: the traces (turns) that share a session id, as a conversation."""

from __future__ import annotations

from typing import Any

from trajscope.analysis.units import ns_to_ms
from trajscope.query.filters import RunFilter
from trajscope.query.serialise import trace_item
from trajscope.storage.interface import SpanStore
from trajscope.storage.schema import SUMMARY_COLUMN_NAMES

_TOTALS = """count(*) AS trace_count, sum(span_count) AS span_count, sum(error_count) AS error_count,
             sum(llm_calls) AS llm_calls, sum(tool_calls) AS tool_calls, sum(input_tokens) AS input_tokens,
             sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost_usd"""
_INTS = ("trace_count", "span_count", "error_count", "llm_calls", "tool_calls", "input_tokens", "output_tokens")


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    for key in _INTS:
        if key in row:
            row[key] = int(row[key] or 0)
    return row


def list_sessions(store: SpanStore, flt: RunFilter, user: str | None, limit: int,
                  after: tuple[int, str] | None) -> list[dict[str, Any]]:
    """Sessions newest activity first; ``after`` is (last_start_time_unix_nano, session_id) of the last item."""
    where = flt.traces("traces").add("session_id IS NOT NULL").add_if(user, "user_id = ?")
    having, params = "", list(where.params)
    if after is not None:
        having = "HAVING (max(start_time_unix_nano), session_id) < (?, ?)"
        params.extend(after)
    sql = f"""
        SELECT session_id, arg_min(project, start_time_unix_nano) AS project,
               arg_min(agent_name, start_time_unix_nano) AS agent_name,
               arg_min(user_id, start_time_unix_nano) AS user_id,
               min(start_time_unix_nano) AS start_time_unix_nano,
               max(start_time_unix_nano) AS last_start_time_unix_nano,
               max(end_time_unix_nano) AS end_time_unix_nano, {_TOTALS}
        FROM traces WHERE {where.sql()} GROUP BY session_id {having}
        ORDER BY last_start_time_unix_nano DESC, session_id DESC LIMIT ?"""
    rows = store.query(sql, [*params, limit]).to_pylist()
    for r in rows:
        r["duration_ms"] = ns_to_ms(r["end_time_unix_nano"] - r["start_time_unix_nano"])
        _clean(r)
    return rows


def get_session(store: SpanStore, session_id: str, project: str | None) -> dict[str, Any] | None:
    """The session's traces in time order with per-trace and total tokens, cost, duration and errors."""
    where = RunFilter(project=project).traces("traces").add("session_id = ?", session_id)
    rows = store.query(f"SELECT {', '.join(SUMMARY_COLUMN_NAMES)} FROM traces WHERE {where.sql()} "
                       "ORDER BY start_time_unix_nano, trace_id", where.params).to_pylist()
    if not rows:
        return None
    traces = [trace_item(r) for r in rows]
    costs = [t["cost_usd"] for t in traces if t["cost_usd"] is not None]
    totals = {
        "trace_count": len(traces),
        "span_count": sum(t["span_count"] for t in traces),
        "error_count": sum(t["error_count"] for t in traces),
        "llm_calls": sum(t["llm_calls"] for t in traces),
        "tool_calls": sum(t["tool_calls"] for t in traces),
        "input_tokens": sum(t["input_tokens"] for t in traces),
        "output_tokens": sum(t["output_tokens"] for t in traces),
        "cost_usd": sum(costs) if costs else None,
        "duration_ms": sum(t["duration_ms"] for t in traces),
        "wall_ms": ns_to_ms(max(r["end_time_unix_nano"] for r in rows)
                            - min(r["start_time_unix_nano"] for r in rows)),
    }
    return {"session_id": session_id, "user_id": traces[0]["user_id"], "agent_name": traces[0]["agent_name"],
            "traces": traces, "totals": totals}
