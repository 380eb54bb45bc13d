"""What both OTLP decoders share: the batch they return, the span checks, and the parts of a request that
are not span attributes (resources, scopes, events, links), decoded with the official messages.

``otlp_decode`` walks a request span by span (the reference, and the path for OTLP/JSON);
``columnar_decode`` decodes the span attributes of a whole request at once (the protobuf hot path).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
import pyarrow as pa
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from trajscope.collector.anyvalue import key_values
from trajscope.collector.dialects import PROJECT_RESOURCE_KEYS

SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")
ZERO_TRACE = bytes(16)
ZERO_SPAN = bytes(8)
MAX_MESSAGES = 5


class InvalidRequest(ValueError):
    """The request as a whole is malformed: OTLP answers INVALID_ARGUMENT (gRPC) or 400 (HTTP)."""


@dataclass(frozen=True)
class DecodedBatch:
    """The accepted spans of one export request, and what was refused."""

    table: pa.Table
    rejected: int = 0
    error_message: str = ""

    @property
    def accepted(self) -> int:
        return self.table.num_rows


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


INT64_MAX = 2**63 - 1


def span_problem(span: Any) -> str | None:
    """Why a span cannot be stored, or None. Times past 2262 do not fit the int64 columns."""
    trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
    if len(trace_id) != 16:
        return f"trace_id must be 16 bytes, got {len(trace_id)}"
    if trace_id == ZERO_TRACE:
        return "trace_id is all zeros"
    if len(span_id) != 8:
        return f"span_id must be 8 bytes, got {len(span_id)}"
    if span_id == ZERO_SPAN:
        return "span_id is all zeros"
    if parent and len(parent) != 8:
        return f"parent_span_id must be empty or 8 bytes, got {len(parent)}"
    if span.start_time_unix_nano > INT64_MAX or span.end_time_unix_nano > INT64_MAX:
        return "start/end time beyond year 2262"
    return None


def events_of(events: Any) -> list[dict[str, Any]] | None:
    """A span's ``Event`` messages in typed-JSON form (None when there are none)."""
    if not events:
        return None
    out = []
    for ev in events:
        item: dict[str, Any] = {"time_unix_nano": ev.time_unix_nano, "name": ev.name,
                                "attributes": key_values(ev.attributes)}
        if ev.dropped_attributes_count:
            item["dropped_attributes_count"] = ev.dropped_attributes_count
        out.append(item)
    return out


def links_of(links: Any) -> list[dict[str, Any]] | None:
    """A span's ``Link`` messages in typed-JSON form (None when there are none)."""
    if not links:
        return None
    out = []
    for link in links:
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




class ResourcePart(NamedTuple):
    project: str
    service: str | None
    attributes_json: str
    dropped: int
    schema_url: str | None


def project_of(resource_attrs: dict[str, Any], default_project: str) -> str:
    """The project a resource names (``PROJECT_RESOURCE_KEYS``, the first non-empty string), else the default."""
    for key in PROJECT_RESOURCE_KEYS:
        value = resource_attrs.get(key)
        if isinstance(value, str) and value:
            return value
    return default_project


def resource_part(resource: Any, schema_url: str, default_project: str) -> ResourcePart:
    attrs = key_values(resource.attributes)
    service = attrs.get("service.name")
    return ResourcePart(project_of(attrs, default_project), service if isinstance(service, str) else None, dumps(attrs),
                        resource.dropped_attributes_count, schema_url or None)


class ScopePart(NamedTuple):
    name: str | None
    version: str | None
    attributes_json: str | None
    dropped: int
    schema_url: str | None


def scope_part(scope: Any, schema_url: str) -> ScopePart:
    return ScopePart(scope.name or None, scope.version or None,
                     dumps(key_values(scope.attributes)) if scope.attributes else None,
                     scope.dropped_attributes_count, schema_url or None)


# Cached by their raw bytes (with the schema URL and default project): parts are immutable, and a workload
# repeats the same few resources and scopes in every request.
@functools.lru_cache(maxsize=4096)
def resource_part_of(raw: bytes, schema_url: str, default_project: str) -> ResourcePart:
    """``resource_part`` of a serialized ``Resource`` (raises ``DecodeError`` on malformed bytes)."""
    return resource_part(Resource.FromString(raw), schema_url, default_project)


@functools.lru_cache(maxsize=4096)
def scope_part_of(raw: bytes, schema_url: str) -> ScopePart:
    """``scope_part`` of a serialized ``InstrumentationScope``."""
    return scope_part(InstrumentationScope.FromString(raw), schema_url)


def rejection_message(rejected: int, messages: list[str]) -> str:
    if not rejected:
        return ""
    more = f" (and {rejected - len(messages)} more)" if rejected > len(messages) else ""
    return f"{rejected} span(s) rejected: " + "; ".join(messages) + more


def problem_message(r_index: int, s_index: int, p_index: int, problem: str) -> str:
    return f"resource_spans[{r_index}].scope_spans[{s_index}].spans[{p_index}]: {problem}"
