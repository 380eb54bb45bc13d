"""Token counts are decided at the door: clamped to [0, TOKEN_MAX] by both decoders, so that no stored
combination of them can overflow a trace summary (one export used to jam every later load)."""

from __future__ import annotations

import orjson
import pytest

from tests.otlp_builders import make_request, make_span
from trajscope.collector.normalise import TOKEN_MAX
from trajscope.collector.otlp_decode import decode_request
from trajscope.collector.otlp_json import decode_json_request, encode_json_request
from trajscope.storage.duckdb_store import DuckDBStore

INT64_MAX = 2**63 - 1


def _decoders():
    return {
        "columnar": lambda request: decode_request(request.SerializeToString()).table,
        "json": lambda request: decode_json_request(orjson.dumps(encode_json_request(request))).table,
    }


@pytest.mark.parametrize("decoder", ["columnar", "json"])
def test_extreme_token_counts_are_clamped_and_their_trace_still_summarises(decoder):
    trace_id = b"\x02" * 16
    root = make_span("root", trace_id=trace_id)
    spans = [root,
             make_span("huge", trace_id=trace_id, parent=root, attrs={"gen_ai.usage.input_tokens": INT64_MAX}),
             make_span("one", trace_id=trace_id, parent=root, attrs={
                 "gen_ai.usage.input_tokens": 1, "gen_ai.usage.cache_read.input_tokens": INT64_MAX}),
             make_span("negative", trace_id=trace_id, parent=root, attrs={"gen_ai.usage.output_tokens": -5}),
             make_span("text", trace_id=trace_id, parent=root, attrs={"gen_ai.usage.output_tokens": str(2**40)})]
    table = _decoders()[decoder](make_request(spans))
    by_name = dict(zip(table.column("name").to_pylist(), table.to_pylist(), strict=True))
    assert by_name["huge"]["input_tokens"] == TOKEN_MAX
    assert by_name["one"]["input_tokens"] == TOKEN_MAX and by_name["one"]["cached_input_tokens"] == TOKEN_MAX
    assert by_name["negative"]["output_tokens"] == 0
    assert by_name["text"]["output_tokens"] == TOKEN_MAX
    store = DuckDBStore(":memory:")
    assert store.write(table) == 5
    (row,) = store.query("SELECT input_tokens, output_tokens FROM traces").to_pylist()
    assert row == {"input_tokens": 2 * TOKEN_MAX, "output_tokens": TOKEN_MAX}
    after = decode_request(make_request([make_span("next")]).SerializeToString()).table
    assert store.write(after) == 1  # the store keeps taking spans
