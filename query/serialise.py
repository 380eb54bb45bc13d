"""Stored rows → API objects: ids stay lowercase hex, times ``*_unix_nano`` ints plus ``duration_ms``."""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
from fastapi.responses import JSONResponse

from trajscope.analysis.units import ns_to_ms
from trajscope.storage.schema import JSON_COLUMNS

TRACE_LIST_FIELDS = (
    "trace_id", "project", "root_span_id", "root_name", "service_name", "agent_name", "session_id",
    "user_id", "start_time_unix_nano", "end_time_unix_nano", "span_count", "error_count", "llm_calls",
    "tool_calls", "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "cost_usd",
    "guardrail_hits", "complete",
)
_EMPTY_LIST_COLUMNS = frozenset({"events", "links"})


class OrjsonResponse(JSONResponse):
    """JSON via orjson: span attributes can be megabytes, and orjson is several times faster."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def trace_item(row: dict[str, Any]) -> dict[str, Any]:
    item = {name: row[name] for name in TRACE_LIST_FIELDS}
    item["duration_ms"] = ns_to_ms(row["duration_ns"])
    return item


def span_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Every stored field of each span; JSON columns parsed (typed JSON, see ``collector.anyvalue``), empty
    events/links as ``[]``, plus ``duration_ms``. Column by column: several times faster than per row."""
    columns = table.to_pydict()
    for name, values in columns.items():
        if name in JSON_COLUMNS:
            empty = [] if name in _EMPTY_LIST_COLUMNS else {}
            columns[name] = [orjson.loads(v) if v is not None else empty for v in values]
    if "duration_ns" in columns:
        columns["duration_ms"] = [ns_to_ms(ns) for ns in columns["duration_ns"]]
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]
