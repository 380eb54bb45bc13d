"""Trace summaries without a primary key: found by ``trace_key``, then by id; one row per trace."""

import os

import duckdb
import pytest

from tests.otlp_builders import make_span
from tests.storage.conftest import table_of
from trajscope.storage.interface import TraceFilter
from trajscope.storage.schema import trace_key, trace_key_sql

IDS = ["4bf92f3577b34da6a3ce929d0e0e4736", "00000000000000000000000000000000", "ffffffffffffffffffffffffffffffff",
       "a3ce929d0e0e4736", "4BF92F3577B34DA6A3CE929D0E0E4736", "abc", "", "not-hex-at-all-but-long-enough",
       "0123456789abcdefxyz", "4bf92f3577b34da6a3ce929d0e0e473g"]


@pytest.mark.parametrize("trace_id", IDS)
def test_the_key_in_python_is_the_key_in_sql(trace_id):
    literal = "'" + trace_id.replace("'", "''") + "'"
    (in_sql,) = duckdb.sql(f"SELECT {trace_key_sql(literal)}").fetchone()
    assert trace_key(trace_id) == in_sql


def test_keys_of_hex_ids_are_their_last_sixteen_digits():
    assert trace_key("4bf92f3577b34da6a3ce929d0e0e4736") == 0xa3ce929d0e0e4736
    assert trace_key("a3ce929d0e0e4736") == 0xa3ce929d0e0e4736
    assert trace_key("nothex") == 0


def _one_row_per_trace(store) -> None:
    (row,) = store.query("SELECT count(*) AS n, count(DISTINCT trace_id) AS d FROM traces").to_pylist()
    assert row["n"] == row["d"]


@pytest.mark.parametrize("filtered", [True, False])
def test_traces_sharing_a_key_are_told_apart_across_loads(store, filtered):
    """Ids whose last 16 digits agree share a key: every lookup and replacement still goes by the id."""
    if not filtered:
        store._known = None  # no filter of stored ids: every trace of a load is looked up, and replaced if found
    tail = os.urandom(8)
    ids = [os.urandom(8) + tail for _ in range(4)]
    for load in range(3):
        spans = [make_span(f"t{n}-{load}", trace_id=t) for n, t in enumerate(ids[: 2 + load])]
        store.write(table_of(spans + [make_span("noise") for _ in range(20)]))
    _one_row_per_trace(store)
    counts = {t.hex(): 3 - max(0, n - 1) for n, t in enumerate(ids)}  # trace n joined at load max(0, n - 1)
    for t, n in counts.items():
        assert store.trace_version(t).span_count == n
        assert sorted(store.get_trace(t).column("name").to_pylist()) == sorted(
            f"t{ids.index(bytes.fromhex(t))}-{load}" for load in range(3 - n, 3))
    assert {r["trace_id"] for r in store.list_traces(TraceFilter(search=ids[1].hex())).to_pylist()} == {ids[1].hex()}


def test_summaries_of_traces_cut_over_many_loads_stay_one_row_each(store):
    traces = [os.urandom(16) for _ in range(27)]  # the last load writes 7 … 26
    for load in range(8):
        store.write(table_of([make_span(f"s{load}", trace_id=t) for t in traces[load:load + 20]]))
    _one_row_per_trace(store)
    got = {r["trace_id"]: r["span_count"] for r in store.query("SELECT trace_id, span_count FROM traces").to_pylist()}
    assert got == {t.hex(): sum(1 for load in range(8) if load <= n < load + 20) for n, t in enumerate(traces)}
