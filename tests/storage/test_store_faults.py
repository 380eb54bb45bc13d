"""A load that fails because of the store is a store fault (retried), however DuckDB ended its transaction."""

import duckdb

from tests.storage.conftest import table_of
from tests.storage.test_known_traces import _trace
from trajscope.storage.duckdb_store import DuckDBStore
from trajscope.storage.interface import StoreUnavailable


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
