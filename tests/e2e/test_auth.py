"""With --api-key, OTLP and the API refuse requests without the key; health stays open."""

from __future__ import annotations

import grpc
import httpx
import pytest

from tests.e2e.conftest import make_server
from tests.otlp_builders import make_request, make_span

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
KEY = "s3cret-key"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    srv = make_server(tmp_path_factory.mktemp("auth"), "--api-key", KEY)
    srv.start()
    yield srv
    srv.stop()


def test_auth_otlp_http_requires_the_key(keyed_server):
    span = make_span("authed")
    body = make_request([span]).SerializeToString()
    headers = {"Content-Type": "application/x-protobuf"}
    assert httpx.post(keyed_server.otlp_http, content=body, headers=headers).status_code == 401
    wrong = {**headers, "Authorization": "Bearer nope"}
    assert httpx.post(keyed_server.otlp_http, content=body, headers=wrong).status_code == 401
    right = {**headers, "Authorization": f"Bearer {KEY}"}
    assert httpx.post(keyed_server.otlp_http, content=body, headers=right).status_code == 200
    api = f"{keyed_server.api}/api/v1/traces/{span.trace_id.hex()}"
    assert httpx.get(api).status_code == 401
    assert httpx.get(api).json()["error"]["code"] == "unauthorized"
    assert httpx.get(api, headers={"x-api-key": KEY}).status_code == 200
    assert httpx.get(f"{keyed_server.api}/api/v1/health").status_code == 200


def test_auth_otlp_grpc_requires_the_key(keyed_server):
    body = make_request([make_span("grpc-authed")]).SerializeToString()
    with grpc.insecure_channel(keyed_server.otlp_grpc) as channel:
        call = channel.unary_unary(EXPORT)
        with pytest.raises(grpc.RpcError) as err:
            call(body, timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        call(body, timeout=10, metadata=(("authorization", f"Bearer {KEY}"),))


def test_auth_otlp_logs_require_the_key_on_both_receivers(keyed_server):
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest()
    request.resource_logs.add().scope_logs.add().log_records.add(time_unix_nano=1, event_name="e")
    body = request.SerializeToString()
    url = keyed_server.otlp_http.replace("/v1/traces", "/v1/logs")
    headers = {"Content-Type": "application/x-protobuf"}
    assert httpx.post(url, content=body, headers=headers).status_code == 401
    assert httpx.post(url, content=body, headers={**headers, "x-api-key": KEY}).status_code == 200
    with grpc.insecure_channel(keyed_server.otlp_grpc) as channel:
        call = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")
        with pytest.raises(grpc.RpcError) as err:
            call(body, timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        call(body, timeout=10, metadata=(("authorization", f"Bearer {KEY}"),))
