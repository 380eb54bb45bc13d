"""``DuckDBStore.reattach``: the file closed and attached again mid-stream, with readers around it; and the
loader asking for it once enough spans were written since the last attach."""

import threading
import time

import pytest

from tests.otlp_builders import make_span
from tests.storage.conftest import table_of
from trajscope.storage.duckdb_store import DuckDBStore, StoreError
from trajscope.storage.interface import StoreInvalidated, TraceFilter
from trajscope.storage.loader import Loader, ipc_bytes


def _trace(n: int, name: str = "s"):
    first = make_span(f"{name}0")
    return table_of([first, *(make_span(f"{name}{i}", trace_id=first.trace_id, parent=first) for i in range(1, n))])


def test_a_reattached_store_reads_and_writes_as_before_with_its_settings(tmp_path):
    store = DuckDBStore(tmp_path / "d", ingest_threads=1)
    first = _trace(5, "a")
    store.write(first)
    store.set_ingest_mode(True)
    assert store.set_memory_limit(300 * 2**20)
    trace_id = first.column("trace_id")[0].as_py()
    before = store.get_trace(trace_id)
    listed = store.list_traces(TraceFilter()).to_pylist()
    assert store.attached_rows == 5

    assert store.reattach() is True
    assert store.attached_rows == 0
    assert store.get_trace(trace_id).equals(before)  # this thread's reader cursor was renewed
    assert store.list_traces(TraceFilter()).to_pylist() == listed
    assert store.memory_limit() == 300 * 2**20
    assert store.threads == 1
    assert int(store.query("SELECT current_setting('threads') AS t").column("t")[0].as_py()) == 1
    # External access stays off for analysts' SQL on the new instance.
    assert store.query("SELECT current_setting('enable_external_access') AS e").column("e")[0].as_py() is False

    store.write(_trace(3, "b"))
    store.write(first)  # a repeat is still known as one
    assert store.query("SELECT count(*) AS n FROM spans").column("n")[0].as_py() == 8
    assert store.attached_rows == 3
    store.close()
    reopened = DuckDBStore(tmp_path / "d")
    assert reopened.query("SELECT count(*) AS n FROM traces").column("n")[0].as_py() == 2
    reopened.close()


def test_reattach_waits_for_a_read_in_progress_and_gives_up_past_its_wait(tmp_path):
    store = DuckDBStore(tmp_path / "d")
    store.write(_trace(3))
    holding, release = threading.Event(), threading.Event()

    def analyst() -> None:
        with store.reading() as cursor:
            cursor.execute("SELECT count(*) FROM spans").fetchall()
            holding.set()
            release.wait(10)
            cursor.execute("SELECT count(*) FROM spans").fetchall()  # still usable: nothing was closed under it

    reader = threading.Thread(target=analyst)
    reader.start()
    assert holding.wait(5)
    assert store.reattach(wait_s=0.2) is False
    assert store.attached_rows == 3  # nothing done

    result: list[bool] = []
    waiting = threading.Thread(target=lambda: result.append(store.reattach(wait_s=10)))
    waiting.start()
    time.sleep(0.2)
    assert not result  # waits for the read
    release.set()
    reader.join(10)
    waiting.join(10)
    assert result == [True]
    assert store.query("SELECT count(*) AS n FROM spans").column("n")[0].as_py() == 3
    store.close()


def test_reads_from_other_threads_keep_working_across_reattaches(tmp_path):
    store = DuckDBStore(tmp_path / "d")
    store.write(_trace(4))
    trace_id = store.query("SELECT trace_id FROM traces").column("trace_id")[0].as_py()
    stop, failures, reads = threading.Event(), [], [0]

    def reader() -> None:
        while not stop.is_set():
            try:
                assert store.get_trace(trace_id).num_rows == 4
                with store.reading() as cursor:
                    cursor.execute("SELECT count(*) FROM spans").fetchall()
                reads[0] += 1
            except Exception as exc:  # any failure is what the test looks for
                failures.append(repr(exc))
                return

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    done = 0
    for _ in range(10):
        done += store.reattach(wait_s=5)
        time.sleep(0.02)
    stop.set()
    for t in threads:
        t.join(10)
    assert failures == []
    assert done == 10 and reads[0] > 0
    store.close()


def test_the_loader_has_the_store_reattach_after_enough_spans(tmp_path):
    store = DuckDBStore(tmp_path / "d")
    writer = Loader(store, tmp_path / "staging", linger_s=0.01, checkpoint_rows=10, reattach_rows=25)
    for k in range(6):
        table = _trace(10, f"t{k}-")
        writer.submit(ipc_bytes(table), table.num_rows).result(5)
        assert writer.sync(timeout=10)
    assert writer.stats.reattaches >= 1
    assert store.attached_rows < 25 + 10
    assert store.query("SELECT count(*) AS n FROM spans").column("n")[0].as_py() == 60
    writer.close()
    store.close()


def test_a_file_that_cannot_be_attached_again_invalidates_the_store(tmp_path):
    store = DuckDBStore(tmp_path / "d")
    store.write(_trace(2))
    told = []
    store.on_invalidated = told.append
    real = store._attach

    def gone(*args, **kwargs):
        raise StoreError("trajscope.duckdb cannot be opened (disk gone)", "disk gone")

    store._attach = gone
    with pytest.raises(StoreInvalidated, match="could not be attached again"):
        store.reattach()
    assert len(told) == 1 and isinstance(told[0], StoreInvalidated)
    store._attach = real
