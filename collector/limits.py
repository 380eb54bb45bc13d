"""Size limits on what one span may carry, applied to every decoded batch after ``ranges``: past a limit the
span is kept, cut down to the limit, and says so — ``trajscope.truncated`` lists what was cut — and OTLP's own
dropped counts grow by what was dropped. The defaults keep real LLM payloads whole (long prompts, many
flattened messages); they exist so that one hostile span cannot take the server's memory.

Only spans whose stored JSON is long enough to possibly pass a limit are parsed (a per-row length check in
Arrow), so ordinary batches pass untouched. Spans per export are limited where the verdict is made
(``validate`` and ``otlp_decode``: partial success); nesting of values deeper than the protobuf runtime's
100 levels is refused by the parser (INVALID_ARGUMENT).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

TRUNCATED = "trajscope.truncated"
_MIN_ATTRIBUTE_BYTES = 6  # '"k":0,' — the shortest attribute in the stored JSON
_MIN_EVENT_BYTES = 40  # '{"time_unix_nano":0,"name":"","attributes":{}},'


@dataclass(frozen=True)
class SpanLimits:
    attributes: int = 1024  # per span (the OTel SDKs' default is 128)
    events: int = 1024  # per span
    value_chars: int = 8 * 1024 * 1024  # per string value: a whole long-context prompt fits


DEFAULT = SpanLimits()
SPANS_PER_EXPORT = 100_000


def limited(table: pa.Table, limits: SpanLimits = DEFAULT) -> pa.Table:
    """``table`` (``SPAN_SCHEMA``) with every span within ``limits``; returned as it is when none passes."""
    attributes, events = table.column("attributes"), table.column("events")
    attr_len = pc.fill_null(pc.binary_length(attributes), 0)
    event_len = pc.fill_null(pc.binary_length(events), 0)
    threshold = min(limits.value_chars, limits.attributes * _MIN_ATTRIBUTE_BYTES)
    suspect = pc.or_(pc.greater(attr_len, threshold),
                     pc.greater(event_len, min(limits.value_chars, limits.events * _MIN_EVENT_BYTES)))
    rows = pc.indices_nonzero(suspect).to_pylist()
    if not rows:
        return table
    attr_values, event_values = attributes.to_pylist(), events.to_pylist()
    dropped_attrs = table.column("dropped_attributes_count").to_pylist()
    dropped_events = table.column("dropped_events_count").to_pylist()
    changed = False
    for row in rows:
        attrs = orjson.loads(attr_values[row]) if attr_values[row] else {}
        evs = orjson.loads(event_values[row]) if event_values[row] else []
        cut: dict[str, int] = {}
        if len(attrs) > limits.attributes:
            cut["attributes"] = len(attrs) - limits.attributes
            attrs = dict(list(attrs.items())[:limits.attributes])
            dropped_attrs[row] += cut["attributes"]
        if len(evs) > limits.events:
            cut["events"] = len(evs) - limits.events
            evs = evs[:limits.events]
            dropped_events[row] += cut["events"]
        values = _cut_values(attrs, limits.value_chars) + sum(
            _cut_values(e.get("attributes") or {}, limits.value_chars) for e in evs if isinstance(e, dict))
        if values:
            cut["values"] = values
        if cut:
            attrs[TRUNCATED] = cut
            attr_values[row] = orjson.dumps(attrs).decode()
            event_values[row] = orjson.dumps(evs).decode() if evs else None
            changed = True
    if not changed:
        return table
    for name, values in (("attributes", attr_values), ("events", event_values),
                         ("dropped_attributes_count", dropped_attrs), ("dropped_events_count", dropped_events)):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, table.schema.field(index), pa.array(values, table.schema.field(index).type))
    return table


def _cut_values(attrs: dict[str, Any], limit: int) -> int:
    """Cut every string value of ``attrs`` (nested ones too) to ``limit`` characters; how many were cut."""
    count = 0
    for key, value in attrs.items():
        if isinstance(value, str):
            if len(value) > limit:
                attrs[key] = value[:limit]
                count += 1
        elif isinstance(value, dict):
            count += _cut_values(value, limit)
        elif isinstance(value, list):
            holder = dict(enumerate(value))
            count += _cut_values(holder, limit)  # type: ignore[arg-type]
            value[:] = [holder[i] for i in range(len(value))]
    return count


def within_export_limit(accepted: int, rejected: int, message: str,
                        limit: int = SPANS_PER_EXPORT) -> tuple[int, int, str]:
    """An export's (accepted, rejected, partial-success message) once its valid spans past ``limit`` are
    refused: the first ``limit`` valid spans, in the request's order, are kept (``validate`` answers this
    before the decode, which keeps the same ones)."""
    if accepted <= limit:
        return accepted, rejected, message
    excess = accepted - limit
    note = f"{excess} span(s) over the limit of {limit} spans per export rejected"
    return limit, rejected + excess, f"{message}; {note}" if message else note
