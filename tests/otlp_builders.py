"""Helpers that build OTLP protobuf requests for tests."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def any_value(value: Any) -> AnyValue:
    v = AnyValue()
    if value is None:
        return v
    if isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, int):
        v.int_value = value
    elif isinstance(value, float):
        v.double_value = value
    elif isinstance(value, bytes):
        v.bytes_value = value
    elif isinstance(value, list):
        v.array_value.values.extend(any_value(x) for x in value)
    elif isinstance(value, dict):
        v.kvlist_value.values.extend(KeyValue(key=k, value=any_value(x)) for k, x in value.items())
    else:
        v.string_value = str(value)
    return v


def kvs(attrs: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs.items()]


def make_span(name: str = "span", *, trace_id: bytes | None = None, span_id: bytes | None = None,
              parent: Span | bytes | None = None, start: int = 1_000_000_000, end: int = 2_000_000_000,
              attrs: dict[str, Any] | None = None, **fields: Any) -> Span:
    span = Span(name=name, trace_id=trace_id or os.urandom(16), span_id=span_id or os.urandom(8),
                start_time_unix_nano=start, end_time_unix_nano=end, **fields)
    if parent is not None:
        span.parent_span_id = parent.span_id if isinstance(parent, Span) else parent
    span.attributes.extend(kvs(attrs or {}))
    return span


def make_request(spans: list[Span], resource: dict[str, Any] | None = None,
                 scope_name: str = "tests") -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.extend(kvs(resource if resource is not None else {"service.name": "test-svc"}))
    ss = rs.scope_spans.add()
    ss.scope.name = scope_name
    ss.spans.extend(spans)
    return request
