"""A trace's OTLP log records read as what they are: events of the spans they name.

Applied when a trace is read, so it holds whichever of span and record arrived first. A record naming a span
of the trace joins that span's ``events`` (in time order, marked ``"source": "log"``), where everything that
reads events — messages, tool calls, guardrail and evaluation results — finds it. The other records (no span
named, or a span that never arrived) are returned to be listed with the trace.
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa

from trajscope.collector.anyvalue import TAGS


def as_event(event_name: str | None, time_unix_nano: int, attrs: dict[str, Any], body: Any) -> dict[str, Any]:
    """A log record in the shape of a span event, read exactly like one. A body that is a map contributes its
    entries where the attributes lack them (older GenAI events put the message there); any other body is
    kept as ``body``."""
    merged = dict(attrs)
    if isinstance(body, dict) and len(body) == 1 and "$kvlist" in body:
        body = body["$kvlist"]
    if isinstance(body, dict) and not (len(body) == 1 and next(iter(body)) in TAGS):
        for key, value in body.items():
            merged.setdefault(key, value)
    elif body is not None:
        merged.setdefault("body", body)
    return {"time_unix_nano": time_unix_nano, "name": event_name or "log", "attributes": merged,
            "source": "log"}


def record_dicts(logs: pa.Table) -> list[dict[str, Any]]:
    """Log rows as API records: JSON columns parsed."""
    rows = logs.to_pylist()
    for row in rows:
        row["attributes"] = orjson.loads(row["attributes"]) if row["attributes"] else {}
        row["body"] = orjson.loads(row["body"]) if row["body"] is not None else None
        row["resource_attributes"] = orjson.loads(row["resource_attributes"]) if row["resource_attributes"] else {}
    return rows


def attach(spans: pa.Table, logs: pa.Table) -> tuple[pa.Table, list[dict[str, Any]]]:
    """(``spans`` with each record that names one of them in its ``events``, the records left over)."""
    if logs.num_rows == 0:
        return spans, []
    records = record_dicts(logs)
    if "events" not in spans.column_names or "span_id" not in spans.column_names:
        return spans, records
    row_of: dict[str, int] = {}
    for i, span_id in enumerate(spans.column("span_id").to_pylist()):
        row_of.setdefault(span_id, i)
    added: dict[int, list[dict[str, Any]]] = {}
    left: list[dict[str, Any]] = []
    for record in records:
        row = row_of.get(record["span_id"]) if record["span_id"] else None
        if row is None:
            left.append(record)
            continue
        added.setdefault(row, []).append(as_event(record["event_name"], record["time_unix_nano"],
                                                  record["attributes"], record["body"]))
    if not added:
        return spans, left
    events = spans.column("events").to_pylist()
    for row, extra in added.items():
        merged = (orjson.loads(events[row]) if events[row] else []) + extra
        merged.sort(key=lambda e: e.get("time_unix_nano") or 0)
        events[row] = orjson.dumps(merged).decode()
    index = spans.column_names.index("events")
    return spans.set_column(index, spans.field(index), pa.array(events, spans.schema.field(index).type)), left
