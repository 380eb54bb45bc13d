"""Load marks: unique and increasing in storage order; each trace's summary keeps the ranges of its spans' marks,
and every read of a trace through them gives exactly the rows a scan of the whole table gives."""

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
from trajscope.storage.load_marks import (
    MARK_COLUMN,
    MAX_RANGES,
    cap_ranges,
    mark_ranges,
    stamp,
    trace_ranges,
    union_ranges,
)


def _marks(store: DuckDBStore) -> list[int]:
    return [r[0] for r in store._con.execute(f"SELECT {MARK_COLUMN} FROM spans ORDER BY rowid").fetchall()]


def _scanned(store: DuckDBStore, trace_id: str, project: str | None = None,
             columns: tuple[str, ...] | None = None) -> pa.Table:
    """The trace's rows as a filter over every stored row gives them, in the span order."""
    cols = ", ".join(columns or duckdb_store.SPAN_COLUMN_NAMES)
    sql = f"SELECT {cols}, start_time_unix_nano AS _s, end_time_unix_nano AS _e, span_id AS _i FROM spans " \
          f"WHERE trace_id = ?" + (" AND project = ?" if project else "")
    table = store._con.execute(sql, [trace_id, project] if project else [trace_id]).to_arrow_table()
    table = table.sort_by([("_s", "ascending"), ("_e", "ascending"), ("_i", "ascending")])
    return table.drop_columns(["_s", "_e", "_i"])


def _same(got: pa.Table, expected: pa.Table) -> bool:
    return got.column_names == expected.column_names and got.to_pylist() == expected.to_pylist()


def _stored_ranges(store: DuckDBStore, trace_id: str) -> list[tuple[int, int]]:
    (value,) = store._con.execute("SELECT mark_ranges FROM traces WHERE trace_id = ?", [trace_id]).fetchone()
    return [(r["low"], r["high"]) for r in value]


def _expected_ranges(store: DuckDBStore, trace_id: str) -> list[tuple[int, int]]:
    marks = store._con.execute(f"SELECT {MARK_COLUMN} FROM spans WHERE trace_id = ?", [trace_id]).fetchnumpy()
    return cap_ranges(mark_ranges(marks[MARK_COLUMN]))


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


def test_cap_ranges_joins_across_the_smallest_gaps():
    ranges = [(0, 1), (10, 11), (12, 13), (50, 50), (53, 60)]
    assert cap_ranges(ranges, 5) == ranges
    assert cap_ranges(ranges, 4) == [(0, 1), (10, 13), (50, 50), (53, 60)]  # gap 1 first
    assert cap_ranges(ranges, 3) == [(0, 1), (10, 13), (50, 60)]  # then gap 3
    assert cap_ranges(ranges, 1) == [(0, 60)]


def test_union_ranges_joins_overlapping_and_near_ranges_of_several_traces():
    assert union_ranges([(50, 60), (0, 10), (5, 20), (25, 30), (100, 200), (150, 160)], gap=5) == [
        (0, 20), (25, 30), (50, 60), (100, 200)]
    assert union_ranges([(0, 10), (14, 20)], gap=5) == [(0, 20)]  # 4 apart: one scan
    ranges = [(30, 30), (0, 0), (10, 10), (12, 12), (31, 31)]
    assert union_ranges(ranges, gap=1, limit=3) == [(0, 0), (10, 12), (30, 31)]


_SORTED_RANGES = st.lists(st.integers(0, 10**6), min_size=1, max_size=200, unique=True).map(sorted).map(
    lambda bounds: list(zip(bounds[::2], bounds[1::2], strict=False)))


@given(ranges=_SORTED_RANGES, limit=st.integers(1, 70))
def test_capped_ranges_cover_every_range_and_are_few_and_disjoint(ranges, limit):
    capped = cap_ranges(ranges, limit)
    assert len(capped) == min(len(ranges), limit)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(capped))
    assert all(any(lo <= low and high <= hi for lo, hi in capped) for low, high in ranges)


@given(rows=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 400)), min_size=1, max_size=300),
       gap=st.integers(1, 50), limit=st.integers(1, 8))
def test_trace_ranges_equal_each_traces_capped_mark_ranges(rows, gap, limit):
    ids = pa.array([f"t{t}" for t, _ in rows])
    marks = np.array([m for _, m in rows], np.int64)
    traces, ranges = trace_ranges(ids, marks, gap, limit)
    got = dict(zip(traces.to_pylist(), ranges.to_pylist(), strict=True))
    assert set(got) == {f"t{t}" for t, _ in rows}
    for trace, value in got.items():
        own = np.array([m for t, m in rows if f"t{t}" == trace], np.int64)
        assert [(r["low"], r["high"]) for r in value] == cap_ranges(mark_ranges(own, gap), limit)


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


def test_the_spans_table_has_no_index(store):
    store.write(table_of([make_span("a")]))
    indexed = {r[0] for r in store._con.execute("SELECT table_name FROM duckdb_indexes()").fetchall()}
    assert "spans" not in indexed


def test_a_trace_written_in_parts_keeps_one_range_per_part_and_is_read_whole(store):
    trace_id = os.urandom(16)
    for part in range(3):  # 8 spans each, in project p1, with other spans loaded between the parts
        store.write(table_of([make_span(f"p{part}-{i}", trace_id=trace_id) for i in range(8)],
                             resource={"trajscope.project": "p1"}))
        store.write(table_of([make_span("noise") for _ in range(2500)]))
    ranges = _stored_ranges(store, trace_id.hex())
    assert len(ranges) == 3 and ranges == _expected_ranges(store, trace_id.hex())
    for project in (None, "p1"):
        got = store.get_trace(trace_id.hex(), project=project, columns=("name",))
        assert got.num_rows == 24 and _same(got, _scanned(store, trace_id.hex(), project, ("name",)))
    assert store.get_trace(trace_id.hex(), project="p2").num_rows == 0


def test_a_trace_over_more_loads_than_ranges_kept_is_capped_and_read_whole(store):
    trace_id = os.urandom(16)
    for i in range(MAX_RANGES + 6):  # one span per load: as many ranges, more than are kept
        store.write(table_of([make_span(f"s{i}", trace_id=trace_id), make_span("noise")]))
    ranges = _stored_ranges(store, trace_id.hex())
    assert len(ranges) == MAX_RANGES and ranges == _expected_ranges(store, trace_id.hex())
    got = store.get_trace(trace_id.hex())
    assert got.num_rows == MAX_RANGES + 6 and _same(got, _scanned(store, trace_id.hex()))


def test_ranges_that_miss_rows_lead_to_the_summary_read_again_then_every_row(store, monkeypatch):
    trace_id = os.urandom(16).hex()
    store.write(table_of([make_span(f"s{i}", trace_id=bytes.fromhex(trace_id)) for i in range(6)]))
    version = store.trace_version(trace_id)
    (low, high), = version.mark_ranges
    stale = version._replace(mark_ranges=((low, high - 1),))  # as if a write came between the two reads
    assert _same(store.get_trace(trace_id, window=stale), _scanned(store, trace_id))
    # Summaries whose ranges do not cover the rows (which no write leaves): every row is looked at.
    store._con.execute("UPDATE traces SET mark_ranges = [{'low': 0, 'high': 1}] WHERE trace_id = ?", [trace_id])
    assert _same(store.get_trace(trace_id), _scanned(store, trace_id))
    store._con.execute("UPDATE traces SET mark_ranges = NULL WHERE trace_id = ?", [trace_id])
    assert _same(store.get_trace(trace_id), _scanned(store, trace_id))
    # And the writer reads such a trace's stored spans from every row: a late span is summarised with them.
    store.write(table_of([make_span("late", trace_id=bytes.fromhex(trace_id))]))
    assert store.trace_version(trace_id).span_count == 7
    assert _stored_ranges(store, trace_id) == _expected_ranges(store, trace_id)


def test_older_rows_with_shared_decode_times_are_read_exactly(store):
    # Spans stored before load marks carry their request's decode time, shared by the request's spans of
    # every trace and not increasing in storage order: a range holds other traces' rows too.
    mine, theirs = os.urandom(16), os.urandom(16)
    for when in (30_000, 10_000, 20_000):
        store.write(table_of([make_span(f"mine {when} {i}", trace_id=mine) for i in range(6)]
                             + [make_span(f"theirs {when}", trace_id=theirs)]))
        store._con.execute(f"UPDATE spans SET {MARK_COLUMN} = {when} WHERE name LIKE '% {when}%'")
    store._con.execute("UPDATE traces SET mark_ranges = NULL")
    store._backfill_mark_ranges()  # as a store opened after the migration to version 6 records them
    assert _stored_ranges(store, mine.hex()) == [(10_000, 10_000), (20_000, 20_000), (30_000, 30_000)]
    got = store.get_trace(mine.hex())
    assert got.num_rows == 18 and set(got["trace_id"].to_pylist()) == {mine.hex()}
    assert _same(got, _scanned(store, mine.hex()))
    assert _same(store.get_trace(theirs.hex()), _scanned(store, theirs.hex()))


_TRACES = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3)), min_size=1, max_size=60)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spans=_TRACES, writes=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_every_trace_read_through_its_ranges_equals_a_scan_of_every_row(store, spans, writes, seed):
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
            noise = [make_span("noise") for _ in range(2100 if rng.random() < 0.1 else 2)]
            if chunk or noise:
                store.write(table_of(chunk + noise, resource={"trajscope.project": f"p{project}"}))
    for trace_id in ids:
        stored = store.trace_version(trace_id.hex())
        if stored is None:
            continue
        assert list(stored.mark_ranges) == _expected_ranges(store, trace_id.hex())
        for project in (None, "p0", "p1"):
            for columns in (None, ("name", "attributes")):
                got = store.get_trace(trace_id.hex(), project=project, columns=columns)
                assert _same(got, _scanned(store, trace_id.hex(), project, columns))


@pytest.mark.parametrize("gap_rows", [0, 5000])
def test_the_writer_finds_stored_spans_of_many_traces_through_their_ranges(store, gap_rows):
    # Traces cut across loads, some near (the load before), some far (other loads between): dedup and
    # summaries see every stored span, so repeats are dropped and counts are whole.
    ids = [os.urandom(16) for _ in range(40)]
    first = [make_span(f"a{i}", trace_id=t) for i, t in enumerate(ids)]
    store.write(table_of(first))
    if gap_rows:
        store.write(table_of([make_span("noise") for _ in range(gap_rows)]))
    again = [make_span(f"b{i}", trace_id=t) for i, t in enumerate(ids)]
    assert store.write(table_of(first[:10] + again)) == 40  # the ten repeats are not stored twice
    for trace_id in ids:
        assert store.trace_version(trace_id.hex()).span_count == 2
        assert _stored_ranges(store, trace_id.hex()) == _expected_ranges(store, trace_id.hex())
