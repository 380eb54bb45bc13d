"""A load that fails because of the store is a store fault (retried), however DuckDB ended its transaction."""

import threading

import duckdb
import pytest

from tests.small_disk import fill, mounted
from tests.storage.conftest import table_of
from tests.storage.test_known_traces import _trace
from trajscope.storage.clean_start import SET_ASIDE_DIR
from trajscope.storage.duckdb_store import CHECKPOINT_FORCE_AFTER, DuckDBStore, out_of_space
from trajscope.storage.interface import CheckpointDeferred, StoreInvalidated, StoreUnavailable


class _FailingInsert:
    """The writer connection, with DuckDB failing a load for memory and then ending the transaction itself (as
    it does when the rollback cannot pin its blocks either): ROLLBACK finds no transaction."""

    def __init__(self, con) -> None:
        self._con = con

    def execute(self, sql: str, *args):
        if sql.startswith("INSERT INTO spans"):
            self._con.execute("ROLLBACK")
            raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block of size 256.0 KiB")
        return self._con.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self._con, name)


def test_a_load_failing_for_memory_is_a_store_fault_even_when_duckdb_already_ended_the_transaction():
    store = DuckDBStore(":memory:")
    real = store._con
    store._con = _FailingInsert(real)
    try:
        store.write(table_of(_trace(2)))
    except StoreUnavailable as exc:  # retried by the loader, never quarantined as bad spans
        assert "OutOfMemoryException" in str(exc)
    else:
        raise AssertionError("the load should have failed")
    store._con = real
    assert store.write(table_of(_trace(2))) == 3  # the store goes on


def _span_count(store: DuckDBStore) -> int:
    return store.cursor().execute("SELECT count(*) FROM spans").fetchone()[0]


def test_a_commit_on_a_full_disk_is_a_store_fault_and_passes_once_space_returns(tmp_path):
    with mounted(tmp_path / "disk", size="32m") as disk:
        store = DuckDBStore(disk / "data")
        store.write(table_of(_trace(5)))
        store.checkpoint()
        fill(disk / "filler", leave=0)
        try:
            store.write(table_of(_trace(200)))  # DuckDB reports the failed WAL write as a failed commit
        except StoreUnavailable as exc:
            assert not isinstance(exc, StoreInvalidated)
            assert out_of_space(exc)
        else:
            raise AssertionError("a commit on a full disk should have failed")
        (disk / "filler").unlink()
        assert store.write(table_of(_trace(3))) == 4
        assert _span_count(store) == 10
        store.close()


def test_a_checkpoint_on_a_full_disk_invalidates_the_store_which_says_so_and_reopens_once_space_returns(tmp_path):
    with mounted(tmp_path / "disk", size="32m") as disk:
        store = DuckDBStore(disk / "data")
        said: list[StoreInvalidated] = []
        store.on_invalidated = said.append
        store.write(table_of(_trace(5)))
        store.checkpoint()
        store.write(table_of(_trace(500)))  # committed to the WAL, not yet in the file
        fill(disk / "filler", leave=0)
        with pytest.raises(StoreInvalidated) as failed:
            store.checkpoint()
        assert out_of_space(failed.value)
        assert said == [failed.value]
        with pytest.raises(StoreInvalidated):  # nothing succeeds on it any more
            store.write(table_of(_trace(2)))
        assert len(said) == 2
        store.close()

        # A store cannot be opened while the disk is still full, and says why.
        with pytest.raises(duckdb.Error) as opening:
            DuckDBStore(disk / "data")
        assert out_of_space(opening.value)
        (disk / "filler").unlink()
        reopened = DuckDBStore(disk / "data")
        # What the last checkpoint put in the file is there; what came after it is in trajscope's logs, which
        # the loader re-applies at the start (tests/e2e/test_full_disk.py), not in DuckDB's WAL (set aside).
        assert _span_count(reopened) == 6
        assert len(list((disk / "data" / SET_ASIDE_DIR).glob("wal-*"))) == 1  # the failed open added none
        assert reopened.write(table_of(_trace(1))) == 2
        reopened.close()


def test_a_refused_checkpoint_is_deferred_then_waits_for_the_other_transaction(tmp_path):
    store = DuckDBStore(tmp_path / "d")
    store.write(table_of(_trace(3)))
    other = store.cursor()
    other.execute("BEGIN")
    other.execute("CREATE TABLE scratch (i INTEGER)")  # a write transaction DuckDB will not checkpoint past
    for _ in range(CHECKPOINT_FORCE_AFTER):
        with pytest.raises(CheckpointDeferred, match="other write transactions"):
            store.checkpoint()
    assert store.checkpoints == 0
    ended = threading.Timer(0.2, lambda: other.execute("ROLLBACK"))
    ended.start()
    store.checkpoint()  # waits for the other transaction to end
    ended.join()
    assert store.checkpoints == 1
    store.checkpoint()  # and the count of refusals starts again
    assert store.checkpoints == 2
    store.close()
