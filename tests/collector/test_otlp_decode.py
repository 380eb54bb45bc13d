import orjson
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.otlp_builders import kvs, make_request, make_span
from trajscope.collector.anyvalue import untag
from trajscope.collector.otlp_decode import InvalidRequest, decode_request
from trajscope.storage.schema import SPAN_SCHEMA


def _decode_one(span: Span, **request_kwargs):
    batch = decode_request(make_request([span], **request_kwargs).SerializeToString())
    assert batch.rejected == 0, batch.error_message
    return batch.table.to_pylist()[0]


def test_decode_keeps_every_otlp_span_field():
    parent = make_span("parent")
    span = make_span("child", parent=parent, kind=Span.SPAN_KIND_CLIENT, trace_state="k=v", flags=257,
                     dropped_attributes_count=3, dropped_events_count=4, dropped_links_count=5,
                     attrs={"s": "x", "i": 7, "d": 0.5, "b": True, "raw": b"\x01", "arr": [1, 2],
                            "kv": {"a": 1}})
    span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="boom"))
    ev = span.events.add(name="exception", time_unix_nano=1_500_000_000, dropped_attributes_count=2)
    ev.attributes.extend(kvs({"exception.type": "ValueError", "exception.stacktrace": "tb"}))
    link = span.links.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, trace_state="l=1", flags=1,
                          dropped_attributes_count=1)
    link.attributes.extend(kvs({"why": "follows"}))
    request = make_request([span], resource={"service.name": "svc", "host.name": "h1"})
    request.resource_spans[0].resource.dropped_attributes_count = 6
    request.resource_spans[0].schema_url = "https://opentelemetry.io/schemas/1.26.0"
    scope = request.resource_spans[0].scope_spans[0]
    scope.scope.version = "1.2.3"
    scope.scope.attributes.extend(kvs({"scope.attr": "y"}))
    scope.scope.dropped_attributes_count = 8
    scope.schema_url = "https://scope.schema"

    batch = decode_request(request.SerializeToString())
    assert batch.table.schema == SPAN_SCHEMA
    row = batch.table.to_pylist()[0]
    assert row["trace_id"] == span.trace_id.hex() and row["span_id"] == span.span_id.hex()
    assert row["parent_span_id"] == parent.span_id.hex()
    assert (row["name"], row["kind"], row["trace_state"], row["flags"]) == ("child", "CLIENT", "k=v", 257)
    assert (row["status_code"], row["status_message"], row["error_type"]) == ("ERROR", "boom", "ValueError")
    assert (row["start_time_unix_nano"], row["end_time_unix_nano"], row["duration_ns"]) == (
        1_000_000_000, 2_000_000_000, 1_000_000_000)
    assert untag(orjson.loads(row["attributes"])) == {"s": "x", "i": 7, "d": 0.5, "b": True, "raw": b"\x01",
                                                      "arr": [1, 2], "kv": {"a": 1}}
    assert (row["dropped_attributes_count"], row["dropped_events_count"], row["dropped_links_count"]) == (3, 4, 5)
    assert orjson.loads(row["events"]) == [{
        "time_unix_nano": 1_500_000_000, "name": "exception", "dropped_attributes_count": 2,
        "attributes": {"exception.type": "ValueError", "exception.stacktrace": "tb"}}]
    assert orjson.loads(row["links"]) == [{
        "trace_id": "01" * 16, "span_id": "02" * 8, "trace_state": "l=1", "flags": 1,
        "dropped_attributes_count": 1, "attributes": {"why": "follows"}}]
    assert orjson.loads(row["resource_attributes"]) == {"service.name": "svc", "host.name": "h1"}
    assert (row["service_name"], row["resource_dropped_attributes_count"]) == ("svc", 6)
    assert row["resource_schema_url"] == "https://opentelemetry.io/schemas/1.26.0"
    assert (row["scope_name"], row["scope_version"], row["scope_dropped_attributes_count"]) == ("tests", "1.2.3", 8)
    assert orjson.loads(row["scope_attributes"]) == {"scope.attr": "y"}
    assert row["scope_schema_url"] == "https://scope.schema"


def test_decode_megabyte_attribute_is_kept_whole():
    big = "x" * 1_000_000 + "END"
    row = _decode_one(make_span(attrs={"input.value": big}))
    assert orjson.loads(row["attributes"])["input.value"] == big


@pytest.mark.parametrize(("resource", "hint", "project"), [
    ({"trajscope.project": "team-a"}, "hdr", "team-a"),
    ({"openinference.project.name": "phoenix-proj"}, "hdr", "phoenix-proj"),
    ({}, "from-header", "from-header"),
    ({}, "default", "default"),
])
def test_decode_project_from_resource_then_header_then_default(resource, hint, project):
    batch = decode_request(make_request([make_span()], resource=resource).SerializeToString(), hint)
    assert batch.table.column("project").to_pylist() == [project]


@pytest.mark.parametrize(("fields", "problem"), [
    ({"trace_id": b"\x01" * 15}, "trace_id must be 16 bytes, got 15"),
    ({"trace_id": bytes(16)}, "trace_id is all zeros"),
    ({"span_id": b"\x01" * 9}, "span_id must be 8 bytes, got 9"),
    ({"span_id": bytes(8)}, "span_id is all zeros"),
    ({"parent_span_id": b"\x01" * 3}, "parent_span_id must be empty or 8 bytes, got 3"),
])
def test_decode_rejects_invalid_spans_and_keeps_the_rest(fields, problem):
    bad = make_span("bad")
    for key, value in fields.items():
        setattr(bad, key, value)
    good = make_span("good")
    batch = decode_request(make_request([good, bad]).SerializeToString())
    assert batch.accepted == 1 and batch.rejected == 1
    assert problem in batch.error_message
    assert "spans[1]" in batch.error_message
    assert batch.table.column("name").to_pylist() == ["good"]


def test_decode_all_zero_parent_means_root():
    row = _decode_one(make_span(parent=bytes(8)))
    assert row["parent_span_id"] is None


def test_decode_garbage_is_invalid_request():
    with pytest.raises(InvalidRequest, match="not a valid OTLP"):
        decode_request(b"\xff\xff\xff\xff not protobuf")


def test_decode_empty_request_is_empty_batch():
    batch = decode_request(b"")
    assert batch.accepted == 0 and batch.rejected == 0 and batch.error_message == ""
