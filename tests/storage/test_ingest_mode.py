"""DuckDB's thread count during loads (``DuckDBStore.set_ingest_mode``), who switches it (the staged
writer: on at a load, off when input pauses), and what the server picks (``config.ingest_threads``)."""

import threading
import time

import duckdb
import pytest

from tests.otlp_builders import make_request, make_span
from trajscope.collector.otlp_decode import decode_request
from trajscope.config import ServerSettings, ingest_threads
from trajscope.query.analyst_sql import SqlError, SqlErrorCode, run_sql
from trajscope.storage.duckdb_store import DuckDBStore
from trajscope.storage.loader import Loader, ipc_bytes


def _threads(store: DuckDBStore) -> int:
    return int(store.query("SELECT current_setting('threads') AS t").column("t")[0].as_py())


def _default_threads(tmp_path) -> int:
    store = DuckDBStore(tmp_path / "probe")
    try:
        return _threads(store)
    finally:
        store.close()


@pytest.fixture
def switching(tmp_path):
    # One more than DuckDB's own count, so the switch is visible on any machine.
    ingest = _default_threads(tmp_path) + 1
    store = DuckDBStore(tmp_path / "data", ingest_threads=ingest)
    yield store, ingest
    store.close()


def test_the_store_switches_threads_for_loads_and_back(switching):
    store, ingest = switching
    own = _threads(store)
    assert own != ingest and store.threads == own
    store.set_ingest_mode(True)
    assert _threads(store) == ingest == store.threads
    store.set_ingest_mode(True)  # idempotent
    assert _threads(store) == ingest
    store.set_ingest_mode(False)
    assert _threads(store) == own == store.threads


def test_a_store_without_ingest_threads_never_switches_and_stays_locked(tmp_path):
    store = DuckDBStore(tmp_path / "data")
    own = _threads(store)
    store.set_ingest_mode(True)
    assert _threads(store) == own
    with pytest.raises(duckdb.Error, match="locked"):
        store._con.execute("SET threads = 1")
    store.close()


@pytest.mark.parametrize("sql", ["SET memory_limit = '100GB'", "RESET threads", "PRAGMA threads = 1",
                                 "EXPLAIN ANALYZE SET threads = 1", "  set threads to 1"])
def test_analysts_still_cannot_change_settings_on_a_switching_store(switching, sql):
    store, _ = switching
    before = store.query("SELECT current_setting('memory_limit') AS m, current_setting('threads') AS t").to_pylist()
    with store.cursor() as cur, pytest.raises(SqlError) as err:
        run_sql(cur, sql)
    assert err.value.code == SqlErrorCode.FORBIDDEN
    after = store.query("SELECT current_setting('memory_limit') AS m, current_setting('threads') AS t").to_pylist()
    assert after == before


class _Recording:
    """The store, noting DuckDB's thread count during each load."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        self.seen: list[int] = []

    def write(self, table):
        self.seen.append(_threads(self.store))
        return self.store.write(table)

    def checkpoint(self) -> None:
        self.store.checkpoint()

    def set_ingest_mode(self, loading: bool) -> None:
        self.store.set_ingest_mode(loading)


def _batch(n: int) -> tuple[bytes, int]:
    table = decode_request(make_request([make_span(f"s{i}") for i in range(n)]).SerializeToString()).table
    return ipc_bytes(table), table.num_rows


def _wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def _send(writer: Loader, exports: int, *, loaded: bool = True) -> None:
    """``exports`` of 4 spans handed over at once and acknowledged; with ``loaded``, loaded too."""
    for future in [writer.submit(*_batch(4)) for _ in range(exports)]:
        future.result(5)
    if loaded:
        assert _wait_for(lambda: writer.pending_rows == 0)


def _burst(store: DuckDBStore, directory, **options) -> tuple[_Recording, Loader]:
    """A writer with full loads of 8 spans, handed 12 spans at once: input outrunning the loader."""
    recording = _Recording(store)
    writer = Loader(recording, directory, load_rows=8, **options)
    _send(writer, 3, loaded=False)
    return recording, writer


def test_full_loads_run_in_ingest_mode_and_a_trickle_switches_back(switching, tmp_path):
    store, ingest = switching
    own = store.threads
    recording, writer = _burst(store, tmp_path / "staging", row_group_rows=8, linger_s=0.3, idle_after_s=5.0)
    # The full load (cut to whole row groups), then the rest once input has paused for linger_s: the
    # burst's tail, still in ingest mode.
    assert _wait_for(lambda: writer.pending_rows == 0)
    assert recording.seen == [ingest, ingest]
    assert _threads(store) == ingest
    _send(writer, 1)  # a second load after a pause in a row: a trickle
    assert recording.seen == [ingest, ingest, own]
    _send(writer, 1)  # and it stays out of ingest mode
    assert recording.seen == [ingest, ingest, own, own]
    _send(writer, 3)  # a new burst switches again
    assert recording.seen[4:] == [ingest, ingest]
    writer.close()
    assert _threads(store) == own  # closing leaves DuckDB as it found it
    assert store.query("SELECT count(*) AS n FROM spans").column("n")[0].as_py() == 32


def test_a_burst_tail_is_switched_back_once_idle(switching, tmp_path):
    store, ingest = switching
    own = store.threads
    recording, writer = _burst(store, tmp_path / "staging", row_group_rows=8, linger_s=0.05, idle_after_s=0.3)
    assert _wait_for(lambda: writer.pending_rows == 0)
    assert recording.seen == [ingest, ingest]
    assert _wait_for(lambda: store.threads == own)
    assert _threads(store) == own
    writer.close()


def test_a_trickle_never_switches(switching, tmp_path):
    store, _ = switching
    own = store.threads
    recording = _Recording(store)
    writer = Loader(recording, tmp_path / "staging", load_rows=64, linger_s=0.02, idle_after_s=5.0)
    for _ in range(4):
        writer.submit(*_batch(2)).result(5)
        assert _wait_for(lambda: writer.pending_rows == 0)
    assert writer.sync(timeout=5)
    assert recording.seen == [own] * len(recording.seen) and len(recording.seen) >= 4
    writer.close()


def test_an_idle_writer_switches_back(switching, tmp_path):
    store, ingest = switching
    own = store.threads
    # No load waits for a pause here (linger 5 s): a full load, the rest because a reader asks, then idle.
    recording, writer = _burst(store, tmp_path / "staging", row_group_rows=4, linger_s=5.0, idle_after_s=0.3)
    assert writer.sync(timeout=5)
    assert recording.seen and recording.seen[0] == ingest and store.threads == ingest
    assert _wait_for(lambda: store.threads == own)
    assert _threads(store) == own
    writer.close()


def test_a_failing_switch_does_not_stop_loading(switching, tmp_path):
    store, _ = switching
    recording = _Recording(store)

    def broken(loading: bool) -> None:
        raise duckdb.InvalidInputException("no")

    recording.set_ingest_mode = broken
    writer = Loader(recording, tmp_path / "staging", linger_s=0.01)
    writer.submit(*_batch(3)).result(5)
    assert writer.sync(timeout=5)
    writer.close()
    assert store.query("SELECT count(*) AS n FROM spans").column("n")[0].as_py() == 3


@pytest.mark.parametrize(("configured", "workers", "cores", "expected"), [
    (0, 2, 2, 1),  # this kind of machine: the decode workers take both cores
    (0, 2, 8, 6),
    (0, 0, 1, 1),
    (0, 4, 2, 1),
    (3, 2, 2, 3),  # asked for
    (-1, 2, 8, None),  # never switch
])
def test_the_server_picks_the_cores_the_decode_workers_leave(configured, workers, cores, expected):
    settings = ServerSettings(decode_workers=workers, ingest_db_threads=configured)
    assert ingest_threads(settings, cores=cores) == expected


def test_switching_while_queries_run_fails_none_and_changes_no_answer(switching):
    store, _ = switching
    sql = "SELECT i % 7 AS k, count(*) AS n, sum(i) AS s FROM range(2000000) t(i) GROUP BY 1 ORDER BY 1"
    with store.cursor() as cur:
        expected = run_sql(cur, sql).table
    errors: list[str] = []
    answers: list[bool] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                with store.cursor() as cur:
                    answers.append(run_sql(cur, sql).table.equals(expected))
            except Exception as exc:  # any failure is the finding
                errors.append(repr(exc))

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers:
        t.start()
    flips = 0
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        store.set_ingest_mode(flips % 2 == 0)
        flips += 1
        time.sleep(0.005)
    done.set()
    for t in readers:
        t.join(30)
    assert not errors
    assert answers and all(answers)
    assert flips > 50
