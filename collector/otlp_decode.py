"""The reference OTLP walker: ``ExportTraceServiceRequest`` → Arrow table of normalised span records.

``decode_request`` (the gRPC and HTTP/protobuf bodies) first tries ``columnar_decode``, which decodes the
span attributes of the whole request at once; requests it does not read (non-canonical attribute
encodings, malformed input) come here. OTLP/JSON is first turned into the same protobuf message by
``otlp_json`` and walked here. Pure: no I/O, so it can run in a worker thread or process.

Invalid spans (ids of the wrong length or all zero) are rejected one by one and reported through OTLP
partial success; the rest of the request is kept. A request that cannot be parsed at all raises
``InvalidRequest``.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from trajscope.analysis import guardrails, retrieval
from trajscope.analysis.pricing import span_cost
from trajscope.collector import columnar_decode, limits
from trajscope.collector.anyvalue import key_values
from trajscope.collector.costing import prices
from trajscope.collector.limits import within_export_limit
from trajscope.collector.normalise import normalise
from trajscope.collector.ranges import bounded
from trajscope.collector.span_parts import (
    MAX_MESSAGES,
    SPAN_KINDS,
    STATUS_CODES,
    ZERO_SPAN,
    DecodedBatch,
    InvalidRequest,
    dumps,
    events_of,
    links_of,
    problem_message,
    rejection_message,
    resource_part,
    scope_part,
    span_problem,
)
from trajscope.storage.load_marks import UNSTAMPED
from trajscope.storage.schema import SPAN_COLUMNS, SPAN_SCHEMA

__all__ = ["DecodedBatch", "InvalidRequest", "decode_message", "decode_request", "parse_request", "use_decoder"]


def parse_request(payload: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(payload)
    except DecodeError as exc:
        raise InvalidRequest(f"body is not a valid OTLP ExportTraceServiceRequest protobuf: {exc}") from exc
    return request


_columnar = True


def use_decoder(name: str) -> None:
    """``columnar`` (default) or ``reference``: which decoder ``decode_request`` uses in this process."""
    global _columnar
    if name not in ("columnar", "reference"):
        raise ValueError(f"unknown decoder {name!r}")
    _columnar = name == "columnar"


def decode_request(payload: bytes, default_project: str = "default") -> DecodedBatch:
    """Decode serialized protobuf bytes (the gRPC and HTTP/protobuf body; OTLP/JSON comes here too), numbers
    out of range clamped and flagged (``ranges``), spans cut to the size limits (``limits``)."""
    batch = columnar_decode.decode_request(payload, default_project) if _columnar else None
    if batch is None:
        batch = reference_decode_request(payload, default_project)
    table = batch.table
    accepted, rejected, message = within_export_limit(table.num_rows, batch.rejected, batch.error_message,
                                                      limits.SPANS_PER_EXPORT)
    if accepted < table.num_rows:
        table = table.slice(0, accepted)
    return DecodedBatch(limits.limited(bounded(table)), rejected, message)


def reference_decode_request(payload: bytes, default_project: str = "default") -> DecodedBatch:
    """Decode with the reference walker only (what ``columnar_decode`` is tested against)."""
    return decode_message(parse_request(payload), default_project)


def decode_message(request: ExportTraceServiceRequest, default_project: str = "default") -> DecodedBatch:
    """Walk resource → scope → span once, producing one row per valid span."""
    rows: list[tuple[Any, ...]] = []
    rejected = 0
    messages: list[str] = []
    table = prices()
    for r_index, resource_spans in enumerate(request.resource_spans):
        res = resource_part(resource_spans.resource, resource_spans.schema_url, default_project)
        for s_index, scope_spans in enumerate(resource_spans.scope_spans):
            scope = scope_part(scope_spans.scope, scope_spans.schema_url)
            for p_index, span in enumerate(scope_spans.spans):
                problem = span_problem(span)
                if problem:
                    rejected += 1
                    if len(messages) < MAX_MESSAGES:
                        messages.append(problem_message(r_index, s_index, p_index, problem))
                    continue
                trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
                attrs = key_values(span.attributes)
                events = events_of(span.events)
                links = links_of(span.links)
                norm = normalise(span.name, attrs, events)
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                cost = span_cost(table, norm.cost_usd, norm.response_model or norm.request_model, start,
                                 norm.input_tokens, norm.output_tokens, norm.cached_input_tokens,
                                 norm.cache_creation_input_tokens)
                found = guardrails.checks(attrs, events, span.name, norm.category)
                step = (retrieval.retrieval(attrs, events, norm.category, span.name)
                        if retrieval.is_candidate(norm.category, (e["name"] for e in events or ())) else None)
                status = span.status
                rows.append((
                    res.project,
                    trace_id.hex(),
                    span_id.hex(),
                    # An all-zero parent is how some SDKs say "no parent".
                    parent.hex() if parent and parent != ZERO_SPAN else None,
                    span.trace_state or None,
                    span.flags,
                    span.name,
                    SPAN_KINDS[span.kind] if 0 <= span.kind < len(SPAN_KINDS) else str(span.kind),
                    res.service,
                    start,
                    end,
                    max(end - start, 0),
                    STATUS_CODES[status.code] if 0 <= status.code < len(STATUS_CODES) else str(status.code),
                    status.message or None,
                    *norm[:-1],
                    *cost,
                    [c._asdict() for c in found] if found else None,
                    guardrails.hits(found) if found else None,
                    retrieval.stored(step) if step else None,
                    dumps(attrs),
                    span.dropped_attributes_count,
                    dumps(events) if events else None,
                    span.dropped_events_count,
                    dumps(links) if links else None,
                    span.dropped_links_count,
                    *res[2:],
                    *scope,
                    UNSTAMPED,  # the store stamps it at load
                ))
    return DecodedBatch(rows_to_table(rows), rejected, rejection_message(rejected, messages))


def rows_to_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    """Row tuples in ``SPAN_COLUMNS`` order → an Arrow table with ``SPAN_SCHEMA``."""
    if not rows:
        return SPAN_SCHEMA.empty_table()
    columns = list(zip(*rows, strict=True))
    arrays = [pa.array(col, type=typ) for col, (_, typ, _, _) in zip(columns, SPAN_COLUMNS, strict=True)]
    return pa.Table.from_arrays(arrays, schema=SPAN_SCHEMA)
