"""Analyst access end to end: the SQL endpoint in every format, its errors, the CLI (through the API and
on a data directory), the export, and the Polars client — against a real server fed by `trajscope demo`."""

from __future__ import annotations

import csv
import io
import json
import threading
import time

import httpx
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.e2e.conftest import make_server, run_cli
from tests.otlp_builders import make_span
from trajscope.client import Client, TrajscopeError

QUERY = ("SELECT agent_name, count(*) AS runs, sum(span_count) AS spans FROM traces "
         "GROUP BY agent_name ORDER BY agent_name")
HEAVY = "SELECT sum(a.range * b.range) FROM range(300000) a, range(300000) b"


def _cli(*args: str, check: bool = True):
    return run_cli(*args, check=check)


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    srv = make_server(tmp_path_factory.mktemp("analyst"), "--sql-timeout", "4")
    srv.start()
    _cli("demo", "--endpoint", f"http://127.0.0.1:{srv.http_port}", "--sessions", "12", "--seed", "5")
    yield srv
    if srv.proc and srv.proc.poll() is None:
        srv.stop()


def _sql(srv, **body) -> httpx.Response:
    return httpx.post(f"{srv.api}/api/v1/sql", json=body, timeout=60)


def test_every_format_carries_the_same_answer(fed):
    as_json = _sql(fed, sql=QUERY).json()
    assert as_json["truncated"] is False and as_json["row_count"] == len(as_json["rows"]) >= 2
    expected = [(r["agent_name"], r["runs"], int(r["spans"])) for r in as_json["rows"]]
    # ...and it matches the traces the API lists.
    listed = httpx.get(f"{fed.api}/api/v1/traces", params={"limit": 1000}).json()["traces"]
    assert sum(r[1] for r in expected) == len(listed)

    text = _sql(fed, sql=QUERY, format="csv")
    assert text.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.text)))
    assert [(r["agent_name"], int(r["runs"]), int(r["spans"])) for r in rows] == expected

    arrow = _sql(fed, sql=QUERY, format="arrow")
    assert arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(arrow.content).read_all()
    assert list(zip(*(table.column(c).to_pylist() for c in ("agent_name", "runs")), strict=True)) == [
        e[:2] for e in expected]

    parquet = _sql(fed, sql=QUERY, format="parquet")
    table = pq.read_table(io.BytesIO(parquet.content))
    assert [int(v) for v in table.column("spans").to_pylist()] == [e[2] for e in expected]


def test_row_limit_and_truncation(fed):
    body = _sql(fed, sql="SELECT span_id FROM spans", limit=5).json()
    assert body["row_count"] == 5 and body["truncated"] is True
    response = _sql(fed, sql="SELECT span_id FROM spans", limit=5, format="arrow")
    assert response.headers["x-trajscope-truncated"] == "true"
    assert pa.ipc.open_stream(response.content).read_all().num_rows == 5


@pytest.mark.parametrize(("sql", "status", "code"), [
    ("DELETE FROM spans", 400, "forbidden"),
    ("SELECT * FROM read_csv('/etc/passwd')", 400, "forbidden"),
    ("ATTACH '/tmp/evil.duckdb'", 400, "forbidden"),
    ("SELECT 1; SELECT 2", 400, "forbidden"),
    ("SELEKT 1", 400, "invalid_sql"),
    ("SELECT no_such_column FROM spans", 400, "invalid_sql"),
])
def test_errors_come_back_in_one_envelope(fed, sql, status, code):
    response = _sql(fed, sql=sql)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_a_request_can_only_lower_the_deadline(fed):
    started = time.monotonic()
    response = _sql(fed, sql=HEAVY, timeout_s=0.5)
    assert response.status_code == 408 and response.json()["error"]["code"] == "timeout"
    assert time.monotonic() - started < 3.5  # its own 0.5 s, not the server's 4 s
    started = time.monotonic()
    response = _sql(fed, sql=HEAVY, timeout_s=600)
    assert response.status_code == 408
    assert time.monotonic() - started < 12  # capped at the server's --sql-timeout 4


def test_a_heavy_query_never_stops_ingestion(fed):
    outcome: dict[str, object] = {}

    def heavy() -> None:
        outcome["response"] = _sql(fed, sql=HEAVY)
        outcome["ended"] = time.monotonic()

    runner = threading.Thread(target=heavy)
    runner.start()
    time.sleep(0.5)  # the query is running
    acks, trace_ids = [], []
    for i in range(10):
        root = make_span(f"during-query-{i}")
        trace_ids.append(root.trace_id.hex())
        t0 = time.monotonic()
        response = fed.export([root])
        assert response.status_code == 200
        acks.append((time.monotonic() - t0, time.monotonic()))
    runner.join(60)
    assert outcome["response"].status_code == 408  # the query ran to its deadline...
    assert all(at < outcome["ended"] for _, at in acks)  # ...and every export was acknowledged meanwhile
    assert max(latency for latency, _ in acks) < 2.0
    for trace_id in trace_ids:
        assert httpx.get(f"{fed.api}/api/v1/traces/{trace_id}").status_code == 200


def test_cli_sql_through_the_api(fed, tmp_path):
    out = _cli("sql", QUERY, "--url", fed.api).stdout
    header, rule, *rows = out.splitlines()
    assert header.split() == ["agent_name", "runs", "spans"] and set(rule) <= {"-", " "}
    expected = _sql(fed, sql=QUERY).json()["rows"]
    assert rows[-1] == f"({len(expected)} rows)"
    assert [line.split()[0] for line in rows[:-1]] == [r["agent_name"] or "NULL" for r in expected]
    target = tmp_path / "out.json"
    _cli("sql", QUERY, "--url", fed.api, "--format", "json", "-o", str(target))
    assert json.loads(target.read_text())["rows"] == expected
    refused = _cli("sql", "DROP TABLE spans", "--url", fed.api, check=False)
    assert refused.returncode == 1 and "forbidden" in refused.stderr


def test_polars_client(fed):
    with Client(fed.api) as client:
        df = client.sql(QUERY)
        assert isinstance(df, pl.DataFrame)
        assert df["agent_name"].to_list() == [r["agent_name"] for r in _sql(fed, sql=QUERY).json()["rows"]]
        errors = client.traces(status="error")
        assert errors.height >= 1 and (errors["error_count"] > 0).all()
        trace_id = errors["trace_id"][0]
        assert client.trace(trace_id)["trace_id"] == trace_id
        assert client.trajectory(trace_id)["steps"]
        assert client.latency(trace_id)["critical_path"]
        with pytest.raises(TrajscopeError) as err:
            client.sql("SELECT * FROM read_text('/etc/passwd')")
        assert err.value.code == "forbidden" and err.value.status == 400
        with pytest.raises(TrajscopeError) as err:
            client.trace("0" * 31 + "1")
        assert err.value.code == "not_found"
        with pytest.raises(TypeError, match="unknown trace filter"):
            client.traces(errors_only=True)


def test_polars_client_retrieval_views_and_stats(fed):
    root = make_span("invoke_agent rag", attrs={"gen_ai.agent.name": "rag"})
    docs = [{"id": "doc-1", "score": 0.9, "content": "It's sunny."}, {"id": "doc-2", "score": 0.4}]
    step = make_span("retrieval forecasts", trace_id=root.trace_id, parent=root, attrs={
        "gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "forecasts",
        "gen_ai.retrieval.query.text": "weather in O'Hare?", "gen_ai.retrieval.documents": json.dumps(docs)})
    assert fed.export([root, step]).status_code == 200
    trace_id = root.trace_id.hex()
    with Client(fed.api) as client:
        steps = client.retrievals(trace_id=trace_id)
        assert steps.height == 1
        assert steps.row(0, named=True)["query"] == "weather in O'Hare?"  # a quote in a value stays a value
        assert client.retrievals(query="weather in O'Hare?")["trace_id"].to_list() == [trace_id]
        got = client.retrieved_documents(trace_id=trace_id)
        assert got.select("rank", "document_id", "score").rows() == [(1, "doc-1", 0.9), (2, "doc-2", 0.4)]
        assert got["preview"].to_list() == ["It's sunny.", None]
        stats = client.retrieval_stats("index")
        assert {g["key"]: g["calls"] for g in stats["groups"]}["forecasts"] == 1
        with pytest.raises(TypeError, match="not a column name"):
            client.retrievals(**{"1 OR 1=1 --": "x"})


def test_export_then_sql_on_the_data_directory(fed, tmp_path):
    total = _sql(fed, sql="SELECT count(*) AS n FROM spans").json()["rows"][0]["n"]
    days = _sql(fed, sql="SELECT DISTINCT CAST(to_timestamp(start_time_unix_nano / 1e9) AT TIME ZONE 'UTC' "
                         "AS DATE)::VARCHAR AS d FROM spans ORDER BY d").json()["rows"]
    first, last = days[0]["d"], days[-1]["d"]
    until = time.strftime("%Y-%m-%d", time.gmtime(time.mktime(time.strptime(last, "%Y-%m-%d")) + 2 * 86400))
    done = _cli("export", "--since", first, "--until", until, "-o", str(tmp_path / "export"), "--url", fed.api)
    assert "exporting [" in done.stderr and f"exported {total} spans" in done.stderr
    files = sorted((tmp_path / "export").glob("spans-*.parquet"))
    assert [f.name for f in files] == [f"spans-{d['d']}.parquet" for d in days]
    assert sum(pq.read_metadata(f).num_rows for f in files) == total
    # With the server stopped, the same data directory answers read-only.
    fed.stop()
    out = _cli("sql", "SELECT count(*) AS n FROM spans", "--data", str(fed.data)).stdout
    assert out.splitlines()[2].strip() == str(total)
