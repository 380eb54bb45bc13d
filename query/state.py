"""What the API's routes need from the running server."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from trajscope.audit import AuditLog
from trajscope.collector.auth import Access
from trajscope.metrics import Exposition
from trajscope.query.alerting import AlertMonitor
from trajscope.query.analyst_sql import DEFAULT_TIMEOUT_S
from trajscope.query.observability import RouteLatency
from trajscope.query.response_cache import ResponseCache
from trajscope.storage.duckdb_store import DuckDBStore

# How long a read waits for spans acknowledged before it to become queryable; past it, it answers from what
# is loaded and says how far behind that is (X-Trajscope-Behind). Bounds read latency under overload.
READ_WAIT_S = 0.5
# A trace read whole is one JSON answer and one analysis in memory: past this size, SQL is the way to read it.
MAX_TRACE_SPANS = 250_000


class AppState:
    """What the routes need from the running server."""

    def __init__(self, store: DuckDBStore, api_key: str | None = None,
                 ingest_stats: Callable[[], dict[str, Any]] | None = None,
                 sync: Callable[[float], bool] | None = None, sql_timeout_s: float = DEFAULT_TIMEOUT_S,
                 caught_up: Callable[[], bool] | None = None, read_wait_s: float = READ_WAIT_S,
                 unloaded: Callable[[], int] | None = None, max_trace_spans: int = MAX_TRACE_SPANS) -> None:
        self.store = store
        self.sql_timeout_s = sql_timeout_s
        # Who may read what (the API key and the keys file): set by the server; the API key alone by default.
        self.access = Access(api_key)
        # Admin actions and analyst queries are written here (the server's DIR/audit.jsonl); None: not kept.
        self.audit: AuditLog | None = None
        self.ingest_stats = ingest_stats or dict
        # Waits (up to its argument, in s) until every span acknowledged before the call is loaded: a read sees
        # them all, unless ingest is so far behind that ``read_wait_s`` passes first (``unloaded`` says how
        # many acknowledged spans it could not see yet).
        self.sync = sync or (lambda timeout: True)
        self.read_wait_s = read_wait_s
        # Traces bigger than this are not read whole by the trace routes (413, pointing to SQL).
        self.max_trace_spans = max_trace_spans
        self.unloaded = unloaded or (lambda: 0)
        # Whether ``sync`` would return at once (nothing acknowledged is still waiting to be loaded).
        self.caught_up = caught_up or (lambda: sync is None)
        self.alerts: AlertMonitor | None = None
        # The server's own metrics for ``GET /metrics`` (written into the exposition by the server), and the
        # API's request latency per route (kept by ``observability.RequestObservation``).
        self.metrics: Callable[[Exposition], None] = lambda out: None
        self.route_latency = RouteLatency()
        self.analysis_cache = ResponseCache()
        # Processes that may take a big run's latency analysis (the server's decode workers).
        self.analysis_executor: Executor | None = None
        self.ready = False
