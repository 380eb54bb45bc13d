"""The loader's fast path (summaries computed by the decode worker from one export) must give exactly the
trace rows the store computes from stored spans, and must not be used where it would be wrong."""

import random

import pyarrow as pa

from tests.summaries import canonical_summaries
from trajscope.collector.otlp_decode import decode_request
from trajscope.storage.duckdb_store import DuckDBStore
from trajscope.storage.interface import TraceFilter
from trajscope.storage.staged_writer import _Batch, whole_trace_summaries
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


def _load(store: DuckDBStore, payloads: list[bytes], with_summaries: bool, loads: int) -> None:
    """Load the exports in ``loads`` groups, as the staged writer would."""
    decoded = [decode_request(p, summaries=with_summaries) for p in payloads]
    step = -(-len(decoded) // loads)
    for i in range(0, len(decoded), step):
        group = decoded[i:i + step]
        taken = [_Batch(b"", b.accepted, b.summaries) for b in group]
        tables = [b.table for b in group]
        store.write(pa.concat_tables(tables), whole_trace_summaries(taken, tables))


def test_ready_summaries_equal_the_summaries_computed_from_stored_spans(tmp_path):
    # Small exports split most traces across several of them, and several loads split some traces
    # across loads (the second load meets traces the store already knows).
    payloads = _requests(spans_per_request=7, piece=3)
    slow, fast = DuckDBStore(":memory:"), DuckDBStore(":memory:")
    _load(slow, payloads, with_summaries=False, loads=3)
    _load(fast, payloads, with_summaries=True, loads=3)
    expected = _traces(slow)
    assert len(expected) > 10
    assert _traces(fast) == expected
    # Re-sending everything changes nothing (idempotent), on either path.
    _load(fast, payloads, with_summaries=True, loads=2)
    assert _traces(fast) == expected
    # One export per load: a trace's later pieces each look whole to their own export, and only the
    # store knows better.
    one_by_one = DuckDBStore(":memory:")
    _load(one_by_one, payloads, with_summaries=True, loads=len(payloads))
    assert _traces(one_by_one) == expected


def test_whole_trace_summaries_leave_out_traces_spread_over_exports():
    one = decode_request(_requests(10_000)[0], summaries=True)
    table, summaries = one.table, one.summaries
    trace_ids = summaries.column("trace_id").to_pylist()
    first, second = trace_ids[0], trace_ids[1]
    part_a = table.filter(pa.compute.equal(table.column("trace_id"), first))
    part_b = table.filter(pa.compute.equal(table.column("trace_id"), second))
    sa = summaries.filter(pa.compute.equal(summaries.column("trace_id"), first))
    sb = summaries.filter(pa.compute.equal(summaries.column("trace_id"), second))
    # The same trace in two exports of one load: neither export's summary describes the whole trace.
    taken = [_Batch(b"", part_a.num_rows, sa), _Batch(b"", part_a.num_rows, sa)]
    assert whole_trace_summaries(taken, [part_a, part_a]).num_rows == 0
    # An export without summaries (replayed from the log) vetoes the summaries of its traces.
    taken = [_Batch(b"", part_a.num_rows, sa), _Batch(b"", part_a.num_rows, None),
             _Batch(b"", part_b.num_rows, sb)]
    kept = whole_trace_summaries(taken, [part_a, part_a, part_b])
    assert kept.column("trace_id").to_pylist() == [second]
