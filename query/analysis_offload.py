"""A big run's latency analysis in a decode worker process, beside the trajectory in this one.

The web UI asks for a run's trajectory and its latency at once. Both are pure Python over every span and
hold the GIL, so in one process the second waited for the first. The latency report needs no JSON columns
(its spans travel as a little Arrow IPC each), so it is the one that moves: in a decode worker it costs a
little more on its own but runs on the other core, and both answers come sooner (docs/performance.md). Below
``MIN_SPANS`` the hand-over costs more than it saves. Decode jobs come first in those workers only by
arriving first: a request waits at most for the jobs already queued (one per worker).
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool

import orjson
import pyarrow as pa

from trajscope.analysis.latency import labels_from_columns, latency_report
from trajscope.query.gc_pause import gc_paused
from trajscope.storage.loader import ipc_bytes

log = logging.getLogger(__name__)

MIN_SPANS = 2_000


def latency_json(trace_id: str, table: pa.Table, layout: str) -> bytes:
    """The latency response's body for a trace's spans (``analysis.latency.COLUMNS``)."""
    with gc_paused():
        return orjson.dumps(latency_report(trace_id, labels_from_columns(table.to_pydict()), layout))


def _in_worker(trace_id: str, payload: bytes, layout: str) -> bytes:
    return latency_json(trace_id, pa.ipc.open_stream(payload).read_all(), layout)


def latency_body(executor: Executor | None, trace_id: str, table: pa.Table, layout: str) -> bytes:
    """``latency_json``, in ``executor`` (a process pool) for a big run; here if there is none or it is
    gone (shutting down, a worker died)."""
    if executor is not None and table.num_rows >= MIN_SPANS:
        try:
            future = executor.submit(_in_worker, trace_id, ipc_bytes(table), layout)
        except (BrokenProcessPool, RuntimeError):  # RuntimeError: the pool was shut down
            log.warning("analysis worker unavailable; analysing in the server process")
        else:
            try:
                return future.result()
            except BrokenProcessPool:
                log.warning("analysis worker died; analysing in the server process")
    return latency_json(trace_id, table, layout)
