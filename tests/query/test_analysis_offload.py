from concurrent.futures import Executor, ProcessPoolExecutor

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.otlp_builders import make_request, make_span
from trajscope.analysis.latency import COLUMNS
from trajscope.collector.decode_pool import make_decoder
from trajscope.collector.otlp_decode import decode_request
from trajscope.query import analysis_offload
from trajscope.query.analysis_offload import latency_body, latency_json
from trajscope.query.api import AppState, create_app
from trajscope.storage.duckdb_store import DuckDBStore


class _Counting(Executor):
    """An executor that counts what is handed to it."""

    def __init__(self, inner: Executor) -> None:
        self.inner, self.submitted = inner, 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1
        return self.inner.submit(fn, *args, **kwargs)


@pytest.fixture(scope="module")
def workers():
    pool = make_decoder(1)
    yield pool
    pool.shutdown()


def _run(n: int):
    root = make_span("invoke_agent big", start=0, end=10**9)
    spans = [root] + [make_span(f"{'chat' if i % 3 else 'execute_tool'} s{i}", trace_id=root.trace_id, parent=root,
                                start=i * 1000, end=i * 1000 + 5000,
                                attrs={"gen_ai.tool.name": f"t{i % 4}", "gen_ai.request.model": "m"})
                      for i in range(n - 1)]
    return root, decode_request(make_request(spans).SerializeToString()).table


def test_a_big_run_is_analysed_in_a_worker_with_the_same_answer(workers, monkeypatch):
    monkeypatch.setattr(analysis_offload, "MIN_SPANS", 50)
    root, table = _run(80)
    table = table.select(list(COLUMNS))
    counting = _Counting(workers)
    for layout in ("objects", "table"):
        assert orjson.loads(latency_body(counting, root.trace_id.hex(), table, layout)) == orjson.loads(
            latency_json(root.trace_id.hex(), table, layout))
    assert counting.submitted == 2
    small = table.slice(0, 49)
    assert latency_body(counting, root.trace_id.hex(), small, "table") == latency_json(root.trace_id.hex(), small,
                                                                                        "table")
    assert counting.submitted == 2  # below MIN_SPANS: analysed here


def test_a_pool_that_is_gone_leaves_the_analysis_here(monkeypatch):
    monkeypatch.setattr(analysis_offload, "MIN_SPANS", 10)
    root, table = _run(20)
    table = table.select(list(COLUMNS))
    pool = ProcessPoolExecutor(1)
    pool.shutdown()
    assert latency_body(pool, root.trace_id.hex(), table, "table") == latency_json(root.trace_id.hex(), table, "table")


def test_the_latency_endpoint_answers_the_same_with_workers(workers, monkeypatch, tmp_path):
    monkeypatch.setattr(analysis_offload, "MIN_SPANS", 50)
    store = DuckDBStore(tmp_path / "d")
    root, table = _run(120)
    store.write(table)
    answers = []
    for executor in (None, _Counting(workers)):
        state = AppState(store)
        state.ready = True
        state.analysis_executor = executor
        api = TestClient(create_app(state))
        response = api.get(f"/api/v1/traces/{root.trace_id.hex()}/latency?layout=table")
        assert response.status_code == 200
        answers.append(response.json())
    assert answers[0] == answers[1] and answers[0]["spans"]["rows"]
    assert executor.submitted == 1
    store.close()
