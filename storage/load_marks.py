"""Load marks: every stored span's ``ingested_at_unix_nano`` is the time its load was written plus its row's
offset in the load, in nanoseconds — unique, and increasing in the order DuckDB stores the rows.

Why: a column whose values increase with the storage order has exact zone maps, so a range of marks is a
scan that DuckDB prunes to the row groups and vectors holding those rows, each vector decoded once. Each
trace's summary row keeps the ranges of its spans' marks (``traces.mark_ranges``, recomputed with the rest
of the summary whenever the trace gets spans), so a trace is read — by a lookup, or by the writer for its
dedup and summary — as one scan per range, and the spans table needs no index on ``trace_id``. Such an index
(DuckDB's ART) is touched all over by the random ids of every load, so all of it stays in memory and grows
with the store; the summaries' ranges cost a few bytes per trace in a table that is read anyway.

Spans stored before marks existed carry their decode time (shared by a request's spans, only roughly
increasing): ranges over them still hold the right rows (reads filter by trace and check the count), with
less pruning.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MARK_COLUMN = "ingested_at_unix_nano"
# A decoded span's mark until the store stamps it at load (``stamp``): decoders leave it at this.
UNSTAMPED = 0
# Marks closer than this are read as one range: within a load they are rows (up to one vector between two
# of a trace's rows is cheaper to scan than a second range); across loads, nanoseconds.
RANGE_GAP = 2048
# Each range is a scan of its own in one query: past this many, planning them costs more than reading the
# rows between the closest ones. A trace keeps at most this many (``cap_ranges``).
MAX_RANGES = 64
RANGE = pa.struct([("low", pa.int64()), ("high", pa.int64())])
RANGES = pa.list_(RANGE)


def stamp(spans: pa.Table, after: int, now: int) -> tuple[pa.Table, int]:
    """``spans`` with their load marks, the first after both ``after`` (the last mark given) and ``now``;
    and the last mark given here."""
    first = max(now, after + 1)
    marks = pa.array(np.arange(first, first + spans.num_rows, dtype=np.int64))
    at = spans.schema.get_field_index(MARK_COLUMN)
    return spans.set_column(at, spans.schema.field(at), marks), first + spans.num_rows - 1


def mark_ranges(marks: np.ndarray, gap: int = RANGE_GAP) -> list[tuple[int, int]]:
    """Inclusive (low, high) ranges covering every mark, in order; marks less than ``gap`` apart share one."""
    if marks.size == 0:
        return []
    ordered = np.sort(marks)
    cuts = np.flatnonzero(np.diff(ordered) >= gap) + 1
    lows = ordered[np.concatenate(([0], cuts))]
    highs = ordered[np.concatenate((cuts - 1, [ordered.size - 1]))]
    return list(zip(lows.tolist(), highs.tolist(), strict=True))


def cap_ranges(ranges: list[tuple[int, int]], limit: int = MAX_RANGES) -> list[tuple[int, int]]:
    """Sorted, disjoint ``ranges`` cut to at most ``limit`` by joining neighbours across the smallest gaps: the
    result covers everything ``ranges`` did (and the rows between the joined ones)."""
    if len(ranges) <= limit:
        return ranges
    lows = np.array([r[0] for r in ranges], np.int64)
    highs = np.array([r[1] for r in ranges], np.int64)
    gaps = lows[1:] - highs[:-1]
    # The largest limit - 1 gaps stay cuts; ties broken by position, so the result is deterministic.
    keep = np.sort(np.argsort(-gaps, kind="stable")[:limit - 1])
    starts = np.concatenate(([0], keep + 1))
    ends = np.concatenate((keep, [len(ranges) - 1]))
    return list(zip(lows[starts].tolist(), highs[ends].tolist(), strict=True))


def union_ranges(ranges: list[tuple[int, int]], gap: int = RANGE_GAP,
                 limit: int = MAX_RANGES) -> list[tuple[int, int]]:
    """The ranges of several traces as one sorted set of at most ``limit`` scans: overlapping ranges, and
    ranges less than ``gap`` apart, joined."""
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low - merged[-1][1] < gap:
            if high > merged[-1][1]:
                merged[-1] = (merged[-1][0], high)
        else:
            merged.append((low, high))
    return cap_ranges(merged, limit)


def trace_ranges(trace_ids: pa.Array, marks: np.ndarray, gap: int = RANGE_GAP,
                 limit: int = MAX_RANGES) -> tuple[pa.Array, pa.ListArray]:
    """Each distinct trace id of ``trace_ids`` and the ranges (``RANGES``) of its rows' ``marks``: what
    ``mark_ranges`` and ``cap_ranges`` give per trace, for all traces at once."""
    encoded = pc.dictionary_encode(trace_ids)
    codes = np.asarray(encoded.indices, np.int64)
    traces = len(encoded.dictionary)
    order = np.lexsort((marks, codes))
    code, mark = codes[order], np.asarray(marks, np.int64)[order]
    first = np.ones(code.size, np.bool_)
    first[1:] = (code[1:] != code[:-1]) | (np.diff(mark) >= gap)
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], code.size) - 1
    lows, highs, owner = mark[starts], mark[ends], code[starts]
    counts = np.bincount(owner, minlength=traces)
    if counts.max(initial=0) > limit:  # rare (a trace arriving over many loads): capped one trace at a time
        capped_lows, capped_highs, capped_counts = [], [], []
        bounds = np.concatenate(([0], np.cumsum(counts)))
        for t in range(traces):
            own = list(zip(lows[bounds[t]:bounds[t + 1]].tolist(), highs[bounds[t]:bounds[t + 1]].tolist(),
                           strict=True))
            own = cap_ranges(own, limit)
            capped_lows += [r[0] for r in own]
            capped_highs += [r[1] for r in own]
            capped_counts.append(len(own))
        lows, highs = np.array(capped_lows, np.int64), np.array(capped_highs, np.int64)
        counts = np.array(capped_counts, np.int64)
    offsets = pa.array(np.concatenate(([0], np.cumsum(counts))).astype(np.int32))
    values = pa.StructArray.from_arrays([pa.array(lows), pa.array(highs)], fields=list(RANGE))
    return encoded.dictionary, pa.ListArray.from_arrays(offsets, values, type=RANGES)


def ranges_of(value: list[dict[str, int]] | None) -> tuple[tuple[int, int], ...] | None:
    """A stored ``mark_ranges`` value (as DuckDB returns it) as (low, high) pairs."""
    return None if value is None else tuple((r["low"], r["high"]) for r in value)


def ranges_sql(ranges: tuple[tuple[int, int], ...] | list[tuple[int, int]], column: str = MARK_COLUMN) -> list[str]:
    """One ``BETWEEN`` condition per range (each its own scan: ranges joined by OR are not pruned by the
    zone maps)."""
    return [f"{column} BETWEEN {int(low)} AND {int(high)}" for low, high in ranges]
