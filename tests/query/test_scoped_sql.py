"""Analyst SQL under a key limited to some projects: every relation holds only those projects' rows, and no SQL
reaches the others — qualified names, table functions, the catalog."""

from __future__ import annotations

import pytest

from tests.otlp_builders import make_span
from tests.storage.conftest import table_of
from trajscope.query.analyst_sql import SqlError, run_sql
from trajscope.query.scoped_sql import scoped_statement
from trajscope.storage.duckdb_store import DuckDBStore


@pytest.fixture(scope="module")
def store():
    store = DuckDBStore(":memory:")
    for project, model, cost in (("shop", "gpt-4o", 0.5), ("lab", "claude", 7.0)):
        root = make_span(f"invoke_agent {project}", attrs={"gen_ai.agent.name": project})
        llm = make_span("chat", trace_id=root.trace_id, parent=root,
                        attrs={"gen_ai.request.model": model, "gen_ai.usage.cost": cost,
                               "gen_ai.usage.input_tokens": 3})
        store.write(table_of([root, llm], resource={"service.name": "svc", "trajscope.project": project}))
    yield store
    store.close()


def _scoped(store, sql, projects=("shop",)):
    with store.cursor() as cur:
        return run_sql(cur, scoped_statement(cur, sql, projects)).table.to_pylist()


@pytest.mark.parametrize("sql", [
    "SELECT DISTINCT project FROM spans", "SELECT DISTINCT project FROM traces",
    "SELECT DISTINCT project FROM llm_calls", "SELECT DISTINCT project FROM tool_calls UNION SELECT 'shop'",
    "WITH x AS (SELECT project FROM traces) SELECT DISTINCT project FROM x",
    "SELECT DISTINCT project FROM (FROM spans)",
    "SELECT DISTINCT s.project FROM spans s JOIN traces t USING (trace_id)",
    "SELECT DISTINCT project FROM spans WHERE trace_id IN (SELECT trace_id FROM traces WHERE project = 'lab') "
    "UNION SELECT 'shop'",
])
def test_every_relation_holds_only_the_keys_projects(store, sql):
    assert {r["project"] for r in _scoped(store, sql)} == {"shop"}


def test_counts_and_costs_are_the_projects_own(store):
    (row,) = _scoped(store, "SELECT count(*) AS spans, sum(cost_usd) AS cost FROM spans")
    assert row == {"spans": 2, "cost": 0.5}
    assert _scoped(store, "SELECT model FROM llm_calls") == [{"model": "gpt-4o"}]
    assert {r["project"] for r in _scoped(store, "SELECT DISTINCT project FROM spans", ("shop", "lab"))} == {
        "shop", "lab"}


@pytest.mark.parametrize("sql", [
    "SELECT count(*) FROM main.spans", "SELECT count(*) FROM memory.main.spans",
    "SELECT * FROM query('SELECT * FROM spans')", "SELECT * FROM duckdb_tables()",
    "SELECT * FROM schema_version", "SELECT * FROM read_csv('/etc/passwd')",
    "DESCRIBE spans", "SUMMARIZE spans", "SHOW TABLES", "SELECT 1; SELECT 2", "DELETE FROM spans",
    "SELECT (SELECT count(*) FROM main.traces)",
])
def test_nothing_reaches_past_the_scoped_relations(store, sql):
    with store.cursor() as cur, pytest.raises(SqlError):
        scoped_statement(cur, sql, ("shop",))


def test_column_names_stay_listable(store):
    rows = _scoped(store, "SELECT DISTINCT table_name FROM information_schema.columns WHERE table_name = 'spans'")
    assert rows == [{"table_name": "spans"}]
