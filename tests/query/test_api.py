"""The query API in-process (FastAPI test client) over an in-memory store."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.otlp_builders import make_request, make_span
from trajscope.collector.otlp_decode import decode_request
from trajscope.query.api import AppState, create_app
from trajscope.storage.duckdb_store import DuckDBStore


@pytest.fixture
def client():
    store = DuckDBStore(":memory:")
    state = AppState(store)
    state.ready = True
    yield TestClient(create_app(state)), store
    store.close()


def test_api_root_serves_the_web_ui_from_the_package(client):
    api, _ = client
    response = api.get("/", follow_redirects=False)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert '<script src="/ui/app.js">' in response.text
    for asset, kind in (("/ui/app.js", "javascript"), ("/ui/app.css", "text/css")):
        served = api.get(asset)
        assert served.status_code == 200 and kind in served.headers["content-type"]
    # Offline: nothing is loaded from another origin.
    assert "http" not in response.text.replace("http-equiv", "")
    assert "https://" not in api.get("/ui/app.js").text
    assert api.get("/docs").status_code == 200


def test_api_health_is_503_until_ready():
    store = DuckDBStore(":memory:")
    api = TestClient(create_app(AppState(store)))
    response = api.get("/api/v1/health")
    assert response.status_code == 503 and response.json()["error"]["code"] == "not_ready"
    store.close()


def test_api_trace_list_paging_and_filters(client):
    api, store = client
    ids = []
    for i in range(5):
        root = make_span(f"run {i}", start=(i + 1) * 10**9, end=(i + 1) * 10**9 + (i + 1) * 10**6)
        store.write(decode_request(make_request([root]).SerializeToString()).table)
        ids.append(root.trace_id.hex())
    first = api.get("/api/v1/traces", params={"limit": 2}).json()
    assert [t["trace_id"] for t in first["traces"]] == ids[::-1][:2]
    second = api.get("/api/v1/traces", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [t["trace_id"] for t in second["traces"]] == ids[::-1][2:4]
    slow = api.get("/api/v1/traces", params={"min_duration_ms": 3}).json()["traces"]
    assert sorted(t["trace_id"] for t in slow) == sorted(ids[2:])
    window = api.get("/api/v1/traces", params={"since": str(2 * 10**9), "until": "1970-01-01T00:00:04Z"})
    assert sorted(t["trace_id"] for t in window.json()["traces"]) == sorted(ids[1:3])


def test_trace_list_search_cost_and_guardrail_filters(tmp_path):
    from fastapi.testclient import TestClient

    from tests.otlp_builders import make_request, make_span
    from trajscope.collector.otlp_decode import decode_request
    from trajscope.query.api import AppState, create_app
    from trajscope.storage.duckdb_store import DuckDBStore

    store = DuckDBStore(tmp_path / "d")
    cheap = make_span("invoke_agent cheap", start=1, end=2)
    pricey = make_span("invoke_agent pricey", start=3, end=4)
    store.write(decode_request(make_request([
        cheap, make_span("lookup_weather", trace_id=cheap.trace_id, parent=cheap, start=1, end=2),
        pricey, make_span("chat", trace_id=pricey.trace_id, parent=pricey, start=3, end=4,
                          attrs={"gen_ai.usage.cost": 0.5, "gen_ai.usage.input_tokens": 1}),
        make_span("pii", trace_id=pricey.trace_id, parent=pricey, start=3, end=4,
                  attrs={"guardrail.name": "pii", "guardrail.action": "block"}),
    ]).SerializeToString()).table)
    state = AppState(store)
    state.ready = True
    api = TestClient(create_app(state))

    def names(**params):
        return sorted(t["root_name"] for t in api.get("/api/v1/traces", params=params).json()["traces"])

    assert names() == ["invoke_agent cheap", "invoke_agent pricey"]
    assert names(q="WEATHER") == ["invoke_agent cheap"]  # a span name, case-insensitive
    assert names(q=pricey.span_id.hex()) == ["invoke_agent pricey"]  # a span id
    assert names(q=cheap.trace_id.hex()) == ["invoke_agent cheap"]  # a trace id
    assert names(q="nothing-like-this") == []
    assert names(min_cost_usd=0.1) == ["invoke_agent pricey"]
    assert names(guardrail="hits") == ["invoke_agent pricey"]
    assert api.get("/api/v1/traces", params={"guardrail": "maybe"}).status_code == 400
    store.close()


@pytest.mark.parametrize("caught_up", [True, False])
def test_reads_wait_for_loads_only_when_some_are_pending(caught_up):
    # A read first waits until every acknowledged span is loaded; when nothing is pending it does not wait
    # (nor leave the event loop), and an API key is still checked first.
    store = DuckDBStore(":memory:")
    store.write(decode_request(make_request([make_span("root")]).SerializeToString()).table)
    waited = []
    state = AppState(store, api_key="k", sync=lambda timeout: waited.append(timeout) or True,
                     caught_up=lambda: caught_up, read_wait_s=0.25)
    state.ready = True
    api = TestClient(create_app(state))
    assert api.get("/api/v1/traces").status_code == 401 and waited == []
    response = api.get("/api/v1/traces", headers={"Authorization": "Bearer k"})
    assert response.status_code == 200 and len(response.json()["traces"]) == 1
    assert waited == ([] if caught_up else [0.25])  # bounded by read_wait_s
    assert "x-trajscope-behind" not in response.headers
    store.close()


def test_a_read_behind_an_overloaded_ingest_answers_and_says_how_far_behind():
    store = DuckDBStore(":memory:")
    store.write(decode_request(make_request([make_span("root")]).SerializeToString()).table)
    state = AppState(store, sync=lambda timeout: False, caught_up=lambda: False, unloaded=lambda: 4321)
    state.ready = True
    response = TestClient(create_app(state)).get("/api/v1/traces")
    assert response.status_code == 200 and len(response.json()["traces"]) == 1
    assert response.headers["x-trajscope-behind"] == "4321"
    store.close()
