"""What the API's routes need from the running server."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from trajscope.query.alerting import AlertMonitor
from trajscope.query.analyst_sql import DEFAULT_TIMEOUT_S
from trajscope.query.response_cache import ResponseCache
from trajscope.storage.duckdb_store import DuckDBStore


class AppState:
    """What the routes need from the running server."""

    def __init__(self, store: DuckDBStore, api_key: str | None = None,
                 ingest_stats: Callable[[], dict[str, Any]] | None = None,
                 sync: Callable[[], object] | None = None, sql_timeout_s: float = DEFAULT_TIMEOUT_S,
                 caught_up: Callable[[], bool] | None = None) -> None:
        self.store = store
        self.sql_timeout_s = sql_timeout_s
        self.api_key = api_key
        self.ingest_stats = ingest_stats or dict
        # Waits until every acknowledged span is loaded: a read sees all spans acknowledged before it.
        self.sync = sync or (lambda: None)
        # Whether ``sync`` would return at once (nothing acknowledged is still waiting to be loaded).
        self.caught_up = caught_up or (lambda: sync is None)
        self.alerts: AlertMonitor | None = None
        self.analysis_cache = ResponseCache()
        # Processes that may take a big run's latency analysis (the server's decode workers).
        self.analysis_executor: Executor | None = None
        self.ready = False
