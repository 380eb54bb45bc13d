"""The filter of stored trace ids may answer "maybe" wrongly, never "no" wrongly; and the store built on it
must find every stored trace, also after a restart, a rebuild, or with a filter that answers "maybe" always."""

import os
import random

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.otlp_builders import make_span
from tests.storage.conftest import table_of
from trajscope.storage import known_traces
from trajscope.storage.duckdb_store import DuckDBStore
from trajscope.storage.interface import TraceFilter
from trajscope.storage.known_traces import KnownTraces

_HEX_IDS = st.lists(st.text("0123456789abcdef", min_size=32, max_size=32), min_size=1, max_size=300)


@settings(max_examples=60, deadline=None)
@given(added=_HEX_IDS, others=st.lists(st.text(min_size=0, max_size=40), max_size=20))
def test_every_added_id_is_reported_and_odd_ids_always_are(added, others):
    known = KnownTraces(len(added))
    known.add(pa.array(added, pa.string()))
    assert known.might_contain(pa.array(added, pa.string())).all()
    odd = [o for o in others if len(o.encode()) != 32]
    if odd:
        assert known.might_contain(pa.array(odd, pa.string())).all()


def test_few_false_positives_also_for_patterned_ids():
    rng = random.Random(4)
    for make in (lambda i: f"{rng.getrandbits(128):032x}", lambda i: f"{i:032x}", lambda i: f"{i:016x}" * 2):
        ids = [make(i) for i in range(40_000)]
        known = KnownTraces(20_000)
        known.add(pa.array(ids[:20_000], pa.string()))
        assert known.might_contain(pa.array(ids[:20_000], pa.string())).all()
        rate = known.might_contain(pa.array(ids[20_000:], pa.string())).mean()
        assert rate < 0.01, rate


def _trace(n: int) -> list:
    tid = os.urandom(16)
    root = make_span("root", trace_id=tid, start=0, end=1000)
    return [root] + [make_span(f"c{i}", trace_id=tid, parent=root, start=10 * i, end=10 * i + 5) for i in range(n)]


def _counts(store: DuckDBStore) -> dict[str, int]:
    return {t["trace_id"]: t["span_count"] for t in store.list_traces(TraceFilter(limit=10_000)).to_pylist()}


def test_a_reopened_store_knows_its_traces(tmp_path):
    spans = _trace(5)
    store = DuckDBStore(tmp_path / "d")
    store.write(table_of(spans[:3]))
    store.close()
    reopened = DuckDBStore(tmp_path / "d")
    assert reopened.write(table_of(spans)) == 3  # the first three are known to be stored
    assert _counts(reopened) == {spans[0].trace_id.hex(): 6}


def test_the_filter_grows_past_its_capacity_without_forgetting(monkeypatch):
    monkeypatch.setattr(known_traces, "_MIN_BITS", 64)  # capacity 4 traces: rebuilt over and over
    store = DuckDBStore(":memory:")
    traces = [_trace(2) for _ in range(30)]
    for trace in traces:
        store.write(table_of(trace[:2]))
    rebuilt = store._known.capacity
    assert rebuilt >= 30
    for trace in traces:
        assert store.write(table_of(trace)) == 1
    assert set(_counts(store).values()) == {3} and len(_counts(store)) == 30


def test_a_filter_that_always_says_maybe_changes_nothing(monkeypatch):
    monkeypatch.setattr(KnownTraces, "might_contain", lambda self, ids: [True] * len(ids))
    store = DuckDBStore(":memory:")
    spans = _trace(4)
    store.write(table_of(spans[:2]))
    assert store.write(table_of(spans)) == 3
    assert _counts(store) == {spans[0].trace_id.hex(): 5}


def test_a_new_trace_the_filter_mistook_for_stored_is_kept_through_a_rebuild(monkeypatch):
    """A load that rebuilds the filter (past its capacity) and holds a new trace the old filter answered
    "maybe" for (a false positive): the rebuilt filter must know that trace too, or its next spans would be
    taken for a new trace's and its summary inserted twice."""
    monkeypatch.setattr(known_traces, "_MIN_BITS", 64)  # capacity 4 traces
    store = DuckDBStore(":memory:")
    for _ in range(4):
        store.write(table_of(_trace(1)))
    mistaken, fresh = _trace(3), _trace(1)
    mistaken_id = mistaken[0].trace_id.hex()
    answer = KnownTraces.might_contain

    def false_positive(self, ids):
        out = answer(self, ids)
        out[[i == mistaken_id for i in ids.to_pylist()]] = True
        return out

    monkeypatch.setattr(KnownTraces, "might_contain", false_positive)
    store.write(table_of(mistaken[:2] + fresh))  # the rebuild happens in this load
    monkeypatch.setattr(KnownTraces, "might_contain", answer)
    assert store._known.might_contain(pa.array([mistaken_id], pa.string())).all()
    assert store.write(table_of(mistaken)) == 2
    assert _counts(store)[mistaken_id] == 4

