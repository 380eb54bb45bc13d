import asyncio
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.otlp_builders import make_request, make_span
from tests.storage.test_loader import FakeStore
from trajscope.collector.ack_log import AckLog
from trajscope.collector.logs_ingest import LogsIngest
from trajscope.collector.pipeline import IngestPipeline, Overloaded
from trajscope.config import ServerSettings, decode_workers
from trajscope.memory_budget import (
    DUCKDB_MIN,
    DUCKDB_SHARE,
    MemoryGuard,
    heap_bytes,
    memory_pss,
    parse_bytes,
    plan_memory,
    wanted_limit,
)
from trajscope.storage.duckdb_store import DuckDBStore
from trajscope.storage.loader import Loader

MiB = 2**20


@pytest.mark.parametrize(("text", "expected"), [
    ("1GiB", 2**30), ("512MiB", 512 * MiB), ("2GB", 2 * 10**9), ("1.5 gb", int(1.5 * 10**9)), ("123", 123),
    ("", None), (None, None), ("lots", None), ("5 parsecs", None),
])
def test_sizes_read_as_duckdb_spells_them(text, expected):
    assert parse_bytes(text) == expected


def test_the_budget_gives_duckdb_its_share_at_least_the_minimum_and_admits_below_the_mark():
    big = plan_memory(4 * 2**30)
    assert big.duckdb == int(4 * 2**30 * DUCKDB_SHARE) >> 20 << 20 and big.duckdb_setting == f"{big.duckdb // MiB}MiB"
    assert big.admit_below < big.budget
    small = plan_memory(300 * MiB)
    assert small.duckdb == DUCKDB_MIN
    assert plan_memory(2**30, duckdb_limit=500 * MiB).duckdb == 500 * MiB


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 1), (4, 1), (8, 3), (16, 7)])
def test_decode_workers_default_to_one_per_two_cores_beyond_the_first(cores, expected):
    assert decode_workers(ServerSettings(), cores) == expected
    assert decode_workers(ServerSettings(decode_workers=3), cores) == 3


def test_duckdb_runs_with_the_budgets_share(tmp_path):
    store = DuckDBStore(tmp_path / "d", memory_limit=plan_memory(4 * 2**30).duckdb_setting)
    limit = store.query("SELECT current_setting('memory_limit') AS m").column("m")[0].as_py()
    store.close()
    assert limit.endswith("MiB") and float(limit.split()[0]) == pytest.approx(4 * 1024 * DUCKDB_SHARE, rel=0.01)


def test_duckdb_wants_a_cap_its_unevictable_memory_fits_well_inside():
    assert wanted_limit({"BASE_TABLE": 900 * MiB}) == 0  # cached blocks can always be evicted
    want = wanted_limit({"ART_INDEX": 180 * MiB, "IN_MEMORY_TABLE": 60 * MiB, "BASE_TABLE": 500 * MiB})
    assert want >= 240 * MiB / 0.6 and want % (16 * MiB) == 0 and want < 240 * MiB / 0.6 + 16 * MiB


class _Store:
    """What the guard needs of the store, over a real DuckDB instance whose tags the test states."""

    def __init__(self, tags: dict[str, int], limit: int) -> None:
        self.tags = tags
        self.real = DuckDBStore(":memory:", memory_limit=f"{limit // MiB}MiB", ingest_threads=1)

    def memory_by_tag(self) -> dict[str, int]:
        return self.tags

    def memory_limit(self) -> int:
        return self.real.memory_limit()

    def set_memory_limit(self, limit: int) -> bool:
        return self.real.set_memory_limit(limit)


def test_the_guard_grows_duckdbs_cap_with_its_indexes_and_says_when_the_store_outgrew_the_budget(caplog):
    plan = plan_memory(2**30, duckdb_limit=256 * MiB)  # the budget has room for 60 % (614 MiB)
    store = _Store({"ART_INDEX": 100 * MiB, "BASE_TABLE": 200 * MiB}, plan.duckdb)
    guard = MemoryGuard(plan, measure=lambda: (0, 0), duckdb=store)
    guard.sample()
    assert guard.duckdb_limit == plan.duckdb == store.memory_limit()  # 100 MiB pinned fits in 256
    store.tags["ART_INDEX"] = 200 * MiB
    guard.sample()
    assert store.memory_limit() == guard.duckdb_limit == wanted_limit(store.tags) > plan.duckdb
    store.tags["ART_INDEX"] = 100 * MiB
    guard.sample()
    # Never lowered: a cap lowered under a running load fails the load.
    assert store.memory_limit() == wanted_limit({"ART_INDEX": 200 * MiB})
    assert guard.outgrown == 0 and guard.admission_mark() == plan.admit_below
    store.tags["ART_INDEX"] = 500 * MiB
    guard.sample()
    # Past the budget's room DuckDB still gets what its indexes need (else every load would fail) …
    assert store.memory_limit() == wanted_limit(store.tags) > plan.duckdb_max
    # … and refusing exports would not free its indexes either, so the mark moves by the excess.
    assert guard.outgrown == 500 * MiB - int(plan.duckdb_max * 0.6)
    assert guard.admission_mark() == plan.admit_below + guard.outgrown
    assert "restart with a larger --memory-limit" in caplog.text


def test_a_store_whose_configuration_is_locked_keeps_its_cap():
    store = DuckDBStore(":memory:", memory_limit="200MiB")  # no ingest threads: configuration locked
    assert not store.set_memory_limit(400 * MiB) and store.memory_limit() == 200 * MiB


def test_the_guard_samples_the_processes_and_says_when_memory_is_over_the_mark():
    readings = iter([(100 * MiB, 50 * MiB), (300 * MiB, 80 * MiB), (120 * MiB, 40 * MiB)])
    guard = MemoryGuard(plan_memory(400 * MiB), measure=lambda: next(readings))
    guard.sample()
    assert not guard.over() and guard.total == 150 * MiB
    guard.sample()  # 380 MiB: above the mark (90 % of 400)
    assert guard.over() and guard.total == 380 * MiB
    guard.sample()
    assert not guard.over() and guard.peak == 380 * MiB


def test_memory_pss_counts_this_process_and_its_children():
    own, before = memory_pss()  # other tests may have left children of their own running
    assert own > 10 * MiB
    child = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(64 << 20); time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while memory_pss()[1] < before + 64 * MiB and time.monotonic() < deadline:
            time.sleep(0.1)
        assert memory_pss()[1] >= before + 64 * MiB
    finally:
        child.kill()
        child.wait()
    assert memory_pss(child.pid) == (0, 0)  # a process that is gone


def test_heap_bytes_reads_glibc_where_there_is_one():
    used = heap_bytes()
    if used is None:
        pytest.skip("not glibc")
    block = bytearray(32 * MiB)  # from malloc: the heap in use grows by it
    assert heap_bytes() >= used + 30 * MiB
    del block


class _Over(MemoryGuard):
    """A guard whose measurement the test sets: memory over the mark until ``clear`` is called."""

    def __init__(self, budget: int = 400 * MiB) -> None:
        self.reading = (budget, 0)
        super().__init__(plan_memory(budget), measure=lambda: self.reading)
        self.sample()

    def clear(self) -> None:
        self.reading = (self.plan.budget // 4, 0)
        self.sample()


def test_exports_are_refused_as_retryable_while_memory_stays_over_the_mark(tmp_path):
    writer = Loader(FakeStore(), tmp_path)
    guard = _Over()
    pipeline = IngestPipeline(writer, ThreadPoolExecutor(1), admission_wait_s=0.2, memory=guard)
    body = make_request([make_span()]).SerializeToString()
    started = time.monotonic()
    with pytest.raises(Overloaded, match=r"memory in use .* above the admission mark .*--memory-limit"):
        asyncio.run(pipeline.export(body, "protobuf", "p"))
    assert time.monotonic() - started >= 0.2  # it waited for memory to drop first
    assert pipeline.stats.overloaded == 1 and guard.refusals == 1
    assert writer.pending_rows == 0 and pipeline.stats.spans_accepted == 0
    writer.close()


def test_an_export_waiting_for_memory_is_taken_once_it_drops(tmp_path):
    writer = Loader(FakeStore(), tmp_path)
    guard = _Over()
    pipeline = IngestPipeline(writer, ThreadPoolExecutor(1), admission_wait_s=5, memory=guard)
    threading.Timer(0.2, guard.clear).start()
    outcome = asyncio.run(pipeline.export(make_request([make_span(), make_span("b")]).SerializeToString(),
                                          "protobuf", "p"))
    assert outcome.accepted == 2 and guard.refusals == 0
    writer.close()


def test_log_exports_are_refused_while_memory_is_over_the_mark(tmp_path):
    guard = _Over()
    ack_log = AckLog(tmp_path / "acklog-logs")
    logs = LogsIngest(FakeStore(), ack_log, memory=guard)
    with pytest.raises(Overloaded, match="memory in use"):
        asyncio.run(logs.export(b"", "protobuf", "p"))
    assert logs.stats.overloaded == 1 and guard.refusals == 1
    logs.close()
    ack_log.close()


def test_memory_held_outside_ingest_does_not_refuse_exports_for_good(monkeypatch):
    from trajscope import memory_budget

    monkeypatch.setattr(memory_budget, "STUCK_S", 0.0)
    reading = [(950 * MiB, 0)]
    guard = MemoryGuard(plan_memory(2**30), measure=lambda: reading[0])
    waiting = [True]
    guard.ingest_idle = lambda: not waiting[0]
    for _ in range(3):  # ingest holds memory: refusing helps, the mark stays
        guard.sample()
        assert guard.over() and guard.held_elsewhere == 0
    waiting[0] = False  # nothing waits, yet memory stays over: refusals cannot free it
    guard.sample()
    assert guard.over()
    guard.sample()
    assert not guard.over() and guard.held_elsewhere > 0
    assert guard.admission_mark() > 950 * MiB
    reading[0] = (500 * MiB, 0)  # it came down: the plan's mark again
    guard.sample()
    assert guard.held_elsewhere == 0 and guard.admission_mark() == guard.plan.admit_below
