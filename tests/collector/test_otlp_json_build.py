"""The fast OTLP/JSON builder against ``json_format.ParseDict``: the same request where it builds one, and
the reference path (its answer or its error) wherever it declines."""

import copy

import orjson
import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.collector.test_columnar_decode import _attrs
from tests.otlp_builders import make_request, make_span
from trajscope.collector import otlp_json
from trajscope.collector.otlp_decode import InvalidRequest
from trajscope.collector.otlp_json import encode_json_request
from trajscope.collector.otlp_json_build import Unsupported, build_request


def _reference(doc: dict) -> bytes:
    request = ExportTraceServiceRequest()
    json_format.ParseDict(copy.deepcopy(doc), request, ignore_unknown_fields=True)
    return request.SerializeToString(deterministic=True)


def _with_base64_ids(doc: dict) -> dict:
    """As ``decode_json_request`` hands the document over (its own pass, on a copy)."""
    doc = copy.deepcopy(doc)
    for rs in otlp_json._list(doc, "resourceSpans", "resource_spans"):
        for ss in otlp_json._list(rs, "scopeSpans", "scope_spans"):
            for span in otlp_json._list(ss, "spans", "spans"):
                otlp_json.hex_ids_to_base64(span, otlp_json._SPAN_ID_KEYS)
                for link in otlp_json._list(span, "links", "links"):
                    otlp_json.hex_ids_to_base64(link, otlp_json._LINK_ID_KEYS)
    return doc


def _assert_same_decode(body: bytes, monkeypatch) -> None:
    """``decode_json_request`` answers as it does with the builder switched off (table, or error)."""
    def outcome():
        try:
            batch = otlp_json.decode_json_request(body, "p")
        except InvalidRequest as exc:
            return "invalid", str(exc)
        return batch.accepted, batch.rejected, batch.error_message, batch.table.drop(["ingested_at_unix_nano"])

    fast = outcome()
    with monkeypatch.context() as patch:
        def declined(doc):
            raise Unsupported
        patch.setattr(otlp_json, "build_request", declined)
        slow = outcome()
    assert fast[:3] == slow[:3]
    if fast[0] != "invalid":
        assert fast[3].equals(slow[3])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_attrs, st.text(max_size=20), st.integers(0, 5), st.integers(0, 2),
                          st.booleans()), min_size=1, max_size=5))
def test_generated_requests_build_exactly_as_parse_dict(spans):
    built = []
    for attrs, name, kind, code, extras in spans:
        span = make_span(name, attrs=attrs, kind=kind)
        span.status.code = code
        if extras:
            event = span.events.add()
            event.name, event.time_unix_nano = "evt", 5
            event.attributes.extend(make_span("x", attrs=attrs).attributes)
            link = span.links.add()
            link.trace_id, link.span_id, link.trace_state, link.flags = b"\x01" * 16, b"\x02" * 8, "a=b", 1
            span.dropped_attributes_count, span.dropped_events_count, span.dropped_links_count = 1, 2, 3
        built.append(span)
    doc = _with_base64_ids(encode_json_request(make_request(built)))
    try:
        request = build_request(copy.deepcopy(doc))
    except Unsupported:  # only for what it leaves to the reference on purpose: NaN and infinities as strings
        assert any(word in orjson.dumps(doc).decode() for word in ('"NaN"', '"Infinity"', '"-Infinity"'))
        return
    assert request.SerializeToString(deterministic=True) == _reference(doc)


def _one_span(**fields) -> dict:
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "op",
            "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": 1544712661000000000}
    span.update(fields)
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "s"}}]},
                               "scopeSpans": [{"scope": {"name": "js"}, "spans": [span]}]}]}


@pytest.mark.parametrize("doc", [
    _one_span(),
    _one_span(kind=2, flags=257, traceState="k=v", status={"code": 1}),
    _one_span(attributes=[{"key": "n", "value": {"intValue": 7}}, {"key": "s", "value": {"intValue": "-9"}},
                          {"key": "d", "value": {"doubleValue": 1.5}}, {"key": "e", "value": {"doubleValue": 2}},
                          {"key": "b", "value": {"boolValue": False}}, {"key": "empty", "value": {}},
                          {"key": "none"}, {"key": "x", "value": {"bytesValue": "AAE="}},
                          {"key": "arr", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {}]}}},
                          {"key": "kv", "value": {"kvlistValue": {"values": [{"key": "k", "value": {}}]}}},
                          {"key": "odd", "value": {"futureValue": 1}}]),
    _one_span(name=None, status=None, attributes=None, events=None, links=None, unknownField={"a": 1}),
    {"resource_spans": [{"scope_spans": [{"spans": [{"trace_id": "5b8efff798038103d269b633813fc60c",
                                                      "span_id": "eee19b7ec3c1b174", "start_time_unix_nano": 5}]}]}]},
    {},
    {"resourceSpans": []},
], ids=["minimal", "fields", "values", "nulls-and-unknown", "snake-case", "empty", "no-spans"])
def test_documents_sdks_send_build_exactly_as_parse_dict(doc, monkeypatch):
    assert build_request(_with_base64_ids(doc)).SerializeToString(deterministic=True) == _reference(
        _with_base64_ids(doc))
    _assert_same_decode(orjson.dumps(doc), monkeypatch)


@pytest.mark.parametrize("doc", [
    _one_span(kind="SPAN_KIND_SERVER"),  # enum by name
    _one_span(status={"code": "STATUS_CODE_ERROR"}),
    _one_span(attributes=[{"key": "f", "value": {"doubleValue": "NaN"}}]),
    _one_span(attributes=[{"key": "f", "value": {"doubleValue": "1.5"}}]),
    _one_span(attributes=[{"key": "i", "value": {"intValue": 1.5}}]),
    _one_span(attributes=[{"key": "i", "value": {"intValue": True}}]),
    _one_span(attributes=[{"key": "two", "value": {"stringValue": "a", "intValue": 1}}]),
    _one_span(attributes=[{"keyStrindex": 3}]),
    _one_span(attributes=[{"key": 5, "value": {"stringValue": "a"}}]),
    _one_span(attributes={"key": "not a list"}),
    _one_span(name=5),
    _one_span(flags=-1),
    _one_span(startTimeUnixNano="-5"),
    _one_span(startTimeUnixNano="1e9"),
    _one_span(start_time_unix_nano="7"),  # both names of one field
    {"resourceSpans": [{"resource": {"entityRefs": []}, "scopeSpans": []}]},
    {"resourceSpans": "nope"},
], ids=["kind-name", "code-name", "nan", "double-string", "int-float", "int-bool", "two-values", "strindex",
        "key-not-string", "attributes-not-list", "name-not-string", "negative-flags", "negative-time",
        "time-exponent", "camel-and-snake", "entity-refs", "not-a-list"])
def test_anything_else_goes_to_the_reference_parser_with_its_answer(doc, monkeypatch):
    with pytest.raises(Unsupported):
        build_request(_with_base64_ids(doc))
    _assert_same_decode(orjson.dumps(doc), monkeypatch)


def test_a_realistic_export_decodes_the_same_as_json_and_as_protobuf():
    from trajscope.collector.otlp_decode import decode_request
    from trajscope.workload import Workload, to_requests

    request = next(iter(to_requests(Workload(seed=3).sessions(3), spans_per_request=200)))
    from_json = otlp_json.decode_json_request(orjson.dumps(encode_json_request(request)), "p")
    from_protobuf = decode_request(request.SerializeToString(), "p")
    assert from_json.accepted == from_protobuf.accepted > 50
    drop = ["ingested_at_unix_nano"]
    assert from_json.table.drop(drop).equals(from_protobuf.table.drop(drop))
