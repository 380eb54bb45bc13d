"""Size limits per span (cut down and flagged) and per export (partial success, the same verdict before and
after the decode)."""

from __future__ import annotations

import random

import orjson
import pytest

from tests.otlp_builders import kvs, make_request, make_span
from tests.otlp_fuzz import deeply_nested_span
from trajscope.collector import limits
from trajscope.collector.limits import TRUNCATED, SpanLimits, limited
from trajscope.collector.otlp_decode import decode_request
from trajscope.collector.validate import validate_request


def _decoded(spans):
    return decode_request(make_request(spans).SerializeToString())


def test_an_ordinary_batch_passes_untouched():
    table = _decoded([make_span("a", attrs={"k": "v" * 1000}), make_span("b")]).table
    assert limited(table, SpanLimits(attributes=10, events=10, value_chars=5000)) is table


def test_attributes_events_and_long_values_are_cut_to_the_limits_and_flagged():
    many = make_span("many", attrs={f"k{i}": i for i in range(30)})
    for i in range(12):
        many.events.add(name=f"e{i}", time_unix_nano=i).attributes.extend(kvs({"text": "y" * 300}))
    long_value = make_span("long", attrs={"prompt": "x" * 500, "nested": {"inner": ["z" * 400, "ok"]}})
    plain = make_span("plain", attrs={"a": 1})
    table = limited(_decoded([many, long_value, plain]).table, SpanLimits(attributes=20, events=8, value_chars=100))
    rows = table.to_pylist()
    attrs = [orjson.loads(r["attributes"]) for r in rows]
    assert attrs[0][TRUNCATED] == {"attributes": 10, "events": 4, "values": 8}
    assert len(attrs[0]) == 21 and rows[0]["dropped_attributes_count"] == 10
    events = orjson.loads(rows[0]["events"])
    assert [e["name"] for e in events] == [f"e{i}" for i in range(8)] and rows[0]["dropped_events_count"] == 4
    assert all(len(e["attributes"]["text"]) == 100 for e in events)
    assert attrs[1][TRUNCATED] == {"values": 2}
    assert attrs[1]["prompt"] == "x" * 100 and attrs[1]["nested"]["inner"] == ["z" * 100, "ok"]
    assert attrs[2] == {"a": 1}


def test_the_default_limits_keep_a_long_context_prompt_whole():
    prompt = "token " * 400_000  # ~2.4 MB: a long-context call
    table = _decoded([make_span("chat", attrs={"gen_ai.input.messages": prompt})]).table
    assert orjson.loads(table.column("attributes")[0].as_py())["gen_ai.input.messages"] == prompt


def test_spans_past_the_export_limit_are_refused_alike_before_and_after_the_decode(monkeypatch):
    monkeypatch.setattr(limits, "SPANS_PER_EXPORT", 3)
    spans = [make_span(f"s{i}") for i in range(5)] + [make_span("bad", span_id=bytes(8))]
    body = make_request(spans).SerializeToString()
    verdict = validate_request(body)
    batch = decode_request(body)
    assert (verdict.accepted, verdict.rejected) == (batch.accepted, batch.rejected) == (3, 3)
    assert verdict.error_message == batch.error_message
    assert "2 span(s) over the limit of 3 spans per export rejected" in batch.error_message
    assert batch.table.column("name").to_pylist() == ["s0", "s1", "s2"]


@pytest.mark.parametrize("depth", [60, 200])
def test_values_nested_past_the_parsers_depth_are_refused_as_invalid(depth):
    from trajscope.collector.otlp_decode import InvalidRequest

    body = deeply_nested_span(random.Random(depth), depth, "array")
    with pytest.raises(InvalidRequest):
        validate_request(body)


def test_a_million_distinct_attribute_keys_do_not_grow_the_decoder_without_bound():
    from trajscope.collector import normalise_columns

    for batch in range(40):
        spans = [make_span("k", attrs={f"minted.{batch}.{i}.{j}": j for j in range(50)}) for i in range(500)]
        decoded = _decoded(spans)
        assert decoded.accepted == 500
        assert len(normalise_columns._roles) <= normalise_columns.ROLES_KEPT
    # 40 × 500 × 50 = 1,000,000 distinct keys went through.
