"""OTLP log export requests (protobuf or OTLP/JSON) → rows of ``log_records``.

GenAI instrumentations send their events (``gen_ai.client.inference.operation.details``, evaluation and
guardrail results, the older per-message events) as log records carrying an event name and the trace and
span ids of the span they belong to. A record is refused, through partial success, only when it cannot be
stored: ids of the wrong length, or times past 2262; a record without ids is kept (listed with no trace).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pyarrow as pa
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from trajscope.analysis import guardrails
from trajscope.analysis.log_events import as_event
from trajscope.collector.anyvalue import any_value, key_values
from trajscope.collector.otlp_json import hex_ids_to_base64, json_document
from trajscope.collector.span_parts import (
    INT64_MAX,
    MAX_MESSAGES,
    ZERO_SPAN,
    ZERO_TRACE,
    DecodedBatch,
    InvalidRequest,
    dumps,
    resource_part,
)
from trajscope.storage.schema import LOG_SCHEMA

_ID_KEYS = ("traceId", "spanId", "trace_id", "span_id")
# Older instrumentations name the event in an attribute rather than the record's own field.
EVENT_NAME_ATTRIBUTES = ("event.name",)


def record_problem(record: Any) -> str | None:
    """Why a log record cannot be stored, or None."""
    if record.trace_id and len(record.trace_id) != 16:
        return f"trace_id must be empty or 16 bytes, got {len(record.trace_id)}"
    if record.span_id and len(record.span_id) != 8:
        return f"span_id must be empty or 8 bytes, got {len(record.span_id)}"
    if record.span_id and not record.trace_id:
        return "span_id without a trace_id"
    if record.time_unix_nano > INT64_MAX or record.observed_time_unix_nano > INT64_MAX:
        return "time beyond year 2262"
    return None


def _id(raw: bytes, zero: bytes) -> str | None:
    return raw.hex() if raw and raw != zero else None


def event_name_of(record_name: str, attrs: dict[str, Any]) -> str | None:
    if record_name:
        return record_name
    for key in EVENT_NAME_ATTRIBUTES:
        value = attrs.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def decode_logs_message(request: ExportLogsServiceRequest, project_default: str, digest: str) -> DecodedBatch:
    rows: dict[str, list[Any]] = {name: [] for name in LOG_SCHEMA.names}
    rejected, messages = 0, []
    now = time.time_ns()
    index = 0
    for r_index, resource_logs in enumerate(request.resource_logs):
        resource = resource_part(resource_logs.resource, resource_logs.schema_url, project_default)
        for s_index, scope_logs in enumerate(resource_logs.scope_logs):
            scope = scope_logs.scope
            for l_index, record in enumerate(scope_logs.log_records):
                index += 1
                problem = record_problem(record)
                if problem:
                    rejected += 1
                    if len(messages) < MAX_MESSAGES:
                        messages.append(f"resource_logs[{r_index}].scope_logs[{s_index}].log_records[{l_index}]: "
                                        f"{problem}")
                    continue
                attrs = key_values(record.attributes)
                body = any_value(record.body) if record.HasField("body") else None
                name = event_name_of(record.event_name, attrs)
                when = record.time_unix_nano or record.observed_time_unix_nano or now
                found = guardrails.checks({}, [as_event(name, when, attrs, body)], name or "log", "other")
                rows["project"].append(resource.project)
                rows["record_id"].append(f"{digest}:{index:06d}")
                rows["trace_id"].append(_id(record.trace_id, ZERO_TRACE))
                rows["span_id"].append(_id(record.span_id, ZERO_SPAN) if record.trace_id else None)
                rows["time_unix_nano"].append(when)
                rows["observed_time_unix_nano"].append(record.observed_time_unix_nano or None)
                rows["severity_number"].append(record.severity_number or None)
                rows["severity_text"].append(record.severity_text or None)
                rows["event_name"].append(name)
                rows["body"].append(None if body is None else dumps(body))
                rows["attributes"].append(dumps(attrs))
                rows["dropped_attributes_count"].append(record.dropped_attributes_count)
                rows["flags"].append(record.flags)
                rows["service_name"].append(resource.service)
                rows["resource_attributes"].append(resource.attributes_json)
                rows["scope_name"].append(scope.name or None)
                rows["scope_version"].append(scope.version or None)
                rows["guardrails"].append([c._asdict() for c in found] or None)
                rows["ingested_at_unix_nano"].append(now)
    table = pa.Table.from_pydict(rows, schema=LOG_SCHEMA)
    message = ""
    if rejected:
        more = f" (and {rejected - len(messages)} more)" if rejected > len(messages) else ""
        message = f"{rejected} log record(s) rejected: " + "; ".join(messages) + more
    return DecodedBatch(table, rejected, message)


def _digest(project: str, body: bytes) -> str:
    return hashlib.blake2b(project.encode() + b"\0" + body, digest_size=12).hexdigest()


def decode_logs(body: bytes, encoding: str, project: str = "default") -> DecodedBatch:
    """Decode one ``ExportLogsServiceRequest`` body (``encoding``: protobuf or json)."""
    request = ExportLogsServiceRequest()
    refused: list[str] = []
    if encoding == "json":
        refused = _parse_json(body, request)
    else:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise InvalidRequest(f"body is not a valid OTLP ExportLogsServiceRequest protobuf: {exc}") from exc
    decoded = decode_logs_message(request, project, _digest(project, body))
    if not refused:
        return decoded
    rejected = decoded.rejected + len(refused)
    message = f"{len(refused)} log record(s) with malformed ids rejected: " + "; ".join(refused[:MAX_MESSAGES])
    return DecodedBatch(decoded.table, rejected, message + ("; " + decoded.error_message if decoded.error_message
                                                           else ""))


def _parse_json(body: bytes, request: ExportLogsServiceRequest) -> list[str]:
    """Parse an OTLP/JSON body into ``request``; records whose ids are not hex are left out, each named in the
    returned list (partial success, as for spans)."""
    doc = json_document(body, "ExportLogsServiceRequest")
    refused: list[str] = []
    # OTLP/JSON ids are hex; protobuf's JSON mapping expects base64.
    for r_index, rl in enumerate(_items(doc, "resourceLogs", "resource_logs")):
        for s_index, sl in enumerate(_items(rl, "scopeLogs", "scope_logs")):
            kept = []
            for l_index, record in enumerate(_items(sl, "logRecords", "log_records")):
                if not isinstance(record, dict):
                    raise InvalidRequest("logRecords entries must be objects")
                problem = hex_ids_to_base64(record, _ID_KEYS)
                if problem:
                    refused.append(f"resourceLogs[{r_index}].scopeLogs[{s_index}].logRecords[{l_index}]: {problem}")
                    continue
                kept.append(record)
            if isinstance(sl, dict) and ("logRecords" in sl or "log_records" in sl):
                sl.pop("log_records", None)
                sl["logRecords"] = kept
    try:
        json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise InvalidRequest(f"body is not a valid OTLP/JSON ExportLogsServiceRequest: {exc}") from exc
    return refused


def _items(obj: Any, camel: str, snake: str) -> list[dict[str, Any]]:
    if not isinstance(obj, dict):
        raise InvalidRequest(f"{camel} entries must be objects")
    value = obj.get(camel, obj.get(snake))
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest(f"{camel} must be a list")
    return value


def logs_response(rejected: int, error_message: str) -> ExportLogsServiceResponse:
    response = ExportLogsServiceResponse()
    if rejected or error_message:
        response.partial_success.rejected_log_records = rejected
        response.partial_success.error_message = error_message
    return response
