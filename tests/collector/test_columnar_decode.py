"""The columnar decoder (the protobuf hot path) against the reference walker: same rows, and the
reference's answer wherever the columnar decoder declines."""

from __future__ import annotations

import math
import os

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.otlp_builders import any_value, kvs, make_request, make_span
from trajscope.collector import columnar_decode
from trajscope.collector.attribute_columns import _needs_escaping
from trajscope.collector.ingest_proto import RawSpansRequest
from trajscope.collector.otlp_decode import InvalidRequest, decode_request, reference_decode_request
from trajscope.workload import Workload, to_requests

JSON_COLUMNS = ("attributes", "events", "links", "resource_attributes", "scope_attributes")


def _typed(value):
    """JSON values with their types made explicit: 1 and 1.0 and True differ."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


def _rows(table: pa.Table) -> list[dict]:
    rows = table.drop_columns(["ingested_at_unix_nano"]).to_pylist()
    for row in rows:
        for column in JSON_COLUMNS:
            if row[column] is not None:
                row[column] = _typed(orjson.loads(row[column]))
    return rows


def assert_same(payload: bytes, project: str = "default") -> None:
    fast = columnar_decode.decode_request(payload, project, strict=True)
    assert fast is not None, "the columnar decoder declined a request it should read"
    ref = reference_decode_request(payload, project)
    assert (fast.rejected, fast.error_message) == (ref.rejected, ref.error_message)
    assert fast.table.schema == ref.table.schema
    fast_rows, ref_rows = _rows(fast.table), _rows(ref.table)
    assert len(fast_rows) == len(ref_rows)
    for got, want in zip(fast_rows, ref_rows, strict=True):
        assert got == want


@pytest.mark.parametrize("seed", [1, 7, 42])
def test_realistic_workload_decodes_identically(seed):
    for request in to_requests(Workload(seed=seed).sessions(40), spans_per_request=256):
        assert_same(request.SerializeToString())


def test_every_value_type_status_event_and_link():
    root = make_span("invoke_agent planner", attrs={
        "gen_ai.operation.name": "invoke_agent", "session.id": "s-1", "user.id": 42,
        "text": 'he said "hi"\n\tand \\ left \x01', "unicode": "naïve 日本 🚀", "empty": "",
        "int": -5, "big": 2**62, "double": 1.0, "neg_zero": -0.0, "tiny": 1e-7, "huge": 1e300,
        "nan": math.nan, "inf": -math.inf, "yes": True, "no": False, "raw": b"\x00\xff",
        "list": ["a", 1, 2.5, None], "map": {"k": "v", "$bytes": "x"}, "nothing": None,
    }, trace_state="k=v", flags=257, kind=Span.SPAN_KIND_SERVER, dropped_attributes_count=3,
        dropped_events_count=1, dropped_links_count=2)
    root.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="boom"))
    ev = root.events.add(name="exception", time_unix_nano=5)
    ev.attributes.extend(kvs({"exception.type": "ValueError", "exception.message": "bad"}))
    guard = root.events.add(name="guardrail", time_unix_nano=6)
    guard.attributes.extend(kvs({"guardrail.name": "pii", "guardrail.triggered": True}))
    root.links.add(trace_id=os.urandom(16), span_id=os.urandom(8), trace_state="a=b").attributes.extend(
        kvs({"why": "retry"}))
    child = make_span("chat", trace_id=root.trace_id, parent=root, attrs={
        "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": "120", "gen_ai.usage.output_tokens": 7.0,
        "gen_ai.usage.cache_read.input_tokens": 200, "llm.cost.total": "0.5", "guard.passed": False})
    child.status.code = Status.STATUS_CODE_OK
    tool = make_span("execute_tool  lookup ", trace_id=root.trace_id, parent=root,
                     attrs={"traceloop.span.kind": "Tool", "traceloop.entity.name": 3})
    zero_parent = make_span("orphan", trace_id=root.trace_id, parent=bytes(8), attrs={})
    assert_same(make_request([root, child, tool, zero_parent]).SerializeToString())


def test_rejected_spans_are_reported_like_the_reference():
    good = make_span("ok", attrs={"a": 1})
    bad = [make_span("short", trace_id=b"\x01" * 8), make_span("zero", trace_id=bytes(16)),
           make_span("zero-span", span_id=bytes(8)), make_span("late", end=2**63 + 5),
           make_span("parent", parent=b"\x01\x02")]
    assert_same(make_request([bad[0], good, *bad[1:]] * 2).SerializeToString())


def test_several_resources_and_scopes_and_projects():
    request = make_request([make_span("a", attrs={"x": "1"})], resource={"service.name": "svc-a",
                                                                        "trajscope.project": "p1"})
    rs = request.resource_spans.add()
    rs.resource.attributes.extend(kvs({"service.name": "svc-b"}))
    rs.schema_url = "https://schema"
    for name in ("s1", "s2"):
        ss = rs.scope_spans.add()
        ss.scope.name, ss.scope.version = name, "1.0"
        ss.scope.attributes.extend(kvs({"lib": name}))
        ss.spans.extend([make_span(f"{name}-{i}", attrs={"i": i}) for i in range(3)])
    rs.scope_spans.add()  # a scope without spans
    assert_same(request.SerializeToString(), project="hdr")


def test_empty_request_and_spans_without_attributes():
    assert_same(b"")
    assert_same(make_request([make_span("bare"), make_span("execute_tool x")]).SerializeToString())


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), st.binary(max_size=8))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(min_size=1, max_size=5), inner, max_size=3)), max_leaves=6)
_known_keys = st.sampled_from([
    "gen_ai.operation.name", "gen_ai.request.model", "gen_ai.response.model", "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens", "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.reasoning_tokens",
    "openinference.span.kind", "llm.model_name", "gen_ai.tool.name", "session.id", "user.id", "error.type",
    "traceloop.span.kind", "traceloop.entity.name", "gen_ai.usage.cost", "guardrail.name", "guardrail.triggered",
    "llm.request.type", "tool.name", "agent.name", "triggered", "rail.name", "rail.stop", "guard.passed",
    "guardrail.action", "guardrail.score", "guardrail.reason", "gen_ai.guardrail.name", "gen_ai.guardrail.status",
    "gen_ai.security.decision.type", "gen_ai.agent.name", "gen_ai.workflow.name",
    "gen_ai.usage.cache_write.input_tokens"])
_names = st.one_of(st.text(max_size=20), st.sampled_from([
    "invoke_agent Planner", "execute_tool search", "apply_guardrail", "invoke_workflow x", "chat gpt"]))
_attrs = st.dictionaries(st.one_of(_known_keys, st.text(min_size=1, max_size=12)), _values, max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_attrs, _names, st.integers(0, 5), st.integers(0, 2)), min_size=1,
                max_size=6))
def test_random_spans_decode_identically(spans):
    built = []
    for attrs, name, kind, code in spans:
        span = make_span(name, attrs=attrs, kind=kind)
        span.status.code = code
        built.append(span)
    assert_same(make_request(built).SerializeToString())


def _with_raw_attributes(*kv_bytes: bytes) -> bytes:
    """A one-span request whose span attributes are the given KeyValue encodings, verbatim."""
    body = make_span("s").SerializeToString() + b"".join(b"\x4a" + bytes([len(b)]) + b for b in kv_bytes)
    request = RawSpansRequest()
    request.ParseFromString(make_request([]).SerializeToString())
    request.resource_spans[0].scope_spans[0].spans.append(body)
    return request.SerializeToString()


def test_declines_non_canonical_attributes_and_the_reference_decodes_them():
    value_first = b"\x12\x03\x0a\x01v" + b"\x0a\x01k"  # value field before the key field
    first = KeyValue(key="k", value=any_value("a")).SerializeToString()
    again = KeyValue(key="k", value=any_value("b")).SerializeToString()
    two_fields = b"\x0a\x01k\x12\x05\x0a\x01a\x18\x07"  # an AnyValue with a string and then an int
    for payload in (_with_raw_attributes(value_first), _with_raw_attributes(first, again),
                    _with_raw_attributes(two_fields)):
        assert columnar_decode.decode_request(payload, strict=True) is None
        got, want = decode_request(payload), reference_decode_request(payload)
        assert got.accepted == 1
        assert _rows(got.table) == _rows(want.table)
    # The reference keeps the last of a repeated key, as protobuf does.
    assert orjson.loads(decode_request(_with_raw_attributes(first, again)).table["attributes"][0].as_py()) == {
        "k": "b"}


def test_invalid_utf8_is_left_to_the_reference_which_refuses_it():
    bad_value = b"\x0a\x01k\x12\x04\x0a\x02\xff\xfe"
    bad_key = b"\x0a\x02\xff\xfe"
    for payload in (_with_raw_attributes(bad_value), _with_raw_attributes(bad_key)):
        assert columnar_decode.decode_request(payload) is None
        with pytest.raises(InvalidRequest):
            decode_request(payload)


def test_truncated_request_is_refused():
    payload = make_request([make_span("s", attrs={"a": "b" * 50})]).SerializeToString()
    with pytest.raises(InvalidRequest):
        decode_request(payload[:-7])


def test_reference_decoder_can_be_chosen(monkeypatch):
    from trajscope.collector import otlp_decode

    def refuse(*args, **kwargs):
        raise AssertionError("the columnar decoder was used")

    payload = make_request([make_span("s", attrs={"gen_ai.request.model": "gpt-4o"})]).SerializeToString()
    monkeypatch.setattr(columnar_decode, "decode_request", refuse)
    otlp_decode.use_decoder("reference")
    try:
        assert decode_request(payload).table["request_model"].to_pylist() == ["gpt-4o"]
    finally:
        otlp_decode.use_decoder("columnar")
    with pytest.raises(AssertionError):
        decode_request(payload)
    with pytest.raises(ValueError):
        otlp_decode.use_decoder("fast")


def test_guardrail_styles_decode_identically():
    spans = [
        make_span("input-check", attrs={"openinference.span.kind": "GUARDRAIL", "triggered": True, "x": "y"}),
        make_span("pii", attrs={"guard.name": "pii", "guard.passed": False, "guard.score": "0.9"}),
        make_span("rails", attrs={"rail.name": "jailbreak", "rail.stop": True, "rail.type": "input"}),
        make_span("tg", attrs={"guardrail.name": "toxicity", "guardrail.action": "REDACT",
                               "guardrail.reason": "slur", "guardrail.score": 0.7}),
    ]
    ev = spans[0].events.add(name="guardrail", time_unix_nano=7)
    ev.attributes.extend(kvs({"guardrail.name": "topic", "guardrail.triggered": "false"}))
    # A check recorded only as an event of an ordinary span, and a span whose events are not checks.
    plain = make_span("chat", attrs={"gen_ai.operation.name": "chat"})
    plain.events.add(name="exception", time_unix_nano=8)
    ev = plain.events.add(name="guardrail", time_unix_nano=9)
    ev.attributes.extend(kvs({"guardrail.name": "pii", "guardrail.action": "block"}))
    other = make_span("tool", attrs={"gen_ai.operation.name": "execute_tool"})
    other.events.add(name="exception", time_unix_nano=10)
    spans += [plain, other]
    assert_same(make_request(spans).SerializeToString())
    decoded = columnar_decode.decode_request(make_request(spans).SerializeToString(), strict=True)
    assert decoded.table.column("guardrail_hits").to_pylist()[-2:] == [1, None]


def test_guardrail_category_alone_makes_a_check():
    # No guardrail key and no event: the span's category alone says it records a check.
    spans = [
        make_span("moderation", attrs={"openinference.span.kind": "GUARDRAIL", "triggered": True}),
        make_span("input-filter", attrs={"openinference.span.kind": "guardrail", "other": 1}),
        make_span("chat", attrs={"openinference.span.kind": "LLM", "triggered": True}),
    ]
    assert_same(make_request(spans).SerializeToString())
    decoded = columnar_decode.decode_request(make_request(spans).SerializeToString(), strict=True)
    assert decoded.table.column("guardrail_hits").to_pylist() == [1, 0, None]
    assert [c and c[0]["name"] for c in decoded.table.column("guardrails").to_pylist()] == [
        "moderation", "input-filter", None]


def test_traceloop_entity_names_with_repeated_and_unmapped_kinds():
    spans = [
        make_span("t", attrs={"traceloop.span.kind": "tool", "traceloop.entity.name": "search"}),
        make_span("a", attrs={"traceloop.entity.name": "planner", "traceloop.span.kind": "AGENT"}),
        make_span("w", attrs={"traceloop.span.kind": "workflow", "traceloop.entity.name": "flow"}),
        make_span("n", attrs={"traceloop.span.kind": "tool", "traceloop.entity.name": 7}),
        make_span("x", attrs={"traceloop.span.kind": "tool"}),
    ]
    assert_same(make_request(spans).SerializeToString())
    decoded = columnar_decode.decode_request(make_request(spans).SerializeToString(), strict=True)
    assert decoded.table.column("tool_name").to_pylist() == ["search", None, None, "7", None]
    assert decoded.table.column("agent_name").to_pylist()[1] == "planner"


def test_resources_and_scopes_decoded_once_are_reused_only_for_the_same_bytes_and_project():
    request = make_request([make_span("a")], resource={"service.name": "svc"})
    for project in ("p1", "p2", "p1"):
        assert_same(request.SerializeToString(), project=project)
        table = columnar_decode.decode_request(request.SerializeToString(), project, strict=True).table
        assert table.column("project").to_pylist() == [project]
    request.resource_spans[0].resource.attributes.extend(kvs({"trajscope.project": "own"}))
    request.resource_spans[0].scope_spans[0].scope.version = "2"
    assert_same(request.SerializeToString(), project="p1")
    # A resource with invalid UTF-8 is left to the reference, which refuses the request.
    good = make_request([make_span("a")], resource={"k": "v"}).SerializeToString()
    bad = good.replace(b"\x0a\x01v", b"\x0a\x01\xff", 1)
    assert bad != good and columnar_decode.decode_request(bad) is None
    with pytest.raises(InvalidRequest):
        decode_request(bad)


@pytest.mark.parametrize("texts", [
    ["plain", "", 'with "quote"', "tab\there", "back\\slash", "", "end"],
    ["", ""],
    ["\n"],
    ["x" * 40, "ctrl\x01", "ünïcödé", "\x1f"],
])
def test_strings_needing_escapes_among_plain_and_empty_ones(texts):
    # Which string values JSON escapes is decided per byte range; neighbours and empty values must not leak.
    span = make_span("s", attrs={f"k{i}": t for i, t in enumerate(texts)})
    assert_same(make_request([span, make_span("t", attrs={"last": texts[-1]})]).SerializeToString())


def test_needs_escaping_at_the_very_end_of_the_buffer():
    buf = np.frombuffer(b'ab"', np.uint8)
    assert _needs_escaping(buf, np.array([0, 2, 2, 3]), np.array([2, 3, 2, 3])).tolist() == [False, True, False, False]
