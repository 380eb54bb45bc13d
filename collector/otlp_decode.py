"""The one OTLP walker: ``ExportTraceServiceRequest`` → Arrow table of normalised span records.

Shared by the gRPC and HTTP receivers (OTLP/JSON is first turned into the same protobuf message by
``otlp_json``). Pure: no I/O, so it can run in a worker thread or process.

Invalid spans (ids of the wrong length or all zero) are rejected one by one and reported through OTLP
partial success; the rest of the request is kept. A request that cannot be parsed at all raises
``InvalidRequest``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from trajscope.analysis import guardrails
from trajscope.analysis.pricing import span_cost
from trajscope.collector.anyvalue import key_values
from trajscope.collector.costing import prices
from trajscope.collector.dialects import PROJECT_RESOURCE_KEYS
from trajscope.collector.normalise import normalise
from trajscope.storage.schema import SPAN_COLUMNS, SPAN_SCHEMA
from trajscope.storage.trace_summary import summarise_span_rows

SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_MAX_MESSAGES = 5


class InvalidRequest(ValueError):
    """The request as a whole is malformed: OTLP answers INVALID_ARGUMENT (gRPC) or 400 (HTTP)."""


@dataclass(frozen=True)
class DecodedBatch:
    """The accepted spans of one export request, and what was refused."""

    table: pa.Table
    rejected: int = 0
    error_message: str = ""
    # Per-trace summaries of just these spans (``trace_summary.summarise_span_rows``), when asked for.
    summaries: pa.Table | None = None

    @property
    def accepted(self) -> int:
        return self.table.num_rows


def parse_request(payload: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(payload)
    except DecodeError as exc:
        raise InvalidRequest(f"body is not a valid OTLP ExportTraceServiceRequest protobuf: {exc}") from exc
    return request


def decode_request(payload: bytes, default_project: str = "default", *, summaries: bool = False) -> DecodedBatch:
    """Decode serialized protobuf bytes (the gRPC and HTTP/protobuf body)."""
    return decode_message(parse_request(payload), default_project, summaries=summaries)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


_INT64_MAX = 2**63 - 1


def _span_problem(span: Any) -> str | None:
    """Why a span cannot be stored, or None. Times past 2262 do not fit the int64 columns."""
    trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
    if len(trace_id) != 16:
        return f"trace_id must be 16 bytes, got {len(trace_id)}"
    if trace_id == _ZERO_TRACE:
        return "trace_id is all zeros"
    if len(span_id) != 8:
        return f"span_id must be 8 bytes, got {len(span_id)}"
    if span_id == _ZERO_SPAN:
        return "span_id is all zeros"
    if parent and len(parent) != 8:
        return f"parent_span_id must be empty or 8 bytes, got {len(parent)}"
    if span.start_time_unix_nano > _INT64_MAX or span.end_time_unix_nano > _INT64_MAX:
        return "start/end time beyond year 2262"
    return None


def _events(span: Any) -> list[dict[str, Any]] | None:
    if not span.events:
        return None
    out = []
    for ev in span.events:
        item: dict[str, Any] = {"time_unix_nano": ev.time_unix_nano, "name": ev.name,
                                "attributes": key_values(ev.attributes)}
        if ev.dropped_attributes_count:
            item["dropped_attributes_count"] = ev.dropped_attributes_count
        out.append(item)
    return out


def _links(span: Any) -> list[dict[str, Any]] | None:
    if not span.links:
        return None
    out = []
    for link in span.links:
        item: dict[str, Any] = {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex(),
                                "attributes": key_values(link.attributes)}
        if link.trace_state:
            item["trace_state"] = link.trace_state
        if link.flags:
            item["flags"] = link.flags
        if link.dropped_attributes_count:
            item["dropped_attributes_count"] = link.dropped_attributes_count
        out.append(item)
    return out


def decode_message(request: ExportTraceServiceRequest, default_project: str = "default", *,
                   summaries: bool = False) -> DecodedBatch:
    """Walk resource → scope → span once, producing one row per valid span (and, with ``summaries``,
    the per-trace summaries of those rows)."""
    rows: list[tuple[Any, ...]] = []
    rejected = 0
    messages: list[str] = []
    ingested_at = time.time_ns()
    table = prices()
    for r_index, resource_spans in enumerate(request.resource_spans):
        resource = resource_spans.resource
        res_attrs = key_values(resource.attributes)
        res_json = _dumps(res_attrs)
        service = res_attrs.get("service.name")
        service = service if isinstance(service, str) else None
        project = default_project
        for key in PROJECT_RESOURCE_KEYS:
            value = res_attrs.get(key)
            if isinstance(value, str) and value:
                project = value
                break
        res_dropped = resource.dropped_attributes_count
        res_schema = resource_spans.schema_url or None
        for s_index, scope_spans in enumerate(resource_spans.scope_spans):
            scope = scope_spans.scope
            scope_attrs = _dumps(key_values(scope.attributes)) if scope.attributes else None
            scope_name = scope.name or None
            scope_version = scope.version or None
            scope_dropped = scope.dropped_attributes_count
            scope_schema = scope_spans.schema_url or None
            for p_index, span in enumerate(scope_spans.spans):
                problem = _span_problem(span)
                if problem:
                    rejected += 1
                    if len(messages) < _MAX_MESSAGES:
                        messages.append(
                            f"resource_spans[{r_index}].scope_spans[{s_index}].spans[{p_index}]: {problem}"
                        )
                    continue
                trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
                attrs = key_values(span.attributes)
                events = _events(span)
                links = _links(span)
                norm = normalise(span.name, attrs, events)
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                cost = span_cost(table, norm.cost_usd, norm.response_model or norm.request_model, start,
                                 norm.input_tokens, norm.output_tokens, norm.cached_input_tokens,
                                 norm.cache_creation_input_tokens)
                found = guardrails.checks(attrs, events, span.name, norm.category)
                status = span.status
                rows.append((
                    project,
                    trace_id.hex(),
                    span_id.hex(),
                    # An all-zero parent is how some SDKs say "no parent".
                    parent.hex() if parent and parent != _ZERO_SPAN else None,
                    span.trace_state or None,
                    span.flags,
                    span.name,
                    SPAN_KINDS[span.kind] if 0 <= span.kind < len(SPAN_KINDS) else str(span.kind),
                    service,
                    start,
                    end,
                    max(end - start, 0),
                    STATUS_CODES[status.code] if 0 <= status.code < len(STATUS_CODES) else str(status.code),
                    status.message or None,
                    *norm[:-1],
                    *cost,
                    [c._asdict() for c in found] if found else None,
                    guardrails.hits(found) if found else None,
                    _dumps(attrs),
                    span.dropped_attributes_count,
                    _dumps(events) if events else None,
                    span.dropped_events_count,
                    _dumps(links) if links else None,
                    span.dropped_links_count,
                    res_json,
                    res_dropped,
                    res_schema,
                    scope_name,
                    scope_version,
                    scope_attrs,
                    scope_dropped,
                    scope_schema,
                    ingested_at,
                ))
    message = ""
    if rejected:
        more = f" (and {rejected - len(messages)} more)" if rejected > len(messages) else ""
        message = f"{rejected} span(s) rejected: " + "; ".join(messages) + more
    return DecodedBatch(rows_to_table(rows), rejected, message,
                        summarise_span_rows(rows, ingested_at) if summaries else None)


def rows_to_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    """Row tuples in ``SPAN_COLUMNS`` order → an Arrow table with ``SPAN_SCHEMA``."""
    if not rows:
        return SPAN_SCHEMA.empty_table()
    columns = list(zip(*rows, strict=True))
    arrays = [pa.array(col, type=typ) for col, (_, typ, _, _) in zip(columns, SPAN_COLUMNS, strict=True)]
    return pa.Table.from_arrays(arrays, schema=SPAN_SCHEMA)
