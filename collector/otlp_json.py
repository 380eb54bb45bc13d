"""OTLP/JSON → the same ``ExportTraceServiceRequest`` the protobuf path parses, then the same decoder.

The request is built by ``otlp_json_build`` (the message's C setters) where it can, else by
``json_format.ParseDict`` (~165 µs per span in Python), which also words every error.

OTLP/JSON differs from protobuf's generic JSON mapping in one way that matters here: trace and span ids
are hex, not base64. They are rewritten before handing the document to ``json_format``, which handles
the rest (lowerCamelCase or snake_case keys, 64-bit integers as strings or numbers, enum integers,
base64 ``bytesValue``). Unknown fields are ignored, as the specification requires.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from trajscope.collector.otlp_decode import DecodedBatch, InvalidRequest, decode_request
from trajscope.collector.otlp_json_build import Unsupported, build_request

_SPAN_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
_LINK_ID_KEYS = ("traceId", "spanId", "trace_id", "span_id")


def _list(obj: dict[str, Any], camel: str, snake: str) -> list[Any]:
    value = obj.get(camel, obj.get(snake))
    return value if isinstance(value, list) else []


def hex_ids_to_base64(obj: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    """Rewrite hex ids in place; return a problem description if one is not hex."""
    for key in keys:
        value = obj.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            return f"{key} must be a hex string"
        try:
            raw = binascii.unhexlify(value)
        except (binascii.Error, ValueError):
            return f"{key} {value[:40]!r} is not hex"
        obj[key] = base64.b64encode(raw).decode("ascii")
    return None


def json_document(body: bytes, message_name: str) -> dict[str, Any]:
    """An OTLP/JSON body as a dict (an empty body is an empty request); ``InvalidRequest`` otherwise."""
    try:
        doc = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidRequest(f"body must be a JSON object (an {message_name})")
    return doc


def decode_json_request(body: bytes, default_project: str = "default") -> DecodedBatch:
    """Decode an OTLP/JSON body. Spans with non-hex ids are rejected one by one (partial success)."""
    doc = json_document(body, "ExportTraceServiceRequest")
    rejected, messages = 0, []
    for r_index, rs in enumerate(_list(doc, "resourceSpans", "resource_spans")):
        if not isinstance(rs, dict):
            raise InvalidRequest(f"resourceSpans[{r_index}] must be an object")
        for s_index, ss in enumerate(_list(rs, "scopeSpans", "scope_spans")):
            if not isinstance(ss, dict):
                raise InvalidRequest(f"resourceSpans[{r_index}].scopeSpans[{s_index}] must be an object")
            kept = []
            for p_index, span in enumerate(_list(ss, "spans", "spans")):
                if not isinstance(span, dict):
                    raise InvalidRequest(
                        f"resourceSpans[{r_index}].scopeSpans[{s_index}].spans[{p_index}] must be an object")
                problem = hex_ids_to_base64(span, _SPAN_ID_KEYS)
                for link in _list(span, "links", "links"):
                    problem = problem or (isinstance(link, dict) and hex_ids_to_base64(link, _LINK_ID_KEYS))
                if problem:
                    rejected += 1
                    if len(messages) < 5:
                        messages.append(
                            f"resourceSpans[{r_index}].scopeSpans[{s_index}].spans[{p_index}]: {problem}")
                    continue
                kept.append(span)
            ss["spans"] = kept
    try:
        request = build_request(doc)
    except Unsupported:
        request = ExportTraceServiceRequest()
        try:
            json_format.ParseDict(doc, request, ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, TypeError) as exc:
            raise InvalidRequest(f"body is not a valid OTLP/JSON ExportTraceServiceRequest: {exc}") from exc
    # Serialised again for the columnar decoder: cheaper than the span-by-span walker it saves.
    batch = decode_request(request.SerializeToString(), default_project)
    if not rejected:
        return batch
    message = f"{rejected} span(s) with malformed ids rejected: " + "; ".join(messages)
    if batch.error_message:
        message += "; " + batch.error_message
    return DecodedBatch(batch.table, batch.rejected + rejected, message)


def encode_json_request(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """A request as OTLP/JSON (before ``orjson.dumps``), as the JavaScript SDK's exporter sends it:
    lowerCamelCase fields, ids in hex (not protobuf JSON's base64), enums as integers. For tests and
    benchmarks; the server only decodes."""
    doc = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in doc.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                for item in (span, *span.get("links", ())):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in item:
                            item[key] = base64.b64decode(item[key]).hex()
    return doc
