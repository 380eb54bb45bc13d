"""The storage contract every backend implements (and the one conformance suite in tests checks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import pyarrow as pa


@dataclass(frozen=True)
class TraceFilter:
    """Filters for listing traces, newest first. ``cursor`` continues after the last item of a page."""

    project: str | None = None
    service: str | None = None
    agent: str | None = None
    session_id: str | None = None
    errors_only: bool = False
    since_unix_nano: int | None = None
    until_unix_nano: int | None = None
    min_duration_ns: int | None = None
    min_cost_usd: float | None = None
    guardrail_hits_only: bool = False
    # A trace id, a span id, or text found in a span name (case-insensitive).
    search: str | None = None
    limit: int = 50
    # (start_time_unix_nano, trace_id) of the last item already returned.
    after: tuple[int, str] | None = None


class TraceVersion(NamedTuple):
    """A trace's summary version and extent: any write touching the trace changes ``updated_at``. The
    store's own: where its spans are stored (``storage.load_marks``)."""

    updated_at: int
    span_count: int
    start_time_unix_nano: int
    end_time_unix_nano: int
    mark_ranges: tuple[tuple[int, int], ...] | None = None


class StoreUnavailable(RuntimeError):
    """A write failed because of the store (I/O, memory, an engine that must be reopened), not because of the
    spans: the same write may succeed later."""


class CheckpointDeferred(RuntimeError):
    """The engine would not checkpoint now (another transaction it counts as writing is open); the next
    checkpoint tries again. Nothing is lost: what was loaded stays in the logs until a checkpoint succeeds."""


class StoreInvalidated(StoreUnavailable):
    """The engine gave up on the database after a fatal error (a checkpoint that could not write, say): no
    statement succeeds on it until it is reopened, which a restart does."""


class SpanStore(Protocol):
    def write(self, spans: pa.Table) -> int:
        """Store spans (``schema.SPAN_SCHEMA``) and refresh the summaries of the traces they belong to.

        Idempotent on (trace_id, span_id): a span already stored is left as it is. On return the spans are
        committed (every later read sees them); they are in the file once ``checkpoint`` returns (callers keep
        them in their own log until then: docs/durability.md). Returns the number of spans that were new.
        Raises ``StoreUnavailable`` when the store, not the spans, is at fault; any other error is the
        spans' own (the caller isolates and quarantines them).
        """
        ...

    def get_trace(self, trace_id: str, project: str | None = None,
                  columns: tuple[str, ...] | None = None, window: TraceVersion | None = None) -> pa.Table:
        """All stored spans of one trace (``SPAN_SCHEMA``, or just ``columns``), by start time; empty if
        unknown. ``window`` (the trace's ``trace_version``, when the caller has it) lets a store read big
        traces within their time span."""
        ...

    def get_logs(self, trace_id: str, project: str | None = None) -> pa.Table:
        """The OTLP log records of one trace (``schema.LOG_SCHEMA``), oldest first."""
        ...

    def log_count(self, trace_id: str, project: str | None = None) -> int:
        """How many log records the trace has."""
        ...

    def trace_version(self, trace_id: str, project: str | None = None) -> TraceVersion | None:
        """What changes whenever a write touches the trace (and its extent), or None if unknown."""
        ...

    def list_traces(self, flt: TraceFilter) -> pa.Table:
        """Trace summaries (``schema.SUMMARY_SCHEMA``) matching ``flt``, newest start first."""
        ...

    def query(self, sql: str, params: list[object] | None = None) -> pa.Table:
        """Run a read-only analytical query (DuckDB SQL) over the ``spans`` and ``traces`` tables.

        The query layer builds these from fixed templates with bound parameters; analysts' own SQL goes
        through the sandboxed SQL endpoint, not here."""
        ...

    def close(self) -> None:
        """Release the store; after ``write`` has returned, nothing is lost by closing or by a crash."""
        ...
