"""A trace's summary row must not depend on how its spans reached the store: in one load or many, one
export or several, in order or shuffled, sent once or twice. The loader summarises each touched trace
from the spans stored before and the new ones; here that is checked against one load of everything and
against the per-trace reference (``trace_summary``) over all the spans."""

import random

import pyarrow as pa

from tests.summaries import canonical_summaries
from trajscope.collector.otlp_decode import decode_request
from trajscope.storage.duckdb_store import DuckDBStore
from trajscope.storage.interface import TraceFilter
from trajscope.storage.trace_summary import FACT_COLUMNS, summarise_span_columns
from trajscope.workload import Workload, to_requests


def _requests(spans_per_request: int, piece: int | None = None) -> list[bytes]:
    """Export requests of the demo workload; with ``piece``, traces are cut into pieces of that many
    spans and the pieces shuffled, so a trace arrives over several exports, out of order."""
    traces = list(Workload(seed=3, now_ns=1_700_000_000 * 10**9).sessions(6))
    if piece:
        traces = [(service, spans[i:i + piece]) for service, spans in traces for i in range(0, len(spans), piece)]
        random.Random(5).shuffle(traces)
    return [r.SerializeToString() for r in to_requests(iter(traces), spans_per_request)]


def _traces(store: DuckDBStore) -> list[dict]:
    return canonical_summaries(store.list_traces(TraceFilter(limit=1000)))


def _load(store: DuckDBStore, payloads: list[bytes], loads: int) -> None:
    """Load the exports in ``loads`` groups, as the loader would."""
    tables = [decode_request(p).table for p in payloads]
    step = -(-len(tables) // loads)
    for i in range(0, len(tables), step):
        store.write(pa.concat_tables(tables[i:i + step]))


def test_summaries_do_not_depend_on_how_spans_were_split_over_exports_and_loads():
    # Small exports split most traces across several of them, and several loads split some traces
    # across loads (a later load meets traces the store already knows).
    payloads = _requests(spans_per_request=7, piece=3)
    whole = DuckDBStore(":memory:")
    _load(whole, payloads, loads=1)
    expected = _traces(whole)
    assert len(expected) > 10
    # The reference, per trace in Python, over every span at once.
    spans = pa.concat_tables([decode_request(p).table for p in payloads])
    reference = summarise_span_columns({c: spans.column(c).to_pylist() for c in FACT_COLUMNS}, 0)
    assert canonical_summaries(reference) == expected
    for loads in (3, len(payloads)):
        split = DuckDBStore(":memory:")
        _load(split, payloads, loads=loads)
        assert _traces(split) == expected, f"{loads} loads"
    # Re-sending everything changes nothing (idempotent), in other groupings too.
    _load(whole, payloads, loads=2)
    assert _traces(whole) == expected


def test_repeated_spans_leave_their_traces_summaries_untouched():
    payloads = _requests(spans_per_request=50)
    store = DuckDBStore(":memory:")
    _load(store, payloads[:-1], loads=1)
    before = {t["trace_id"]: t for t in store.list_traces(TraceFilter(limit=1000)).to_pylist()}
    # Repeats of stored spans, loaded together with new spans: only the new spans' traces change.
    store.write(pa.concat_tables([decode_request(p).table for p in (payloads[0], payloads[-1])]))
    new = set(decode_request(payloads[-1]).table.column("trace_id").to_pylist())
    after = {t["trace_id"]: t for t in store.list_traces(TraceFilter(limit=1000)).to_pylist()}
    untouched = set(before) - new
    assert untouched and all(after[t] == before[t] for t in untouched)
    assert all(after[t]["updated_at"] > before[t]["updated_at"] for t in new & set(before))
