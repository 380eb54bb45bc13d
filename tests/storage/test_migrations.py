import duckdb
import pytest

from trajscope.storage import migrations


def test_migrate_fresh_database_reaches_latest_and_is_repeatable():
    con = duckdb.connect()
    assert migrations.migrate(con) == migrations.LATEST_VERSION
    assert migrations.migrate(con) == migrations.LATEST_VERSION
    versions = [r[0] for r in con.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()]
    assert versions == list(range(1, migrations.LATEST_VERSION + 1))
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"spans", "traces"} <= tables


def test_migrate_refuses_a_newer_database():
    con = duckdb.connect()
    migrations.migrate(con)
    con.execute("INSERT INTO schema_version VALUES (?, now())", [migrations.LATEST_VERSION + 1])
    with pytest.raises(RuntimeError, match="newer than this trajscope"):
        migrations.migrate(con)


def _undo_v3(store) -> None:
    """Remove what version 3 added (after ``_undo_v6``). DuckDB cannot drop a column of an indexed table: drop the
    index around it."""
    store._con.execute("DROP INDEX spans_trace_id")
    for column in ("cost_source", "guardrails", "guardrail_hits"):
        store._con.execute(f"ALTER TABLE spans DROP COLUMN {column}")
    store._con.execute("CREATE INDEX spans_trace_id ON spans (trace_id)")
    store._con.execute("ALTER TABLE traces DROP COLUMN guardrail_hits")


def _undo_v5(store) -> None:
    _undo_v6(store)
    store._con.execute("DROP INDEX spans_trace_id")
    store._con.execute("ALTER TABLE spans DROP COLUMN retrieval")
    store._con.execute("CREATE INDEX spans_trace_id ON spans (trace_id)")


def _undo_v8(store) -> None:
    """``traces`` back to a table with a primary key and no ``trace_key``."""
    from trajscope.storage.schema import TRACE_COLUMNS, columns_ddl

    store._con.execute(f"CREATE TABLE traces_v7 ({columns_ddl(TRACE_COLUMNS, 7)}, PRIMARY KEY (trace_id))")
    store._con.execute("INSERT INTO traces_v7 BY NAME SELECT * EXCLUDE (trace_key) FROM traces")
    store._con.execute("DROP TABLE traces")
    store._con.execute("ALTER TABLE traces_v7 RENAME TO traces")


def _undo_v7(store) -> None:
    """``spans.retrieval`` back to the STRUCT version 5 added (after ``_undo_v8``)."""
    from trajscope.storage.schema import RETRIEVAL, struct_sql

    _undo_v8(store)
    store._con.execute(f"ALTER TABLE spans ALTER retrieval SET DATA TYPE {struct_sql(RETRIEVAL)} USING retrieval[1]")


def _undo_v6(store) -> None:
    _undo_v7(store)
    if "mark_ranges" in {r[0] for r in store._con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'traces'").fetchall()}:
        store._con.execute("ALTER TABLE traces DROP COLUMN mark_ranges")
        store._con.execute("CREATE INDEX spans_trace_id ON spans (trace_id)")


def test_mark_range_passes_cut_the_spans_by_trace_id_prefix():
    assert migrations.mark_range_passes(0) == [format(i, "x") for i in range(16)]
    assert len(migrations.mark_range_passes(10_000_000, per_pass=1_000_000)) == 16
    assert migrations.mark_range_passes(17_000_000, per_pass=1_000_000)[:2] == ["00", "01"]
    assert len(migrations.mark_range_passes(17_000_000, per_pass=1_000_000)) == 256
    assert len(migrations.mark_range_passes(10**12, per_pass=1)) == 16**4  # at most four digits


@pytest.mark.parametrize("per_pass", [1_000_000, 100])
def test_migrate_v5_data_directory_records_where_each_traces_spans_are_and_drops_the_index(tmp_path, monkeypatch,
                                                                                         per_pass):
    import os

    from tests.otlp_builders import make_span
    from tests.storage.conftest import table_of
    from trajscope.storage.duckdb_store import DuckDBStore
    from trajscope.storage.load_marks import MAX_RANGES

    store = DuckDBStore(tmp_path / "d")
    parted, scattered = os.urandom(16), os.urandom(16)
    for part in range(3):  # a trace in three parts with other spans between them
        store.write(table_of([make_span(f"p{part}-{i}", trace_id=parted) for i in range(5)]))
        store.write(table_of([make_span("noise") for _ in range(2500)]))
    for i in range(MAX_RANGES + 3):  # one over more loads than a summary keeps ranges for
        store.write(table_of([make_span(f"s{i}", trace_id=scattered)]))
    expected = dict(store._con.execute("SELECT trace_id, mark_ranges FROM traces").fetchall())
    lookups = {t.hex(): store.get_trace(t.hex()) for t in (parted, scattered)}
    _undo_v6(store)
    store._con.execute("DELETE FROM schema_version WHERE version >= 6")
    store.close()

    monkeypatch.setattr(migrations, "MARK_PASS_SPANS", per_pass)  # 100: 256 passes of two hex digits
    reopened = DuckDBStore(tmp_path / "d")
    assert reopened.schema_version == migrations.LATEST_VERSION
    assert dict(reopened._con.execute("SELECT trace_id, mark_ranges FROM traces").fetchall()) == expected
    assert len(expected[scattered.hex()]) == MAX_RANGES and len(expected[parted.hex()]) == 3
    assert not reopened._con.execute("SELECT * FROM duckdb_indexes() WHERE table_name = 'spans'").fetchall()
    for trace_id, table in lookups.items():
        assert reopened.get_trace(trace_id).equals(table)
    reopened.close()


def _store_with_a_retrieval_step(path):
    """A store holding one trace: a retrieval step (query "q", one document) and an LLM call; and the trace id."""
    from tests.otlp_builders import make_span
    from tests.storage.conftest import table_of
    from trajscope.storage.duckdb_store import DuckDBStore

    store = DuckDBStore(path)
    retriever = make_span("retrieve", attrs={"gen_ai.operation.name": "retrieval", "gen_ai.retrieval.query.text": "q",
                                             "gen_ai.retrieval.documents": '[{"id": "a", "score": 0.5}]'})
    llm = make_span("chat", trace_id=retriever.trace_id, attrs={"gen_ai.request.model": "m"})
    store.write(table_of([retriever, llm]))
    return store, retriever.trace_id.hex()


def test_migrate_v6_data_directory_keeps_each_retrieval_step_as_a_list_of_one(tmp_path):
    from trajscope.storage.duckdb_store import DuckDBStore

    store, trace_id = _store_with_a_retrieval_step(tmp_path / "d")
    expected = store.get_trace(trace_id)
    _undo_v7(store)
    store._con.execute("DELETE FROM schema_version WHERE version >= 7")
    assert store._con.execute("SELECT retrieval.query FROM spans WHERE name = 'retrieve'").fetchone() == ("q",)
    store.close()

    reopened = DuckDBStore(tmp_path / "d")
    assert reopened.schema_version == migrations.LATEST_VERSION
    got = dict(reopened.cursor().execute("SELECT name, retrieval FROM spans").fetchall())
    assert got["chat"] is None and len(got["retrieve"]) == 1 and got["retrieve"][0]["query"] == "q"
    assert reopened.get_trace(trace_id).equals(expected)
    assert reopened.query("SELECT query, documents, top_score FROM retrievals").to_pylist() == [
        {"query": "q", "documents": 1, "top_score": 0.5}]
    reopened.close()


def test_migrate_v7_data_directory_rebuilds_traces_without_the_primary_key(tmp_path):
    import os

    from tests.otlp_builders import make_span
    from tests.storage.conftest import table_of
    from trajscope.storage.duckdb_store import DuckDBStore
    from trajscope.storage.schema import trace_key

    store = DuckDBStore(tmp_path / "d")
    parted = os.urandom(16)
    for part in range(2):
        store.write(table_of([make_span(f"p{part}-{i}", trace_id=parted) for i in range(3)]
                             + [make_span("other") for _ in range(50)]))
    summaries = store.query("SELECT * EXCLUDE (trace_key) FROM traces ORDER BY trace_id")
    expected = store.get_trace(parted.hex())
    _undo_v8(store)
    store._con.execute("DELETE FROM schema_version WHERE version >= 8")
    assert store._con.execute("SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'traces' "
                              "AND constraint_type = 'PRIMARY KEY'").fetchone() == (1,)
    store.close()

    reopened = DuckDBStore(tmp_path / "d")
    assert reopened.schema_version == migrations.LATEST_VERSION
    assert not reopened._con.execute("SELECT * FROM duckdb_constraints() WHERE table_name = 'traces' "
                                     "AND constraint_type = 'PRIMARY KEY'").fetchall()
    assert not reopened._con.execute("SELECT * FROM duckdb_indexes() WHERE table_name = 'traces'").fetchall()
    assert reopened.query("SELECT * EXCLUDE (trace_key) FROM traces ORDER BY trace_id").equals(summaries)
    keys = reopened.query("SELECT trace_id, trace_key FROM traces").to_pylist()
    assert len(keys) == 101 and all(r["trace_key"] == trace_key(r["trace_id"]) for r in keys)
    assert reopened.get_trace(parted.hex()).equals(expected)
    # A third part after the upgrade replaces the summary: still one row for the trace.
    reopened.write(table_of([make_span("p2", trace_id=parted)]))
    assert reopened.query(f"SELECT span_count FROM traces WHERE trace_id = '{parted.hex()}'").to_pylist() == [
        {"span_count": 7}]
    reopened.close()


def test_migrate_v4_data_directory_gains_retrieval_steps_from_the_stored_attributes(tmp_path):
    from trajscope.storage.duckdb_store import DuckDBStore

    store, _ = _store_with_a_retrieval_step(tmp_path / "d")
    _undo_v5(store)
    store._con.execute("DELETE FROM schema_version WHERE version >= 5")
    store.close()

    reopened = DuckDBStore(tmp_path / "d")
    assert reopened.schema_version == migrations.LATEST_VERSION
    got = dict(reopened.cursor().execute("SELECT name, retrieval FROM spans").fetchall())
    assert got["chat"] is None
    assert got["retrieve"][0]["query"] == "q"
    assert [(d["id"], d["rank"], d["score"]) for d in got["retrieve"][0]["documents"]] == [("a", 1, 0.5)]
    reopened.close()


def test_migrate_v1_data_directory_gains_breakdowns_recomputed_from_spans(tmp_path):
    from tests.otlp_builders import make_span
    from tests.storage.conftest import table_of
    from trajscope.storage.duckdb_store import DuckDBStore
    from trajscope.storage.interface import TraceFilter

    store = DuckDBStore(tmp_path / "d")
    root = make_span("invoke_agent a", attrs={"gen_ai.agent.name": "a"}, start=0, end=100)
    llm = make_span("chat", trace_id=root.trace_id, parent=root, start=10, end=60,
                    attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                           "gen_ai.usage.input_tokens": 7})
    store.write(table_of([root, llm]))
    expected = store.list_traces(TraceFilter()).to_pylist()[0]
    # Turn the directory back into what version 1 wrote.
    _undo_v5(store)
    store._con.execute("ALTER TABLE traces DROP COLUMN critical_breakdown")
    store._con.execute("ALTER TABLE traces DROP COLUMN usage_breakdown")
    _undo_v3(store)
    store._con.execute("DROP TABLE log_records")
    store._con.execute("DELETE FROM schema_version WHERE version >= 2")
    store.close()

    reopened = DuckDBStore(tmp_path / "d")
    assert reopened.schema_version == migrations.LATEST_VERSION
    got = reopened.list_traces(TraceFilter()).to_pylist()[0]
    assert got["critical_breakdown"] == expected["critical_breakdown"]
    assert got["usage_breakdown"] == expected["usage_breakdown"]
    assert sum(r["critical_ns"] for r in got["critical_breakdown"]) == 100
    assert got["usage_breakdown"] == [{"model": "m", "agent_name": "a", "calls": 1, "errors": 0,
                                       "input_tokens": 7, "output_tokens": 0, "cached_input_tokens": 0,
                                       "reasoning_tokens": 0, "cost_usd": None}]
    reopened.close()


def test_migrate_v2_marks_stored_costs_as_reported(tmp_path):
    from tests.otlp_builders import make_span
    from tests.storage.conftest import table_of
    from trajscope.storage.duckdb_store import DuckDBStore

    store = DuckDBStore(tmp_path / "d")
    reported = make_span("chat a", attrs={"gen_ai.request.model": "nobody-knows", "gen_ai.usage.cost": 0.5,
                                          "gen_ai.usage.input_tokens": 10})
    tokens_only = make_span("chat b", attrs={"gen_ai.request.model": "nobody-knows",
                                             "gen_ai.usage.input_tokens": 10})
    store.write(table_of([reported, tokens_only]))
    _undo_v5(store)
    _undo_v3(store)
    store._con.execute("DROP TABLE log_records")
    store._con.execute("DELETE FROM schema_version WHERE version >= 3")
    store.close()

    reopened = DuckDBStore(tmp_path / "d")
    rows = reopened.query("SELECT name, cost_usd, cost_source FROM spans ORDER BY name").to_pylist()
    assert rows == [{"name": "chat a", "cost_usd": 0.5, "cost_source": "reported"},
                    {"name": "chat b", "cost_usd": None, "cost_source": None}]
    reopened.close()
