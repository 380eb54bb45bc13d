"""An OTLP/JSON document (already parsed by orjson, ids already base64) → ``ExportTraceServiceRequest``,
through the message's C setters instead of ``json_format.ParseDict``.

``ParseDict`` walks the descriptors in Python, most of an OTLP/JSON export's cost (docs/performance.md).
This builder handles the documents SDKs send — the fields of the OTLP trace request by their JSON or proto
names, 64-bit integers as numbers or digit strings, enums as integers — and
raises ``Unsupported`` for anything else it meets (enum names, special float strings, fields it does not
set, a value of the wrong type), so the caller hands that document to ``ParseDict`` and its answer,
error included, stays the reference one. Unknown keys are ignored, as the specification requires.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class Unsupported(Exception):
    """This document needs the reference parser."""


@dataclass(frozen=True)
class _Shape:
    """A message's field names: those this builder reads (JSON and proto forms), and all it has."""

    handled: frozenset[str]
    known: frozenset[str]


def _shape(message: type[Message], *read: str) -> _Shape:
    """``message``'s shape when the builder reads the fields named (proto names) ``read``."""
    fields = message.DESCRIPTOR.fields_by_name
    return _Shape(frozenset(n for name in read for n in (name, fields[name].json_name)),
                  frozenset(n for f in message.DESCRIPTOR.fields for n in (f.name, f.json_name)))


def _check(obj: Any, shape: _Shape) -> dict[str, Any]:
    """``obj`` as a dict whose proto fields are all ones this builder sets, each under one name only (the
    reference parser refuses a field given by both its JSON and its proto name; this builder would read one)."""
    if not isinstance(obj, dict):
        raise Unsupported
    keys = obj.keys()
    if not keys <= shape.handled and (keys & shape.known) - shape.handled:
        raise Unsupported
    if not keys.isdisjoint(_SNAKE) and any(_CAMEL_OF[k] in keys for k in keys & _SNAKE):
        raise Unsupported
    return obj


_REQ = ExportTraceServiceRequest
_RS = _REQ.DESCRIPTOR.fields_by_name["resource_spans"].message_type._concrete_class
_SS = _RS.DESCRIPTOR.fields_by_name["scope_spans"].message_type._concrete_class
_SPAN = _SS.DESCRIPTOR.fields_by_name["spans"].message_type._concrete_class
_RESOURCE = _RS.DESCRIPTOR.fields_by_name["resource"].message_type._concrete_class
_SCOPE = _SS.DESCRIPTOR.fields_by_name["scope"].message_type._concrete_class
_EVENT = _SPAN.DESCRIPTOR.fields_by_name["events"].message_type._concrete_class
_LINK = _SPAN.DESCRIPTOR.fields_by_name["links"].message_type._concrete_class
_STATUS = _SPAN.DESCRIPTOR.fields_by_name["status"].message_type._concrete_class
_KV = _SPAN.DESCRIPTOR.fields_by_name["attributes"].message_type._concrete_class
_ANY = _KV.DESCRIPTOR.fields_by_name["value"].message_type._concrete_class

# Proto names that differ from their JSON name, and that JSON name.
_CAMEL_OF = {f.name: f.json_name for m in (_REQ, _RS, _SS, _SPAN, _RESOURCE, _SCOPE, _EVENT, _LINK, _STATUS, _KV, _ANY)
             for f in m.DESCRIPTOR.fields if f.name != f.json_name}
_SNAKE = frozenset(_CAMEL_OF)


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Unsupported
    return value


def _int(value: Any) -> int:
    """A JSON integer, or a 64-bit one sent as a string of digits."""
    if type(value) is int:
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit() and value.isascii():
        return int(value)
    raise Unsupported


def _bytes(value: Any) -> bytes:
    if not isinstance(value, str):
        raise Unsupported
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Unsupported from None


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise Unsupported
    return value


def _set_value(target: Any, doc: Any) -> None:
    """Fill an ``AnyValue`` from its JSON form."""
    value = _check(doc, _ANY_SHAPE)
    if len(value) != 1:  # none set, or several (the reference parser says which is an error)
        if not value:
            return
        raise Unsupported
    ((key, item),) = value.items()
    if item is None:
        raise Unsupported
    if key in ("stringValue", "string_value"):
        target.string_value = _str(item)
    elif key in ("intValue", "int_value"):
        target.int_value = _int(item)
    elif key in ("boolValue", "bool_value"):
        if type(item) is not bool:
            raise Unsupported
        target.bool_value = item
    elif key in ("doubleValue", "double_value"):
        if type(item) not in (int, float):
            raise Unsupported
        target.double_value = item
    elif key in ("arrayValue", "array_value"):
        array = target.array_value
        array.SetInParent()
        for element in _list(_check(item, _LIST_SHAPE).get("values")):
            _set_value(array.values.add(), element)
    elif key in ("kvlistValue", "kvlist_value"):
        kvlist = target.kvlist_value
        kvlist.SetInParent()
        _add_attributes(kvlist.values, _check(item, _LIST_SHAPE).get("values"))
    elif key in ("bytesValue", "bytes_value"):
        target.bytes_value = _bytes(item)
    else:  # an unknown key alone: ignored, as the reference parser does
        return


def _add_attributes(target: Any, docs: Any) -> None:
    for doc in _list(docs):
        kv = _check(doc, _KV_SHAPE)
        entry = target.add()
        key = kv.get("key")
        if key is not None:
            entry.key = _str(key)
        value = kv.get("value")
        if value is not None:
            entry.value.SetInParent()
            _set_value(entry.value, value)


def _set_fields(target: Any, doc: dict[str, Any], fields: tuple[tuple[str, str, Any], ...]) -> None:
    """Scalar fields, each by its JSON or proto name (the attribute name), converted."""
    for camel, snake, convert in fields:
        value = doc.get(camel)
        if value is None:
            value = doc.get(snake)
        if value is not None:
            setattr(target, snake, convert(value))


def _field(name: str, convert: Any) -> tuple[str, str, Any]:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest), name, convert


_DROPPED = _field("dropped_attributes_count", _int)
_SPAN_FIELDS = (_field("trace_id", _bytes), _field("span_id", _bytes), _field("parent_span_id", _bytes),
                _field("trace_state", _str), _field("name", _str), _field("start_time_unix_nano", _int),
                _field("end_time_unix_nano", _int), _field("flags", _int), _field("kind", _int), _DROPPED,
                _field("dropped_events_count", _int), _field("dropped_links_count", _int))
_EVENT_FIELDS = (_field("time_unix_nano", _int), _field("name", _str), _DROPPED)
_LINK_FIELDS = (_field("trace_id", _bytes), _field("span_id", _bytes), _field("trace_state", _str),
                _field("flags", _int), _DROPPED)
_STATUS_FIELDS = (_field("message", _str), _field("code", _int))
_SCOPE_FIELDS = (_field("name", _str), _field("version", _str), _DROPPED)
_RESOURCE_FIELDS = (_DROPPED,)
_SCHEMA_URL = (_field("schema_url", _str),)


def _reads(fields: tuple[tuple[str, str, Any], ...]) -> tuple[str, ...]:
    return tuple(snake for _, snake, _ in fields)


_REQ_SHAPE = _shape(_REQ, "resource_spans")
_RS_SHAPE = _shape(_RS, "resource", "scope_spans", "schema_url")
_SS_SHAPE = _shape(_SS, "scope", "spans", "schema_url")
_RESOURCE_SHAPE = _shape(_RESOURCE, "attributes", *_reads(_RESOURCE_FIELDS))
_SCOPE_SHAPE = _shape(_SCOPE, "attributes", *_reads(_SCOPE_FIELDS))
_SPAN_SHAPE = _shape(_SPAN, "attributes", "events", "links", "status", *_reads(_SPAN_FIELDS))
_EVENT_SHAPE = _shape(_EVENT, "attributes", *_reads(_EVENT_FIELDS))
_LINK_SHAPE = _shape(_LINK, "attributes", *_reads(_LINK_FIELDS))
_STATUS_SHAPE = _shape(_STATUS, *_reads(_STATUS_FIELDS))
_KV_SHAPE = _shape(_KV, "key", "value")
_ANY_SHAPE = _shape(_ANY, "string_value", "bool_value", "int_value", "double_value", "array_value",
                    "kvlist_value", "bytes_value")
# ArrayValue and KeyValueList: one field, ``values``.
_LIST_SHAPE = _shape(_ANY.DESCRIPTOR.fields_by_name["array_value"].message_type._concrete_class, "values")


def _fill(target: Any, doc: dict[str, Any], fields: tuple[tuple[str, str, Any], ...]) -> None:
    """A message with attributes: its scalar fields and its attributes."""
    _set_fields(target, doc, fields)
    _add_attributes(target.attributes, doc.get("attributes"))


def _fill_span(span: Any, doc: dict[str, Any]) -> None:
    _fill(span, doc, _SPAN_FIELDS)
    for event in _list(doc.get("events")):
        _fill(span.events.add(), _check(event, _EVENT_SHAPE), _EVENT_FIELDS)
    for link in _list(doc.get("links")):
        _fill(span.links.add(), _check(link, _LINK_SHAPE), _LINK_FIELDS)
    status = doc.get("status")
    if status is not None:
        span.status.SetInParent()
        _set_fields(span.status, _check(status, _STATUS_SHAPE), _STATUS_FIELDS)


def _fill_part(target: Any, doc: Any, shape: _Shape, fields: tuple[tuple[str, str, Any], ...]) -> None:
    """A resource or a scope, present even when empty (as the reference parser leaves it)."""
    if doc is not None:
        target.SetInParent()
        _fill(target, _check(doc, shape), fields)


def build_request(doc: dict[str, Any]) -> ExportTraceServiceRequest:
    """The request ``json_format.ParseDict(doc, ..., ignore_unknown_fields=True)`` would build, or
    ``Unsupported``."""
    request = ExportTraceServiceRequest()
    try:
        _check(doc, _REQ_SHAPE)
        for rs_doc in _list(_get(doc, "resourceSpans", "resource_spans")):
            rs = _check(rs_doc, _RS_SHAPE)
            resource_spans = request.resource_spans.add()
            _fill_part(resource_spans.resource, rs.get("resource"), _RESOURCE_SHAPE, _RESOURCE_FIELDS)
            _set_fields(resource_spans, rs, _SCHEMA_URL)
            for ss_doc in _list(_get(rs, "scopeSpans", "scope_spans")):
                ss = _check(ss_doc, _SS_SHAPE)
                scope_spans = resource_spans.scope_spans.add()
                _fill_part(scope_spans.scope, ss.get("scope"), _SCOPE_SHAPE, _SCOPE_FIELDS)
                _set_fields(scope_spans, ss, _SCHEMA_URL)
                add = scope_spans.spans.add
                for span_doc in _list(ss.get("spans")):
                    _fill_span(add(), _check(span_doc, _SPAN_SHAPE))
    except (TypeError, ValueError, OverflowError):  # a setter refused a value: out of range, say
        raise Unsupported from None
    return request
