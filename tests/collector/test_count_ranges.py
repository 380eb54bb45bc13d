"""Numbers are decided at the door: both decoders clamp token counts to [0, TOKEN_MAX] and costs to
[0, COST_MAX_USD] (NaN: unknown) and flag each clamped span, so that no stored combination can overflow a
trace summary (one export used to jam every later load)."""

from __future__ import annotations

import orjson
import pytest

from tests.otlp_builders import make_request, make_span
from trajscope.collector import otlp_decode
from trajscope.collector.otlp_decode import decode_request
from trajscope.collector.otlp_json import decode_json_request, encode_json_request
from trajscope.collector.ranges import CLAMPED, COST_MAX_USD, TOKEN_MAX
from trajscope.storage.duckdb_store import DuckDBStore

INT64_MAX = 2**63 - 1


def _decode(decoder: str, request, monkeypatch):
    if decoder == "json":
        return decode_json_request(orjson.dumps(encode_json_request(request))).table
    monkeypatch.setattr(otlp_decode, "_columnar", decoder == "columnar")
    return decode_request(request.SerializeToString()).table


@pytest.mark.parametrize("decoder", ["columnar", "reference", "json"])
def test_extreme_numbers_are_clamped_flagged_and_their_trace_still_summarises(decoder, monkeypatch):
    trace_id = b"\x02" * 16
    root = make_span("root", trace_id=trace_id)
    spans = [root,
             make_span("huge", trace_id=trace_id, parent=root, attrs={"gen_ai.usage.input_tokens": INT64_MAX}),
             make_span("one", trace_id=trace_id, parent=root, attrs={
                 "gen_ai.usage.input_tokens": 1, "gen_ai.usage.cache_read.input_tokens": INT64_MAX}),
             make_span("negative", trace_id=trace_id, parent=root, attrs={"gen_ai.usage.output_tokens": -5}),
             make_span("text", trace_id=trace_id, parent=root, attrs={"gen_ai.usage.output_tokens": str(2**40)}),
             make_span("costly", trace_id=trace_id, parent=root, attrs={"gen_ai.usage.cost": 1e300}),
             make_span("nan", trace_id=trace_id, parent=root, attrs={"gen_ai.usage.cost": float("nan")}),
             make_span("negative cost", trace_id=trace_id, parent=root, attrs={"gen_ai.usage.cost": -1.5}),
             make_span("fine", trace_id=trace_id, parent=root, attrs={"gen_ai.usage.input_tokens": 7})]
    table = _decode(decoder, make_request(spans), monkeypatch)
    rows = {row["name"]: row for row in table.to_pylist()}
    assert rows["huge"]["input_tokens"] == TOKEN_MAX
    assert rows["one"]["input_tokens"] == TOKEN_MAX and rows["one"]["cached_input_tokens"] == TOKEN_MAX
    assert rows["negative"]["output_tokens"] == 0
    assert rows["text"]["output_tokens"] == TOKEN_MAX
    flags = {name: orjson.loads(row["attributes"]).get(CLAMPED) for name, row in rows.items()}
    assert flags["huge"] == ["input_tokens"]
    assert sorted(flags["one"]) == ["cached_input_tokens", "input_tokens"]
    assert flags["negative"] == ["output_tokens"] and flags["text"] == ["output_tokens"]
    assert flags["fine"] is None and flags["root"] is None and rows["fine"]["input_tokens"] == 7
    assert rows["root"]["input_tokens"] is None and rows["root"]["cost_usd"] is None  # unknown stays unknown
    assert rows["costly"]["cost_usd"] == COST_MAX_USD and flags["costly"] == ["cost_usd"]
    assert rows["nan"]["cost_usd"] is None  # not a number: no cost reported
    assert rows["negative cost"]["cost_usd"] == 0 and flags["negative cost"] == ["cost_usd"]
    store = DuckDBStore(":memory:")
    assert store.write(table) == len(spans)
    (row,) = store.query("SELECT input_tokens, output_tokens FROM traces").to_pylist()
    assert row == {"input_tokens": 2 * TOKEN_MAX + 7, "output_tokens": TOKEN_MAX}
    after = decode_request(make_request([make_span("next")]).SerializeToString()).table
    assert store.write(after) == 1  # the store keeps taking spans
