"""Analysts' SQL: every escape attempt is refused — by the engine, not just by the text check."""

import contextlib

import pytest

from tests.otlp_builders import make_request, make_span
from trajscope.collector.otlp_decode import decode_request
from trajscope.query import analyst_sql
from trajscope.query.analyst_sql import SqlError, SqlErrorCode, check_statement, run_sql
from trajscope.storage.duckdb_store import DuckDBStore


@pytest.fixture
def store(tmp_path):
    s = DuckDBStore(tmp_path / "data")
    root = make_span("agent", attrs={"gen_ai.operation.name": "invoke_agent"})
    s.write(decode_request(make_request([root, make_span("chat", trace_id=root.trace_id, parent=root, attrs={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"})]).SerializeToString()).table)
    yield s
    s.close()


def _run(store, sql, **kw):
    with store.cursor() as cur:
        return run_sql(cur, sql, **kw)


ESCAPES = [
    # writes and DDL
    ("INSERT INTO spans SELECT * FROM spans", "forbidden"),
    ("DELETE FROM traces", "forbidden"),
    ("UPDATE spans SET name = 'x'", "forbidden"),
    ("DROP TABLE spans", "forbidden"),
    ("CREATE TABLE stolen AS SELECT * FROM spans", "forbidden"),
    ("CREATE VIEW v AS SELECT 1", "forbidden"),
    ("ALTER TABLE spans ADD COLUMN x INT", "forbidden"),
    ("TRUNCATE spans", "forbidden"),
    ("CHECKPOINT", "forbidden"),
    ("VACUUM", "forbidden"),
    # several statements
    ("SELECT 1; SELECT 2", "forbidden"),
    ("SELECT 1; DROP TABLE spans", "forbidden"),
    # files, databases, extensions, settings
    ("COPY spans TO '/tmp/trajscope-stolen.csv'", "forbidden"),
    ("COPY (SELECT * FROM spans) TO '/tmp/trajscope-stolen.parquet' (FORMAT parquet)", "forbidden"),
    ("ATTACH '/tmp/trajscope-evil.duckdb' AS evil", "forbidden"),
    ("DETACH evil", "forbidden"),
    ("INSTALL httpfs", "forbidden"),
    ("LOAD httpfs", "forbidden"),
    ("SET enable_external_access = true", "forbidden"),
    ("SET memory_limit = '100GB'", "forbidden"),
    ("RESET memory_limit", "forbidden"),
    ("PRAGMA memory_limit = '1TB'", "forbidden"),
    ("PRAGMA database_list", "forbidden"),
    ("CALL pragma_version()", "forbidden"),
    ("EXPORT DATABASE '/tmp/trajscope-export'", "forbidden"),
    ("IMPORT DATABASE '/tmp/trajscope-export'", "forbidden"),
    ("USE memory", "forbidden"),
    # reading files or the network from inside a SELECT: refused by the engine
    ("SELECT * FROM read_csv('/etc/passwd')", "forbidden"),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", "forbidden"),
    ("SELECT * FROM read_parquet('/tmp/x.parquet')", "forbidden"),
    ("SELECT * FROM parquet_scan('/tmp/x.parquet')", "forbidden"),
    ("SELECT * FROM read_json('/etc/hostname')", "forbidden"),
    ("SELECT * FROM read_json_auto('/etc/hostname')", "forbidden"),
    ("SELECT * FROM read_text('/etc/passwd')", "forbidden"),
    ("SELECT * FROM read_blob('/etc/passwd')", "forbidden"),
    ("SELECT * FROM glob('/etc/*')", "forbidden"),
    ("SELECT * FROM sniff_csv('/etc/passwd')", "forbidden"),
    ("SELECT * FROM read_parquet('https://example.com/x.parquet')", "forbidden"),
    ("SELECT * FROM read_parquet('s3://bucket/x.parquet')", "forbidden"),
    ("WITH t AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM t", "forbidden"),
    ("SELECT (SELECT count(*) FROM read_text('/etc/passwd'))", "forbidden"),
    ("SELECT * FROM '/etc/passwd'", "invalid_sql"),  # a path is not a table: no file is opened
    ("SELECT * FROM 'https://example.com/x.csv'", "forbidden"),
    ("EXPLAIN SELECT * FROM read_csv('/etc/passwd')", "forbidden"),
    # EXPLAIN ANALYZE runs the statement it explains
    ("EXPLAIN ANALYZE DELETE FROM spans", "forbidden"),
    ("EXPLAIN ANALYZE DELETE FROM traces", "forbidden"),
    ("explain analyse INSERT INTO spans SELECT * FROM spans", "forbidden"),
    ("EXPLAIN ANALYZE CREATE TABLE evil AS SELECT 1 AS x", "forbidden"),
    ("/* hi */ -- there\n EXPLAIN ANALYZE UPDATE traces SET span_count = 0", "forbidden"),
    ("EXPLAIN ANALYZE SET threads = 1", "forbidden"),
    ("EXPLAIN ANALYZE CHECKPOINT", "forbidden"),
    ("EXPLAIN DROP TABLE traces", "forbidden"),
    # not SQL at all
    ("SELEC 1", "invalid_sql"),
    ("", "invalid_sql"),
    ("SELECT * FROM no_such_table", "invalid_sql"),
]


@pytest.mark.parametrize(("sql", "code"), ESCAPES, ids=[s[:48] for s, _ in ESCAPES])
def test_escape_attempts_are_refused(store, sql, code):
    before = store.query("SELECT count(*) AS n FROM spans").column("n")[0].as_py()
    with pytest.raises(SqlError) as err:
        _run(store, sql)
    assert err.value.code == SqlErrorCode(code), err.value.message
    assert err.value.message
    assert store.query("SELECT count(*) AS n FROM spans").column("n")[0].as_py() == before


def test_the_engine_refuses_file_access_even_past_the_statement_check(store, monkeypatch, tmp_path):
    # With the text/parser check switched off, DuckDB itself still refuses files and writes nothing.
    monkeypatch.setattr(analyst_sql, "check_statement", lambda con, sql: None)
    target = tmp_path / "stolen.csv"
    for sql in (f"COPY spans TO '{target}'", "SELECT * FROM read_csv('/etc/passwd')",
                f"ATTACH '{tmp_path / 'evil.duckdb'}'", "SET enable_external_access = true",
                "SET memory_limit = '100GB'", "INSTALL httpfs"):
        with pytest.raises(SqlError) as err:
            _run(store, sql)
        assert err.value.code == SqlErrorCode.FORBIDDEN, (sql, err.value.message)
    assert not target.exists()
    assert store.query("SELECT current_setting('enable_external_access') AS v").column("v")[0].as_py() is False


def _tables_and_counts(store):
    tables = store.query("SELECT table_name FROM duckdb_tables() ORDER BY 1").column("table_name").to_pylist()
    counts = store.query("SELECT (SELECT count(*) FROM spans) AS s, (SELECT count(*) FROM traces) AS t").to_pylist()
    return tables, counts


@pytest.mark.parametrize("sql", ["EXPLAIN ANALYZE DELETE FROM traces", "EXPLAIN ANALYZE CREATE TABLE evil AS SELECT 1",
                                 "EXPLAIN ANALYZE UPDATE spans SET name = 'x'"])
def test_explain_analyze_of_a_write_changes_nothing(store, sql):
    before = _tables_and_counts(store)
    with pytest.raises(SqlError) as err:
        _run(store, sql)
    assert err.value.code == SqlErrorCode.FORBIDDEN
    assert _tables_and_counts(store) == before
    assert store.query("SELECT count(*) AS n FROM spans WHERE name = 'x'").column("n")[0].as_py() == 0


def test_a_write_past_the_statement_check_is_rolled_back(store, monkeypatch):
    # The engine-side guard for writes: every analyst query runs in a transaction that is rolled back.
    monkeypatch.setattr(analyst_sql, "check_statement", lambda con, sql: None)
    before = _tables_and_counts(store)
    for sql in ("DELETE FROM traces", "EXPLAIN ANALYZE DELETE FROM spans", "CREATE TABLE evil AS SELECT 1 AS x",
                "UPDATE spans SET name = 'x'", "DROP VIEW llm_calls"):
        with contextlib.suppress(SqlError):  # refused by the engine is as good
            _run(store, sql)
        assert _tables_and_counts(store) == before, sql
    assert _run(store, "SELECT count(*) AS n FROM llm_calls").table.num_rows == 1
    assert store.query("SELECT count(*) AS n FROM spans WHERE name = 'x'").column("n")[0].as_py() == 0


READS = [
    "SELECT name, category FROM spans ORDER BY name",
    "EXPLAIN ANALYZE SELECT count(*) FROM spans",
    "-- a comment first\nEXPLAIN SELECT 1",
    "WITH x AS (SELECT * FROM traces) SELECT count(*) FROM x",
    "EXPLAIN SELECT * FROM llm_calls",
    "DESCRIBE llm_calls",
    "FROM tool_calls",
    "SELECT * FROM sessions",
    "SELECT * FROM guardrail_events",
    "SELECT attributes->>'$.\"gen_ai.request.model\"' AS model FROM spans WHERE category = 'llm'",
]


@pytest.mark.parametrize("sql", READS)
def test_read_queries_run_and_answer_what_the_store_itself_answers(store, sql):
    """The sandbox changes who may run a query, not what it returns."""
    sandboxed, direct = _run(store, sql).table, store.query(sql)
    assert sandboxed.column_names == direct.column_names and sandboxed.num_rows == direct.num_rows
    if sql.startswith("EXPLAIN"):  # a plan carries its own timings: the same plan rows, not the same text
        sandboxed, direct = sandboxed.select([0]), direct.select([0])
    assert sorted(map(repr, sandboxed.to_pylist())) == sorted(map(repr, direct.to_pylist()))


def test_row_limit_truncates_and_says_so(store):
    result = _run(store, "SELECT * FROM range(1000) t(i)", limit=10)
    assert result.table.column("i").to_pylist() == list(range(10))
    assert result.truncated
    whole = _run(store, "SELECT * FROM range(1000) t(i)", limit=1000)
    assert whole.table.num_rows == 1000 and not whole.truncated


def test_a_query_past_its_deadline_is_interrupted(store):
    with pytest.raises(SqlError) as err:
        _run(store, "SELECT sum(a.range * b.range) FROM range(200000) a, range(200000) b", timeout_s=0.3)
    assert err.value.code == SqlErrorCode.TIMEOUT


def test_statement_check_names_what_was_refused(store):
    with store.cursor() as cur, pytest.raises(SqlError, match="got DELETE"):
        check_statement(cur, "DELETE FROM spans")


def test_a_query_past_the_memory_cap_is_too_large(tmp_path):
    capped = DuckDBStore(tmp_path / "capped", memory_limit="64MB")
    try:
        with pytest.raises(SqlError) as err:
            _run(capped, "SELECT length(string_agg(repeat('x', 1000), '')) FROM range(1000000)")
        assert err.value.code == SqlErrorCode.TOO_LARGE
        # The store still works afterwards.
        assert _run(capped, "SELECT 42 AS x").table.column("x").to_pylist() == [42]
    finally:
        capped.close()
