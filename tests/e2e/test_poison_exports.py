"""The issue's poison exports against a real server: out-of-range token counts no longer stop ingestion,
are never acknowledged-then-dropped, and survive a restart."""

from __future__ import annotations

import httpx
import orjson

from tests.e2e.conftest import make_server
from tests.otlp_builders import make_request, make_span
from trajscope.collector.otlp_json import encode_json_request
from trajscope.collector.ranges import CLAMPED, TOKEN_MAX

INT64_MAX = 2**63 - 1


def test_out_of_range_token_counts_are_stored_clamped_and_ingestion_goes_on(tmp_path):
    server = make_server(tmp_path)
    server.start()
    trace_id = bytes(range(1, 17))
    pair = [make_span("huge", trace_id=trace_id, attrs={"gen_ai.usage.input_tokens": INT64_MAX}),
            make_span("one", trace_id=trace_id, attrs={"gen_ai.usage.input_tokens": 1})]
    assert server.export(pair).status_code == 200
    cache = [make_span("cache", attrs={"gen_ai.usage.input_tokens": 1,
                                       "gen_ai.usage.cache_read.input_tokens": INT64_MAX})]
    assert server.export(cache).status_code == 200
    as_json = [make_span("cache over json", attrs={"gen_ai.usage.input_tokens": 1,
                                                   "gen_ai.usage.cache_read.input_tokens": INT64_MAX})]
    response = httpx.post(server.otlp_http, content=orjson.dumps(encode_json_request(make_request(as_json))),
                          headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 200, response.text
    normal = [make_span("normal")]
    assert server.export(normal).status_code == 200

    def check() -> None:
        assert server.get(f"/api/v1/traces/{normal[0].trace_id.hex()}").status_code == 200
        spans = server.get(f"/api/v1/traces/{trace_id.hex()}").json()["spans"]
        by_name = {s["name"]: s for s in spans}
        assert by_name["huge"]["input_tokens"] == TOKEN_MAX and by_name["one"]["input_tokens"] == 1
        assert by_name["huge"]["attributes"][CLAMPED] == ["input_tokens"]
        for span in (cache[0], as_json[0]):
            (stored,) = server.get(f"/api/v1/traces/{span.trace_id.hex()}").json()["spans"]
            assert stored["cached_input_tokens"] == TOKEN_MAX
        (run,) = [t for t in server.get("/api/v1/traces", limit=10).json()["traces"]
                  if t["trace_id"] == trace_id.hex()]
        assert run["input_tokens"] == TOKEN_MAX + 1
        ingest = server.get("/api/v1/health").json()["ingest"]
        assert (ingest["load_failures"], ingest["failed_after_ack"], ingest["quarantine_entries"]) == (0, 0, 0)

    check()
    assert server.stop() == 0
    server.start()  # nothing replayed jams the next run either
    check()
    assert server.stop() == 0
