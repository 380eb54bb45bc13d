"""Load marks: every stored span's ``ingested_at_unix_nano`` is the time its load was written plus its row's
offset in the load, in nanoseconds — unique, and increasing in the order DuckDB stores the rows.

Why: a trace lookup through the ART index fetches each row on its own, and for the ZSTD-compressed JSON
columns DuckDB decompresses the row's 2,048-row vector from its start for every row fetched (~0.15–0.45 ms
per row here). A column whose values increase with the storage order has exact zone maps, so a range of
marks is a scan that DuckDB prunes to the row groups and vectors holding those rows, each vector decoded
once. The lookup reads a trace's marks through the index (one cheap column), groups them into ranges, and
scans each range. At 10M spans (bench/lookup.py): a 500-span run written in one load 106 → 12 ms, written
over five loads with other spans between 186 → 27 ms; an 8–16-span trace about the same to ~20 % less
(a range decodes whole vectors of every column, the index only the trace's rows).

Spans stored before marks existed carry their decode time (shared by a request's spans, only roughly
increasing): ranges over them still return the right rows (the lookup filters by trace and checks the
count), just with less pruning, and lookups fall back to the index when ranges would not pay.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

MARK_COLUMN = "ingested_at_unix_nano"
# A decoded span's mark until the store stamps it at load (``stamp``): decoders leave it at this.
UNSTAMPED = 0
# Marks closer than this are read as one range: within a load they are rows (up to one vector between two
# of a trace's rows is cheaper to scan than a second range); across loads, nanoseconds.
RANGE_GAP = 2048
# A range costs about one vector's decode per column (~2.5–4 ms here), an index fetch ~0.15–0.45 ms per row:
# ranges pay while each holds at least this many of the trace's rows on average.
ROWS_PER_RANGE = 6
# Each range is a scan of its own in one query: past this many, planning them costs more than they save.
MAX_RANGES = 64


def stamp(spans: pa.Table, after: int, now: int) -> tuple[pa.Table, int]:
    """``spans`` with their load marks, the first after both ``after`` (the last mark given) and ``now``;
    and the last mark given here."""
    first = max(now, after + 1)
    marks = pa.array(np.arange(first, first + spans.num_rows, dtype=np.int64))
    return spans.set_column(spans.schema.get_field_index(MARK_COLUMN), MARK_COLUMN, marks), first + spans.num_rows - 1


def mark_ranges(marks: np.ndarray, gap: int = RANGE_GAP) -> list[tuple[int, int]]:
    """Inclusive (low, high) ranges covering every mark, in order; marks less than ``gap`` apart share one."""
    if marks.size == 0:
        return []
    ordered = np.sort(marks)
    cuts = np.flatnonzero(np.diff(ordered) >= gap) + 1
    lows = ordered[np.concatenate(([0], cuts))]
    highs = ordered[np.concatenate((cuts - 1, [ordered.size - 1]))]
    return list(zip(lows.tolist(), highs.tolist(), strict=True))


def ranges_pay(rows: int, ranges: int) -> bool:
    """Whether scanning ``ranges`` beats fetching ``rows`` rows through the index."""
    return 0 < ranges <= min(MAX_RANGES, max(1, rows // ROWS_PER_RANGE))
