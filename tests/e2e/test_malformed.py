"""Bad input gets the OTLP-specified status and a message; the server keeps serving."""

from __future__ import annotations

import gzip
import os

import grpc
import httpx
import orjson
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.otlp_builders import make_request, make_span
from trajscope.collector.anyvalue import untag

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _grpc_export(server, payload: bytes):
    with grpc.insecure_channel(server.otlp_grpc) as channel:
        call = channel.unary_unary(EXPORT)
        return ExportTraceServiceResponse.FromString(call(payload, timeout=10))


def _post(server, body: bytes, content_type="application/x-protobuf", **headers):
    return httpx.post(server.otlp_http, content=body, headers={"Content-Type": content_type, **headers},
                      timeout=10)


def _still_serving(server):
    span = make_span("after-bad-input")
    response = _post(server, make_request([span]).SerializeToString())
    assert response.status_code == 200
    assert server.get(f"/api/v1/traces/{span.trace_id.hex()}").status_code == 200


def test_http_bad_protobuf_is_400_with_status_body(server):
    response = _post(server, b"\xff\xfe garbage")
    assert response.status_code == 400
    status = status_pb2.Status.FromString(response.content)
    assert status.code == 3 and "not a valid OTLP" in status.message
    _still_serving(server)


def test_http_bad_json_is_400_with_json_status(server):
    response = _post(server, b"{nope", content_type="application/json")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["message"]
    _still_serving(server)


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", ""])
def test_http_wrong_content_type_is_415(server, content_type):
    response = _post(server, make_request([make_span()]).SerializeToString(), content_type=content_type)
    assert response.status_code == 415
    assert "application/x-protobuf" in response.text
    _still_serving(server)


def test_http_bad_gzip_is_400_and_unknown_encoding_is_415(server):
    assert _post(server, b"not gzip", **{"Content-Encoding": "gzip"}).status_code == 400
    assert _post(server, b"x", **{"Content-Encoding": "br"}).status_code == 415
    _still_serving(server)


def test_http_gzip_and_chunked_body_accepted(server):
    span = make_span("chunked")
    payload = gzip.compress(make_request([span]).SerializeToString())

    def chunks():
        for i in range(0, len(payload), 7):
            yield payload[i:i + 7]

    response = httpx.post(server.otlp_http, content=chunks(), timeout=10,
                          headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert server.get(f"/api/v1/traces/{span.trace_id.hex()}").status_code == 200


def test_http_wrong_trace_id_length_is_partial_success(server):
    good, bad = make_span("good"), make_span("bad", trace_id=os.urandom(12))
    response = _post(server, make_request([good, bad]).SerializeToString())
    assert response.status_code == 200
    result = ExportTraceServiceResponse.FromString(response.content)
    assert result.partial_success.rejected_spans == 1
    assert "trace_id must be 16 bytes, got 12" in result.partial_success.error_message
    assert server.get(f"/api/v1/traces/{good.trace_id.hex()}").status_code == 200


def test_http_json_partial_success_uses_json(server):
    body = orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "ab" * 8, "spanId": "cd" * 8, "name": "short-trace-id"}]}]}]})
    response = _post(server, body, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["partialSuccess"]["rejectedSpans"] == "1"


def test_http_empty_request_is_success(server):
    for body, ctype in ((b"", "application/x-protobuf"), (b"{}", "application/json")):
        response = _post(server, body, content_type=ctype)
        assert response.status_code == 200, response.text


def test_grpc_bad_protobuf_is_invalid_argument(server):
    with pytest.raises(grpc.RpcError) as err:
        _grpc_export(server, b"\xff\xfe garbage")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid OTLP" in err.value.details()
    _still_serving(server)


def test_grpc_wrong_ids_are_partial_success_and_empty_is_ok(server):
    good, bad = make_span("g"), make_span("b", span_id=b"\x00" * 8)
    result = _grpc_export(server, make_request([good, bad]).SerializeToString())
    assert result.partial_success.rejected_spans == 1
    assert "span_id is all zeros" in result.partial_success.error_message
    assert not _grpc_export(server, b"").HasField("partial_success")


def test_api_bad_and_unknown_trace_ids(server):
    bad = server.get("/api/v1/traces/xyz")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_argument"
    missing = server.get("/api/v1/traces/" + "ab" * 16)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert server.get("/api/v1/traces", since="yesterday-ish").status_code == 400
    assert server.get("/api/v1/traces", cursor="!!").status_code == 400
    assert server.get("/api/v1/traces", limit=0).status_code == 400


def test_megabyte_attribute_round_trips_through_the_api(server):
    big = "".join(chr(0x41 + i % 26) for i in range(1_048_576)) + "✓"
    span = make_span("big", attrs={"input.value": big, "blob": big.encode()})
    assert _post(server, gzip.compress(make_request([span]).SerializeToString()),
                 **{"Content-Encoding": "gzip"}).status_code == 200
    stored = server.get(f"/api/v1/traces/{span.trace_id.hex()}").json()["spans"][0]["attributes"]
    assert stored["input.value"] == big
    assert untag(stored["blob"]) == big.encode()
