from fastapi.testclient import TestClient

from tests.otlp_builders import make_request, make_span
from trajscope.collector.otlp_decode import decode_request
from trajscope.query.api import AppState, create_app
from trajscope.query.response_cache import MIN_SPANS, ResponseCache
from trajscope.storage.duckdb_store import DuckDBStore


def test_lru_by_bytes():
    cache = ResponseCache(max_bytes=100)
    cache.put("a", b"x" * 20)
    cache.put("b", b"y" * 20)
    assert cache.get("a") == b"x" * 20  # a is now the most recently used
    cache.put("c", b"z" * 20)
    cache.put("d", b"w" * 20)
    cache.put("e", b"v" * 20)
    cache.put("f", b"u" * 20)  # 120 bytes: the least recently used (b) goes
    assert cache.get("b") is None and cache.get("a") is not None
    assert cache.size_bytes <= 100
    cache.put("huge", b"h" * 30)  # over a quarter of the budget: not kept
    assert cache.get("huge") is None
    assert (cache.hits, cache.misses) == (2, 2)


def _write(store, spans):
    store.write(decode_request(make_request(spans).SerializeToString()).table)


def test_big_trace_answers_come_from_the_cache_until_the_trace_changes(tmp_path):
    store = DuckDBStore(tmp_path / "d")
    root = make_span("invoke_agent big", start=0, end=10**12)
    _write(store, [root] + [make_span(f"execute_tool t{i}", trace_id=root.trace_id, parent=root,
                                      start=i * 1000, end=i * 1000 + 500, attrs={"gen_ai.tool.name": "t"})
                            for i in range(MIN_SPANS)])
    state = AppState(store)
    state.ready = True
    api = TestClient(create_app(state))
    trace_id = root.trace_id.hex()
    for kind in ("trajectory", "latency"):
        first = api.get(f"/api/v1/traces/{trace_id}/{kind}")
        second = api.get(f"/api/v1/traces/{trace_id}/{kind}")
        assert (first.headers["x-trajscope-cache"], second.headers["x-trajscope-cache"]) == ("miss", "hit")
        assert first.content == second.content
        forced = api.get(f"/api/v1/traces/{trace_id}/{kind}", headers={"Cache-Control": "no-cache"})
        assert forced.headers["x-trajscope-cache"] == "miss" and forced.json() == first.json()
    # A late span changes the trace's version: the next answer is rebuilt and includes it.
    _write(store, [make_span("late", trace_id=root.trace_id, parent=root, start=5, end=6)])
    after = api.get(f"/api/v1/traces/{trace_id}/trajectory")
    assert after.headers["x-trajscope-cache"] == "miss"
    assert len(after.json()["steps"]) == MIN_SPANS + 2
    assert api.get(f"/api/v1/traces/{trace_id}/trajectory").headers["x-trajscope-cache"] == "hit"
    store.close()


def test_small_traces_are_not_cached(tmp_path):
    store = DuckDBStore(tmp_path / "d")
    root = make_span("small")
    _write(store, [root])
    state = AppState(store)
    state.ready = True
    api = TestClient(create_app(state))
    for _ in range(2):
        assert api.get(f"/api/v1/traces/{root.trace_id.hex()}/trajectory").headers["x-trajscope-cache"] == "miss"
    assert api.get(f"/api/v1/traces/{'0' * 31}1/trajectory").status_code == 404
    store.close()


def test_table_layout_over_the_api_matches_the_objects_and_is_cached_apart(tmp_path, monkeypatch):
    from trajscope.storage import duckdb_store

    # Small enough that the time-window fetch of big traces is used.
    monkeypatch.setattr(duckdb_store, "INDEX_SCAN_MAX_ROWS", 10)
    store = DuckDBStore(tmp_path / "d")
    root = make_span("invoke_agent big", start=0, end=10**12)
    _write(store, [root] + [make_span(f"chat {i}", trace_id=root.trace_id, parent=root, start=i * 1000,
                                      end=i * 1000 + 500, attrs={"input.value": f"q{i}"}) for i in range(MIN_SPANS)])
    state = AppState(store)
    state.ready = True
    api = TestClient(create_app(state))
    trace_id = root.trace_id.hex()
    for kind, key in (("trajectory", "steps"), ("latency", "spans")):
        objects = api.get(f"/api/v1/traces/{trace_id}/{kind}").json()
        table = api.get(f"/api/v1/traces/{trace_id}/{kind}?layout=table")
        assert table.headers["x-trajscope-cache"] == "miss"  # not the objects answer from the cache
        body = table.json()
        rows = [{f: v for f, v in zip(body[key]["fields"], row, strict=True) if f != "virtual" or v}
                for row in body[key]["rows"]]
        assert rows == objects[key] and len(rows) == MIN_SPANS + 1
        assert api.get(f"/api/v1/traces/{trace_id}/{kind}?layout=columns").status_code in (400, 422)
    store.close()
