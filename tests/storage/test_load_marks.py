"""Load marks: unique, increasing in storage order, and trace lookups read as ranges of them give exactly
what the index gives."""

from __future__ import annotations

import itertools
import os
import random

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.otlp_builders import make_span
from tests.storage.conftest import table_of
from trajscope.storage import duckdb_store
from trajscope.storage.compaction import compact
from trajscope.storage.duckdb_store import DuckDBStore
from trajscope.storage.load_marks import MARK_COLUMN, mark_ranges, ranges_pay, stamp


def _marks(store: DuckDBStore) -> list[int]:
    return [r[0] for r in store._con.execute(f"SELECT {MARK_COLUMN} FROM spans ORDER BY rowid").fetchall()]


def _by_index(store: DuckDBStore, monkeypatch, *args, **kwargs) -> pa.Table:
    with monkeypatch.context() as m:
        m.setattr(duckdb_store, "ranges_pay", lambda rows, ranges: False)
        return store.get_trace(*args, **kwargs)


def test_stamp_numbers_rows_after_the_last_mark_and_the_clock():
    table = pa.table({"name": ["a", "b", "c"], MARK_COLUMN: pa.array([7, 7, 7], pa.int64())})
    stamped, last = stamp(table, after=100, now=50)  # the clock is behind the last mark: after it still
    assert stamped[MARK_COLUMN].to_pylist() == [101, 102, 103] and last == 103
    stamped, last = stamp(table, after=100, now=500)
    assert stamped[MARK_COLUMN].to_pylist() == [500, 501, 502] and last == 502
    assert stamped.schema == table.schema and stamped["name"].to_pylist() == ["a", "b", "c"]


def test_mark_ranges_join_marks_closer_than_the_gap():
    assert mark_ranges(np.array([], np.int64)) == []
    assert mark_ranges(np.array([5])) == [(5, 5)]
    assert mark_ranges(np.array([12, 10, 11, 40, 41, 100]), gap=10) == [(10, 12), (40, 41), (100, 100)]
    assert mark_ranges(np.array([10, 19, 29]), gap=10) == [(10, 19), (29, 29)]  # 9 apart joins, 10 does not
    assert mark_ranges(np.array([3, 3, 3, 9]), gap=2) == [(3, 3), (9, 9)]  # shared marks (older rows)


@pytest.mark.parametrize(("rows", "ranges", "pays"), [
    (0, 0, False), (1, 1, True), (10, 1, True), (10, 2, False), (12, 2, True), (300, 50, True), (300, 51, False),
    (2048, 64, True), (2048, 65, False),
])
def test_ranges_pay_while_each_range_holds_enough_rows(rows, ranges, pays):
    assert ranges_pay(rows, ranges) is pays


def test_writes_give_unique_marks_increasing_in_storage_order_even_when_the_clock_goes_back(tmp_path, monkeypatch):
    store = DuckDBStore(tmp_path / "data")
    readings = iter(range(10**6, 0, -1000))  # every reading earlier than the one before
    monkeypatch.setattr(duckdb_store.time, "time_ns", lambda: next(readings))
    for n in (3, 4, 2):
        store.write(table_of([make_span(f"s{i}") for i in range(n)]))
    marks = _marks(store)
    assert len(marks) == 9 and marks[0] <= 10**6
    assert all(b == a + 1 for a, b in itertools.pairwise(marks))  # consecutive: the clock never leads
    store.close()
    store = DuckDBStore(tmp_path / "data")  # reopened: still after every stored mark
    store.write(table_of([make_span("later")]))
    assert _marks(store)[-1] == marks[-1] + 1
    store.close()


@pytest.fixture
def range_reads(monkeypatch) -> list[pa.Table | None]:
    """What each lookup's read by ranges gave (None: the index answered instead)."""
    seen: list[pa.Table | None] = []
    real = duckdb_store.DuckDBStore._by_load_marks
    monkeypatch.setattr(duckdb_store.DuckDBStore, "_by_load_marks",
                        staticmethod(lambda *args: seen.append(real(*args)) or seen[-1]))
    return seen


def test_compaction_keeps_the_marks_and_their_order(tmp_path):
    store = DuckDBStore(tmp_path / "data")
    for n in (300, 5, 40):
        store.write(table_of([make_span(f"s{i}") for i in range(n)]))
    before = _marks(store)
    store.close()
    compact(tmp_path / "data")
    store = DuckDBStore(tmp_path / "data")
    assert _marks(store) == before and before == sorted(set(before))
    store.close()


def test_a_written_trace_is_read_as_one_range_and_a_scattered_one_through_the_index(store, range_reads):
    whole, scattered = os.urandom(16), os.urandom(16)
    store.write(table_of([make_span(f"w{i}", trace_id=whole) for i in range(5)]))
    for i in range(3):  # one span per write, each far from the others
        store.write(table_of([make_span(f"x{i}", trace_id=scattered), *(make_span("noise") for _ in range(3000))]))
    assert store.get_trace(whole.hex()).num_rows == 5
    assert range_reads[-1] is not None and range_reads[-1].num_rows == 5
    assert store.get_trace(scattered.hex()).num_rows == 3
    assert range_reads[-1] is None  # three ranges of one row each: the index answers


def test_a_trace_written_in_parts_is_read_as_one_scan_per_part(store, monkeypatch, range_reads):
    trace_id = os.urandom(16)
    for part in range(3):  # 8 spans each, in project p1, with other spans loaded between the parts
        store.write(table_of([make_span(f"p{part}-{i}", trace_id=trace_id) for i in range(8)],
                             resource={"trajscope.project": "p1"}))
        store.write(table_of([make_span("noise") for _ in range(2500)]))
    for project in (None, "p1"):
        got = store.get_trace(trace_id.hex(), project=project, columns=("name",))
        assert range_reads[-1] is not None  # three ranges of eight rows pay
        assert got.num_rows == 24
        assert got.equals(_by_index(store, monkeypatch, trace_id.hex(), project=project, columns=("name",)))
    assert store.get_trace(trace_id.hex(), project="p2").num_rows == 0


def test_rows_that_differ_from_the_marks_fall_back_to_the_index(store, monkeypatch):
    trace_id = os.urandom(16)
    store.write(table_of([make_span(f"s{i}", trace_id=trace_id) for i in range(6)]))
    # A range that misses the last mark stands for rows changed between the two reads.
    monkeypatch.setattr(duckdb_store, "mark_ranges", lambda marks: [(int(marks.min()), int(marks.max()) - 1)])
    got = store.get_trace(trace_id.hex())
    assert got.num_rows == 6 and got.equals(_by_index(store, monkeypatch, trace_id.hex()))


def test_older_rows_with_shared_decode_times_are_read_by_ranges_exactly(store, monkeypatch, range_reads):
    # Spans stored before load marks carry their request's decode time, shared by the request's spans of
    # every trace and not increasing in storage order: a range holds other traces' rows too.
    mine, theirs = os.urandom(16), os.urandom(16)
    for when in (300, 100, 200):
        batch = table_of([make_span(f"mine {i}", trace_id=mine) for i in range(6)]
                         + [make_span("theirs", trace_id=theirs)])
        batch = batch.set_column(batch.schema.get_field_index(MARK_COLUMN), MARK_COLUMN,
                                 pa.array([when] * batch.num_rows, pa.int64()))
        store._con.register("older", duckdb_store._json_typed(batch))
        store._con.execute(f"INSERT INTO spans ({duckdb_store._SPAN_COLS}) SELECT {duckdb_store._SPAN_COLS} FROM older")
        store._con.unregister("older")
    got = store.get_trace(mine.hex())
    assert range_reads[-1] is not None  # three ranges of six rows each pay
    assert got.num_rows == 18 and set(got["trace_id"].to_pylist()) == {mine.hex()}
    assert got.equals(_by_index(store, monkeypatch, mine.hex()))
    assert store.get_trace(theirs.hex()).equals(_by_index(store, monkeypatch, theirs.hex()))


_TRACES = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3)), min_size=1, max_size=60)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spans=_TRACES, writes=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_every_lookup_through_ranges_equals_the_index(store, monkeypatch, spans, writes, seed):
    # Spans of five traces in two projects, shuffled over several writes with unrelated spans between them.
    rng = random.Random(seed)
    ids = [os.urandom(16) for _ in range(5)]
    made = [(make_span(f"t{t}-{i}", trace_id=ids[t], start=10_000 + rng.randrange(1000), end=20_000,
                       attrs={"n": i, "long": "x" * rng.randrange(500)}), project)
            for i, (t, project) in enumerate(spans)]
    rng.shuffle(made)
    cuts = sorted(rng.sample(range(len(made) + 1), min(writes, len(made) + 1)))
    for low, high in zip([0, *cuts], [*cuts, len(made)], strict=True):
        for project in range(4):
            chunk = [s for s, p in made[low:high] if p == project]
            noise = [make_span("noise") for _ in range(rng.randrange(3))]
            if chunk or noise:
                store.write(table_of(chunk + noise, resource={"trajscope.project": f"p{project}"}))
    for trace_id in ids:
        for project in (None, "p0", "p1"):
            for columns in (None, ("name", "attributes")):
                got = store.get_trace(trace_id.hex(), project=project, columns=columns)
                assert got.equals(_by_index(store, monkeypatch, trace_id.hex(), project=project, columns=columns))
