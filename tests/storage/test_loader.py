import shutil
import threading
import time

import pyarrow as pa
import pytest

from tests.fault_logs import FullLog, SlowLog
from tests.otlp_builders import make_request, make_span
from trajscope.collector.otlp_decode import decode_request
from trajscope.storage import loader
from trajscope.storage.interface import StoreUnavailable
from trajscope.storage.loader import Loader, WriterClosed, conform, ipc_bytes
from trajscope.storage.quarantine import Quarantine
from trajscope.storage.schema import SPAN_SCHEMA
from trajscope.storage.staging_log import StagingLog


def _batch(n: int) -> tuple[bytes, int]:
    table = decode_request(make_request([make_span(f"s{i}") for i in range(n)]).SerializeToString()).table
    return ipc_bytes(table), table.num_rows


class FakeStore:
    """Records each load; ``gate`` (when set) holds loads back; ``fail`` makes the next loads raise."""

    def __init__(self, gate: threading.Event | None = None, fail: int = 0) -> None:
        self.loads: list[int] = []
        self.span_ids: set[str] = set()
        self.gate = gate
        self.fail = fail
        self.checkpoints = 0

    def write(self, table: pa.Table) -> int:
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            self.fail -= 1
            raise OSError("database is gone")
        assert table.schema.equals(SPAN_SCHEMA)
        new = set(table.column("span_id").to_pylist()) - self.span_ids
        self.span_ids |= new
        self.loads.append(table.num_rows)
        return len(new)

    def checkpoint(self) -> None:
        self.checkpoints += 1


def test_acknowledged_before_loaded_and_sync_waits_for_the_load(tmp_path):
    gate = threading.Event()
    store = FakeStore(gate)
    writer = Loader(store, tmp_path, linger_s=0.01)
    future = writer.submit(*_batch(3))
    assert future.result(5) == 3  # durable in the log while the store is still blocked
    assert writer.pending_rows == 3
    assert writer.caught_up() is False
    assert writer.sync(timeout=0.2) is False
    gate.set()
    assert writer.sync(timeout=5) is True
    assert writer.caught_up() is True
    assert len(store.span_ids) == 3 and writer.pending_rows == 0
    writer.close()


def test_batches_gather_until_the_load_size_or_a_reader_asks(tmp_path):
    store = FakeStore()
    writer = Loader(store, tmp_path, load_rows=1000, linger_s=30)
    futures = [writer.submit(*_batch(4)) for _ in range(5)]
    assert [f.result(5) for f in futures] == [4] * 5
    assert store.loads == []  # neither big enough nor idle long enough yet
    assert writer.sync(timeout=5)
    assert store.loads == [20]  # one load for all five exports
    small = Loader(FakeStore(), tmp_path / "b", load_rows=4, linger_s=30)
    small.submit(*_batch(4)).result(5)
    assert small.sync(timeout=5)
    small.close()
    writer.close()


def _eventually(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_input_has_not_paused_while_more_spans_are_on_their_way(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "MAX_LINGER_S", 30.0)
    store = FakeStore()
    writer = Loader(store, tmp_path, load_rows=1000, linger_s=0.02)
    coming = [True]
    writer.expect_more(lambda: coming[0])
    writer.submit(*_batch(3)).result(5)
    time.sleep(0.3)  # quiet for 15 lingers, but the pipeline still has exports decoding
    assert store.loads == []
    coming[0] = False
    assert _eventually(lambda: store.loads == [3])
    writer.close()


def test_spans_said_to_be_coming_wait_at_most_max_linger(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "MAX_LINGER_S", 0.3)
    store = FakeStore()
    writer = Loader(store, tmp_path, load_rows=1000, linger_s=0.02)
    writer.expect_more(lambda: True)  # a stuck decode must not hold loaded-able spans back for ever
    started = time.monotonic()
    writer.submit(*_batch(3)).result(5)
    assert _eventually(lambda: store.loads == [3])
    assert time.monotonic() - started >= 0.3
    writer.close()


def test_a_failed_load_is_retried_and_nothing_is_lost(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "RETRY_AFTER_FAILURE_S", 0.01)
    store = FakeStore(fail=2)
    writer = Loader(store, tmp_path, linger_s=0.01)
    writer.submit(*_batch(5)).result(5)
    assert writer.sync(timeout=5)
    assert len(store.span_ids) == 5
    assert writer.stats.load_failures == 2
    writer.close()


def test_acknowledged_spans_survive_a_crash_before_loading(tmp_path):
    gate = threading.Event()
    crashed = Loader(FakeStore(gate), tmp_path, linger_s=0.01)
    crashed.submit(*_batch(2)).result(5)
    crashed.submit(*_batch(3)).result(5)
    # The process "dies" here: nothing was loaded. A new server on the same directory finds the spans.
    store = FakeStore()
    recovered = Loader(store, tmp_path, progress=lambda msg: None)
    assert len(store.span_ids) == 5
    assert recovered.stats.spans_replayed == 5
    gate.set()
    recovered.close()
    crashed.close()
    # Replayed segments are deleted, so a third start replays nothing.
    again = FakeStore()
    Loader(again, tmp_path).close()
    assert again.loads == []


def test_a_failed_log_write_fails_the_export_and_frees_the_backlog(tmp_path):
    writer = Loader(FakeStore(), tmp_path, log=FullLog(tmp_path))
    with pytest.raises(OSError, match="No space"):
        writer.submit(*_batch(2)).result(5)
    assert writer.pending_rows == 0
    writer.close()


def test_close_loads_everything_then_refuses(tmp_path):
    store = FakeStore()
    writer = Loader(store, tmp_path, load_rows=10_000, linger_s=30)
    futures = [writer.submit(*_batch(2)) for _ in range(4)]
    writer.close()
    assert all(f.done() for f in futures)
    assert sum(store.loads) == 8
    assert list(tmp_path.glob("seg-*.log")) == []  # everything loaded: the log is gone
    assert writer.pending_rows == 0
    with pytest.raises(WriterClosed):
        writer.submit(*_batch(1))


def test_idle_time_is_used_to_checkpoint(tmp_path):
    store = FakeStore()
    writer = Loader(store, tmp_path, linger_s=0.01, idle_after_s=0.05)
    writer.submit(*_batch(2)).result(5)
    assert writer.sync(timeout=5)
    deadline = threading.Event()
    for _ in range(100):
        if store.checkpoints:
            break
        deadline.wait(0.02)
    assert store.checkpoints == 1
    writer.close()


def test_batches_staged_by_an_older_schema_load_with_new_columns_null():
    table = decode_request(make_request([make_span()]).SerializeToString()).table
    old = table.drop_columns(["cost_usd"])
    upgraded = conform(old)
    assert upgraded.schema.equals(SPAN_SCHEMA)
    assert upgraded.column("cost_usd").to_pylist() == [None]
    assert upgraded.column("span_id").to_pylist() == table.column("span_id").to_pylist()



def _wait_for(condition, timeout: float = 5.0) -> None:
    pause = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        pause.wait(0.01)
    raise AssertionError("condition not reached")


def test_loads_under_way_stop_at_a_row_group_and_the_cut_export_stays_in_the_log(tmp_path):
    store = FakeStore()
    # One segment per export, so a segment can be deleted too early.
    writer = Loader(store, tmp_path, load_rows=8, row_group_rows=8, linger_s=30,
                    log=StagingLog(tmp_path, segment_bytes=1))
    batches = [_batch(5) for _ in range(3)]
    # A load starts once 8 spans wait (after the second export, or the third if it is quicker) and takes them all.
    assert [writer.submit(*b).result(5) for b in batches] == [5] * 3
    # The load is over once its spans leave the backlog (the store records them a moment earlier).
    _wait_for(lambda: writer.pending_rows < 15)
    # One whole row group: the second export was cut after 3 spans; its other 2 and the third export wait.
    assert store.loads == [8]
    assert writer.pending_rows == 7
    # A crash now would replay the cut export whole: its log segment is still there.
    crashed = tmp_path.parent / f"{tmp_path.name}-crashed"
    shutil.copytree(tmp_path, crashed)
    replayed = FakeStore()
    Loader(replayed, crashed, progress=lambda msg: None).close()
    for payload, _ in batches[1:]:
        assert set(pa.ipc.open_stream(payload).read_all().column("span_id").to_pylist()) <= replayed.span_ids
    assert writer.sync(timeout=5)
    assert store.loads == [8, 7]
    assert len(store.span_ids) == 15 and writer.pending_rows == 0
    writer.close()


def test_a_reader_during_a_burst_gets_whole_row_groups_not_a_small_load(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "READ_HOLD_S", 0.2)
    store = FakeStore()
    writer = Loader(store, tmp_path, load_rows=8, row_group_rows=4, linger_s=30)
    assert [writer.submit(*_batch(4)).result(5) for _ in range(2)] == [4, 4]
    assert _eventually(lambda: store.loads == [8])  # a full load: input outruns the loader
    assert [writer.submit(*_batch(3)).result(5) for _ in range(2)] == [3, 3]
    assert writer.sync(timeout=5)
    # One whole row group; the 2 spans left waited for more input, then loaded when none came.
    assert store.loads == [8, 4, 2]
    assert len(store.span_ids) == 14
    writer.close()


def test_a_reader_waits_for_a_row_group_at_a_bursts_start_but_not_during_a_trickle(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "MAX_LINGER_S", 30.0)

    def reader_load(name: str, sizes: list[int]) -> tuple[bool, float, list[int]]:
        store = FakeStore()
        writer = Loader(store, tmp_path / name, load_rows=64, row_group_rows=16, linger_s=30)
        writer.expect_more(lambda: True)  # exports still decoding: input has not paused
        assert [writer.submit(*_batch(n)).result(5) for n in sizes] == sizes
        started = time.monotonic()
        synced = writer.sync(timeout=5)
        waited = time.monotonic() - started
        writer.close()
        return synced, waited, store.loads

    # A quarter of a row group waiting, more on its way: a burst's start, so the reader's load waits for more.
    monkeypatch.setattr(loader, "READ_HOLD_S", 0.3)
    synced, waited, loads = reader_load("burst", [3, 3])
    assert synced and waited >= 0.3 and loads == [6]
    # Less than that is a trickle: the reader's load goes at once (a hold would outlast the reader's timeout).
    monkeypatch.setattr(loader, "READ_HOLD_S", 30.0)
    synced, waited, loads = reader_load("trickle", [3])
    assert synced and loads == [3]


def test_a_reader_on_a_quiet_stream_loads_everything_at_once(tmp_path):
    store = FakeStore()
    writer = Loader(store, tmp_path, load_rows=8, row_group_rows=4, linger_s=30)
    assert [writer.submit(*_batch(3)).result(5) for _ in range(2)] == [3, 3]
    assert writer.sync(timeout=5)
    assert store.loads == [6]
    writer.close()


def test_a_draining_load_takes_everything_and_a_busy_one_only_whole_row_groups():
    # 9 spans in three batches, row groups of 4: draining loads all; busy, two row groups (the third
    # batch's first 2 spans), its last span waiting for the next load.
    assert loader.row_group_cut([3, 3, 3], drain=True, row_group_rows=4) == (3, 0)
    assert loader.row_group_cut([3, 3, 3], drain=False, row_group_rows=4) == (2, 2)
    assert loader.row_group_cut([4, 4], drain=False, row_group_rows=4) == (2, 0)  # on a boundary already
    assert loader.row_group_cut([3], drain=False, row_group_rows=4) == (1, 0)  # under one row group: all
    assert loader.row_group_cut([2, 9], drain=False, row_group_rows=4) == (1, 6)  # cut inside a big batch
    assert loader.row_group_cut([5, 5, 5], drain=False, row_group_rows=8) == (1, 3)


def _segment_bytes(directory) -> int:
    return sum(p.stat().st_size for p in directory.glob("seg-*.log"))


def test_a_batch_logged_elsewhere_skips_the_log_and_resolves_once_loaded(tmp_path):
    gate = threading.Event()
    store = FakeStore(gate)
    writer = Loader(store, tmp_path, linger_s=0.01)
    loaded = writer.submit_acknowledged(*_batch(3))
    logged = writer.submit(*_batch(2))
    assert logged.result(5) == 2
    time.sleep(0.1)
    assert not loaded.done()  # its durability is the caller's until it is in the store
    assert writer.pending_rows == 5 and not writer.caught_up()
    assert writer.sync(timeout=0.2) is False
    gate.set()
    assert loaded.result(5) == 3
    assert writer.sync(timeout=5) and len(store.span_ids) == 5
    writer.close()
    with pytest.raises(WriterClosed):
        writer.submit_acknowledged(*_batch(1))


def test_only_the_logged_batches_are_written_to_the_log(tmp_path):
    writer = Loader(FakeStore(), tmp_path, linger_s=30)
    writer.submit_acknowledged(*_batch(50))
    assert _segment_bytes(tmp_path) == 0
    payload, rows = _batch(1)
    writer.submit(payload, rows).result(5)
    assert 0 < _segment_bytes(tmp_path) < len(payload) + 100
    writer.close()


def test_a_cut_batch_logged_elsewhere_resolves_with_its_tail(tmp_path):
    store = FakeStore()
    store.gate = threading.Event()  # the three batches queue up before the first load is written
    writer = Loader(store, tmp_path, load_rows=8, row_group_rows=8, linger_s=30, checkpoint_rows=1)
    futures = [writer.submit_acknowledged(*_batch(5)) for _ in range(3)]
    store.gate.set()
    _wait_for(lambda: writer.pending_rows < 15)
    assert store.loads == [8]  # the second batch cut after 3 spans
    assert futures[0].done() and not futures[1].done() and not futures[2].done()
    assert writer.sync(timeout=5)
    assert [f.result(5) for f in futures[1:]] == [2, 5]  # the rows of the load that completed each
    writer.close()


class FailingCheckpoints(FakeStore):
    def __init__(self) -> None:
        super().__init__()
        self.failing = True

    def checkpoint(self) -> None:
        if self.failing:
            raise OSError("no space left on device")
        super().checkpoint()


def test_what_is_loaded_is_released_only_by_a_checkpoint(tmp_path):
    """DuckDB's WAL is never relied on (storage.clean_start): a batch logged elsewhere resolves (its record
    may leave the other log) only once a checkpoint has put the spans in the file."""
    store = FailingCheckpoints()
    writer = Loader(store, tmp_path, linger_s=0.01, idle_after_s=0.05, checkpoint_rows=10**9,
                          checkpoint_after_s=3600)
    elsewhere = writer.submit_acknowledged(*_batch(4))
    writer.submit(*_batch(3)).result(5)
    assert writer.sync(timeout=5) and len(store.span_ids) == 7  # loaded and readable
    _wait_for(lambda: writer.stats.checkpoint_failures >= 2)  # idle checkpoints tried, and failed
    assert not elsewhere.done()
    store.failing = False
    assert elsewhere.result(5) == 4
    writer.close()


def test_a_checkpoint_is_due_by_rows_or_by_age_under_steady_load(tmp_path):
    store = FakeStore()
    writer = Loader(store, tmp_path, linger_s=0.01, idle_after_s=3600, checkpoint_rows=6,
                          checkpoint_after_s=3600)
    first = writer.submit_acknowledged(*_batch(4))
    assert writer.sync(timeout=5)
    assert not first.done() and store.checkpoints == 0  # 4 rows: not yet due
    second = writer.submit_acknowledged(*_batch(3))
    assert second.result(5) == 3 and first.result(5) == 4 and store.checkpoints == 1
    writer.close()
    aged, now = FakeStore(), [0.0]
    writer = Loader(aged, tmp_path / "aged", linger_s=0.01, idle_after_s=3600, checkpoint_rows=10**9,
                    checkpoint_after_s=0.2, clock=lambda: now[0])
    early = writer.submit_acknowledged(*_batch(1))
    assert writer.sync(timeout=5) and not early.done()
    now[0] += 0.25  # the first unreleased load is now older than checkpoint_after_s
    late = writer.submit_acknowledged(*_batch(1))
    assert late.result(5) == 1 and early.done() and aged.checkpoints == 1
    writer.close()


def test_close_loads_the_batches_logged_elsewhere(tmp_path):
    store = FakeStore()
    writer = Loader(store, tmp_path, linger_s=30)
    futures = [writer.submit_acknowledged(*_batch(2)) for _ in range(3)]
    writer.close()
    assert all(f.done() for f in futures) and len(store.span_ids) == 6


def test_a_waiter_giving_up_does_not_stop_the_acknowledgements(tmp_path):
    slow = SlowLog(tmp_path)
    writer = Loader(FakeStore(), tmp_path, linger_s=0.01, log=slow)
    first = writer.submit(*_batch(2))
    assert slow.appending.wait(5)  # its record being written
    first.cancel()  # what asyncio.wrap_future does to it when the export's client goes away
    assert first.result(5) == 2  # logged all the same
    assert writer.submit(*_batch(3)).result(5) == 3
    assert writer.sync(timeout=5) and writer.pending_rows == 0
    writer.close()


class PoisonedStore(FakeStore):
    """Refuses any load holding a span named ``poison`` (as a bad value would fail an insert); ``down`` makes
    every load fail as the store's own fault instead."""

    def __init__(self, down: bool = False) -> None:
        super().__init__()
        self.down = down

    def write(self, table: pa.Table) -> int:
        if self.down:
            raise StoreUnavailable("IOException: no space left on device")
        if "poison" in table.column("name").to_pylist():
            raise ValueError("value out of range")
        return super().write(table)


def _named(*names: str) -> tuple[bytes, int]:
    table = decode_request(make_request([make_span(name) for name in names]).SerializeToString()).table
    return ipc_bytes(table), table.num_rows


def test_a_poisoned_export_is_quarantined_and_the_others_in_its_load_are_stored(tmp_path):
    store = PoisonedStore()
    writer = Loader(store, tmp_path / "staging", linger_s=0.3)  # the three exports in one load
    futures = [writer.submit_acknowledged(*_named("good-1", "good-2")),
               writer.submit_acknowledged(*_named("poison", "innocent bystander")),
               writer.submit(*_named("good-3"))]
    futures[2].result(5)
    assert writer.sync(timeout=5)  # never retried forever: the reads go on
    assert len(store.span_ids) == 3 and store.loads == [2, 1]  # split per export after the failure
    assert writer.stats.spans_quarantined == 2
    (entry,) = Quarantine(tmp_path / "quarantine").entries()
    assert entry.kind == "spans" and entry.spans == 2 and "value out of range" in entry.reason
    kept = pa.ipc.open_stream(entry.data.read_bytes()).read_all()
    assert sorted(kept.column("name").to_pylist()) == ["innocent bystander", "poison"]
    writer.close()
    assert all(f.done() for f in futures)  # the quarantined export is released too: it is durable there


def test_a_store_that_keeps_failing_is_retried_until_close_and_close_is_bounded(tmp_path):
    store = PoisonedStore(down=True)
    writer = Loader(store, tmp_path / "staging", linger_s=0.01)
    staged = writer.submit(*_named("kept-1", "kept-2"))
    assert staged.result(5) == 2  # acknowledged: in the log
    _wait_for(lambda: writer.stats.load_failures >= 1)
    started = time.monotonic()
    writer.close()
    assert time.monotonic() - started < 30  # the retry pause ends at close (it would otherwise reach 16 s)
    assert writer.stats.spans_quarantined == 0  # a store fault is never the spans' fault
    assert not list((tmp_path / "quarantine").glob("*"))
    healthy = FakeStore()
    Loader(healthy, tmp_path / "staging").close()  # the next start loads what the log kept
    assert len(healthy.span_ids) == 2
