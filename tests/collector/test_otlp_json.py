import base64

import orjson
import pytest

from trajscope.collector.anyvalue import untag
from trajscope.collector.otlp_decode import InvalidRequest
from trajscope.collector.otlp_json import decode_json_request

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"
PARENT = "eee19b7ec3c1b173"


def _doc(span: dict) -> bytes:
    return orjson.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "js-svc"}}]},
        "scopeSpans": [{"scope": {"name": "js"}, "spans": [span]}],
    }]})


def _span(**over):
    span = {"traceId": TRACE, "spanId": SPAN, "parentSpanId": PARENT, "name": "op", "kind": 3,
            "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": 1544712661000000000,
            "status": {"code": 2, "message": "bad"}}
    span.update(over)
    return span


def test_json_hex_ids_string_int64_and_enums():
    row = decode_json_request(_doc(_span())).table.to_pylist()[0]
    assert (row["trace_id"], row["span_id"], row["parent_span_id"]) == (TRACE, SPAN, PARENT)
    assert row["start_time_unix_nano"] == 1544712660000000000
    assert row["end_time_unix_nano"] == 1544712661000000000
    assert (row["kind"], row["status_code"], row["service_name"]) == ("CLIENT", "ERROR", "js-svc")


def test_json_all_value_types():
    attrs = [
        {"key": "s", "value": {"stringValue": "x"}},
        {"key": "i", "value": {"intValue": "9007199254740993"}},
        {"key": "d", "value": {"doubleValue": 1.5}},
        {"key": "b", "value": {"boolValue": True}},
        {"key": "raw", "value": {"bytesValue": base64.b64encode(b"\x00\x01").decode()}},
        {"key": "arr", "value": {"arrayValue": {"values": [{"intValue": 1}, {"stringValue": "a"}]}}},
        {"key": "kv", "value": {"kvlistValue": {"values": [{"key": "n", "value": {"intValue": 2}}]}}},
    ]
    row = decode_json_request(_doc(_span(attributes=attrs))).table.to_pylist()[0]
    assert untag(orjson.loads(row["attributes"])) == {
        "s": "x", "i": 9007199254740993, "d": 1.5, "b": True, "raw": b"\x00\x01", "arr": [1, "a"],
        "kv": {"n": 2}}


def test_json_unknown_fields_are_ignored():
    batch = decode_json_request(_doc(_span(someFutureField={"x": 1})))
    assert batch.accepted == 1


def test_json_non_hex_id_rejects_that_span_only():
    body = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        _span(traceId="not-hex!"), _span(spanId="eee19b7ec3c1b175")]}]}]})
    batch = decode_json_request(body)
    assert (batch.accepted, batch.rejected) == (1, 1)
    assert "is not hex" in batch.error_message


def test_json_wrong_length_id_rejected_with_length():
    batch = decode_json_request(_doc(_span(traceId=TRACE[:30])))
    assert (batch.accepted, batch.rejected) == (0, 1)
    assert "trace_id must be 16 bytes, got 15" in batch.error_message


@pytest.mark.parametrize("body", [b"{not json", b"[1,2]", b'{"resourceSpans": [5]}'])
def test_json_malformed_is_invalid_request(body):
    with pytest.raises(InvalidRequest):
        decode_json_request(body)


def test_json_empty_object_is_empty_success():
    assert decode_json_request(b"{}").accepted == 0
