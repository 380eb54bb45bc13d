import duckdb
import pytest

from tests.storage.test_load_splits import _requests
from trajscope.collector.otlp_decode import decode_request
from trajscope.storage.compaction import CompactionError, compact
from trajscope.storage.duckdb_store import BLOCK_BYTES, DB_FILE, STORAGE_VERSION, DuckDBStore
from trajscope.storage.interface import TraceFilter


def _snapshot(store):
    spans = store.query("SELECT * FROM spans ORDER BY trace_id, span_id").to_pylist()
    traces = store.list_traces(TraceFilter(limit=10_000)).to_pylist()
    return spans, traces


def test_compaction_keeps_every_row_and_gives_space_back(tmp_path):
    store = DuckDBStore(tmp_path / "d")
    for payload in _requests(spans_per_request=100):
        store.write(decode_request(payload).table)
        store.checkpoint()  # many checkpoints: the file keeps freed blocks
    before = _snapshot(store)
    indexes = store.query("SELECT index_name FROM duckdb_indexes() ORDER BY 1").column("index_name").to_pylist()
    store.close()
    result = compact(tmp_path / "d")
    assert result.spans == len(before[0]) and result.bytes_after < result.bytes_before
    reopened = DuckDBStore(tmp_path / "d")
    assert _snapshot(reopened) == before
    # The same indexes and schema: lookups and new writes work.
    trace_id = before[1][0]["trace_id"]
    assert reopened.get_trace(trace_id).num_rows == before[1][0]["span_count"]
    assert reopened.query("SELECT index_name FROM duckdb_indexes() ORDER BY 1").column("index_name").to_pylist() \
        == indexes
    assert reopened.query("SELECT count(*) AS n FROM llm_calls").column("n")[0].as_py() > 0
    reopened.close()
    assert not list((tmp_path / "d").glob("*.compacting"))


def test_compaction_refuses_a_missing_store(tmp_path):
    with pytest.raises(CompactionError, match="no trajscope data"):
        compact(tmp_path / "nothing")


def _block_size(store) -> int:
    return store.query("SELECT block_size FROM pragma_database_size() WHERE database_name = current_database()"
                       ).column(0)[0].as_py()


def test_new_stores_get_small_blocks_and_compaction_converts_an_older_store(tmp_path):
    fresh = DuckDBStore(tmp_path / "new")
    assert _block_size(fresh) == BLOCK_BYTES
    fresh.close()
    # A file as an earlier release created it, with DuckDB's default 256 KiB blocks: it opens as it is.
    data = tmp_path / "d"
    data.mkdir()
    con = duckdb.connect()
    con.execute(f"ATTACH '{data / DB_FILE}' AS old (STORAGE_VERSION '{STORAGE_VERSION}')")
    con.close()
    store = DuckDBStore(data)
    assert _block_size(store) == 262_144 != BLOCK_BYTES
    for payload in _requests(spans_per_request=100):
        store.write(decode_request(payload).table)
    before = _snapshot(store)
    store.close()
    compact(data)
    reopened = DuckDBStore(data)
    assert _block_size(reopened) == BLOCK_BYTES
    assert _snapshot(reopened) == before
    reopened.close()
