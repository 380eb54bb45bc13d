"""The verdict before decoding (``validate_request``) is the one decoding reaches: the same spans kept and
refused, the same partial-success message, the same bodies refused as a whole."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.otlp_builders import make_request, make_span
from trajscope.collector.otlp_decode import InvalidRequest, decode_request, reference_decode_request
from trajscope.collector.validate import validate_request

_BAD_FIELDS = st.sampled_from([
    {},
    {"trace_id": b"\x01" * 15},
    {"trace_id": bytes(16)},
    {"trace_id": b""},
    {"span_id": b"\x01" * 9},
    {"span_id": bytes(8)},
    {"parent_span_id": b"\x01" * 3},
    {"parent_span_id": bytes(8)},  # all zeros: a root, kept
    {"start_time_unix_nano": 2**63},
    {"end_time_unix_nano": 2**64 - 1},
    {"start_time_unix_nano": 2**63 - 1},  # the largest time that fits: kept
])


def _request(spans_fields: list[list[dict]]) -> bytes:
    request = ExportTraceServiceRequest()
    for r, scopes in enumerate(spans_fields):
        part = make_request([], resource={"service.name": f"svc-{r}"})
        rs = part.resource_spans[0]
        rs.scope_spans.pop()
        for fields in scopes:
            span = make_span("s", attrs={"gen_ai.request.model": "gpt-4o", "n": 1})
            for key, value in fields.items():
                setattr(span, key, value)
            rs.scope_spans.add().spans.append(span)
        request.resource_spans.append(rs)
    return request.SerializeToString()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_BAD_FIELDS, min_size=0, max_size=9), min_size=0, max_size=3))
def test_the_verdict_is_what_both_decoders_find(layout):
    body = _request(layout)
    verdict = validate_request(body)
    for decode in (decode_request, reference_decode_request):
        batch = decode(body)
        assert (verdict.accepted, verdict.rejected, verdict.error_message) == (
            batch.accepted, batch.rejected, batch.error_message)


@pytest.mark.parametrize("body", [b"\xff\xff\xff\xff not protobuf", b"\x0a\x05\x12\x03", b"\x0a"])
def test_a_body_decoding_refuses_is_refused(body):
    with pytest.raises(InvalidRequest):
        decode_request(body)
    with pytest.raises(InvalidRequest):
        validate_request(body)


def test_a_span_with_invalid_utf8_refuses_the_body_as_decoding_does():
    span = make_span("placeholder")
    body = make_request([span]).SerializeToString().replace(b"placeholder", b"placeh\xffder")
    with pytest.raises(InvalidRequest):
        decode_request(body)
    with pytest.raises(InvalidRequest):
        validate_request(body)
