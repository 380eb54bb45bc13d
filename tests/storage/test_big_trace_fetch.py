"""Traces beyond what the trace_id index serves are fetched within their time window, exactly."""

from __future__ import annotations

import os

from tests.otlp_builders import make_span
from tests.storage.conftest import table_of
from trajscope.storage import duckdb_store


def _trace(n: int, trace_id: bytes, *, late: bool = False):
    root = make_span("root", trace_id=trace_id, start=10_000, end=20_000)
    spans = [root] + [make_span(f"c{i}", trace_id=trace_id, parent=root, start=10_000 + i, end=11_000 + i)
                      for i in range(n - 1)]
    if late:  # bad clock: starts after the trace's last end, and ends before it starts
        spans.append(make_span("late", trace_id=trace_id, parent=root, start=50_000, end=15_000))
    return spans


def test_big_traces_come_back_whole_and_ordered(store, monkeypatch):
    monkeypatch.setattr(duckdb_store, "INDEX_SCAN_MAX_ROWS", 3)
    normal, skewed = os.urandom(16), os.urandom(16)
    other = [make_span("noise", start=15_000, end=16_000) for _ in range(20)]
    store.write(table_of(_trace(8, normal) + _trace(6, skewed, late=True) + other))
    got = store.get_trace(normal.hex(), window=store.trace_version(normal.hex()))
    assert got.num_rows == 8
    starts = got["start_time_unix_nano"].to_pylist()
    assert starts == sorted(starts)
    assert set(got["trace_id"].to_pylist()) == {normal.hex()}
    late = store.get_trace(skewed.hex(), columns=("name", "start_time_unix_nano"),
                           window=store.trace_version(skewed.hex()))
    assert late.num_rows == 7 and "late" in late["name"].to_pylist()
    version = store.trace_version(normal.hex())
    assert (version.span_count, version.start_time_unix_nano, version.end_time_unix_nano) == (8, 10_000, 20_000)


def test_traces_longer_than_one_arrow_batch_come_back_whole_and_ordered(store, monkeypatch):
    # Lookups read results in batches sized for the expected row count; a trace bigger than the guess spans
    # several batches, with or without its summary's window.
    trace_id = os.urandom(16)
    store.write(table_of([*reversed(_trace(11, trace_id)), make_span("noise", start=1, end=2)]))
    whole = store.get_trace(trace_id.hex())
    monkeypatch.setattr(duckdb_store, "_arrow_batch_rows", lambda expected: 4)
    for window in (None, store.trace_version(trace_id.hex())):
        got = store.get_trace(trace_id.hex(), window=window)
        assert got.num_rows == 11
        assert got["span_id"].to_pylist() == whole["span_id"].to_pylist()
        starts = got["start_time_unix_nano"].to_pylist()
        assert starts == sorted(starts)


def test_arrow_batches_are_sized_for_the_expected_rows():
    assert duckdb_store._arrow_batch_rows(8) == 64  # at least 64
    assert duckdb_store._arrow_batch_rows(None) == 512  # no summary: a few hundred rows
    assert duckdb_store._arrow_batch_rows(10_000) == 16_384  # room for the whole trace in one batch
    assert duckdb_store._arrow_batch_rows(10**9) == 1 << 20  # DuckDB's default at most
