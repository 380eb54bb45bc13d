"""The query API (FastAPI; OpenAPI at ``/docs``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Annotated, Any

import orjson
import pyarrow as pa
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

import trajscope.ui
from trajscope.analysis.latency import COLUMNS as LATENCY_COLUMNS
from trajscope.analysis.trajectory import COLUMNS as TRAJECTORY_COLUMNS
from trajscope.analysis.trajectory import trajectory_of_table
from trajscope.collector.auth import is_authorised, key_from_headers
from trajscope.query.alerting import AlertMonitor
from trajscope.query.analysis_offload import latency_body
from trajscope.query.analyst_sql import DEFAULT_TIMEOUT_S
from trajscope.query.cost_api import add_cost_routes
from trajscope.query.errors import ApiError, ErrorCode, install_error_handlers
from trajscope.query.filters import RunFilter, run_filter
from trajscope.query.gc_pause import gc_paused
from trajscope.query.openapi import install_openapi
from trajscope.query.params import (
    CostUsd,
    Cursor,
    DurationMs,
    TimeText,
    decode_cursor,
    decode_session_cursor,
    encode_cursor,
    encode_session_cursor,
    time_param,
    trace_id_param,
)
from trajscope.query.response_cache import MIN_SPANS as CACHE_MIN_SPANS
from trajscope.query.response_cache import ResponseCache
from trajscope.query.serialise import OrjsonResponse, span_rows, trace_item
from trajscope.query.sessions import get_session, list_sessions
from trajscope.query.sql_api import add_sql_routes
from trajscope.query.stats import guardrail_stats, latency_stats, usage_stats
from trajscope.storage.duckdb_store import DuckDBStore
from trajscope.storage.interface import TraceFilter, TraceVersion

MAX_PAGE = 1000
# How big-run analyses list their steps / spans (analysis.trajectory and analysis.latency LAYOUTS).
Layout = Annotated[str, Query(pattern="^(objects|table)$", description=(
    "`objects` (default): one object per step (span); `table`: `{fields, rows}`, the same values without "
    "repeating the keys — much faster for big runs"))]
UI_DIR = Path(trajscope.ui.__file__).parent / "static"


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


def create_app(state: AppState) -> FastAPI:
    app = FastAPI(
        title="trajscope",
        version="0.1.0",
        description="Traces of AI agents, normalised into agent terms. Ids are lowercase hex; times are "
                    "`*_unix_nano` integers plus `duration_ms`.",
        default_response_class=OrjsonResponse,
    )
    install_error_handlers(app)

    # Both dependencies run on the event loop: a plain `def` dependency is a hop to a worker thread and
    # back (the trace list over HTTP at 10M spans: 18.5 → 15.9 ms p50, medians of 3–4 runs; a cached
    # trace lookup ~11.5 → ~11.2).
    async def authorised(
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
        x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> None:
        if not is_authorised(state.api_key, key_from_headers(authorization, x_api_key)):
            raise ApiError(ErrorCode.UNAUTHORIZED, "missing or wrong API key (Authorization: Bearer <key>)")

    async def fresh() -> None:
        if not state.caught_up():  # only waiting for a load leaves the event loop
            await run_in_threadpool(state.sync)

    guarded = [Depends(authorised), Depends(fresh)]
    # Routes return response objects (OrjsonResponse, or ready bytes): a plain dict would first be walked
    # by FastAPI's jsonable_encoder (~70 ms for a 10k-span trajectory) before being serialised.

    # The web UI: static files shipped in the package (no build step, nothing fetched from elsewhere).
    app.mount("/ui", StaticFiles(directory=UI_DIR), name="ui")

    @app.get("/", include_in_schema=False)
    def root() -> FileResponse:
        return FileResponse(UI_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/v1/health", tags=["server"])
    def health() -> Any:
        """200 once every receiver and the API are serving; 503 before."""
        if not state.ready:
            raise ApiError(ErrorCode.NOT_READY, "starting up")
        return {"status": "ok", "schema_version": getattr(state.store, "schema_version", None),
                "ingest": state.ingest_stats()}

    @app.get("/api/v1/traces", tags=["traces"], dependencies=guarded)
    def list_traces(
        request: Request,
        project: str | None = None,
        service: str | None = None,
        agent: str | None = None,
        session_id: str | None = None,
        status: Annotated[str | None, Query(pattern="^(error|any)$")] = None,
        since: TimeText = None,
        until: TimeText = None,
        min_duration_ms: DurationMs = None,
        min_cost_usd: CostUsd = None,
        guardrail: Annotated[str | None, Query(pattern="^hits$", description="`hits`: only runs with a "
                                                                              "guardrail hit")] = None,
        q: Annotated[str | None, Query(max_length=200, description="a trace or span id, or text in a span "
                                                                   "name")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        cursor: Cursor = None,
    ) -> Any:
        """Traces newest first, one summary row each. Pass ``next_cursor`` back as ``cursor`` for more."""
        now = time.time_ns()
        flt = TraceFilter(
            project=project, service=service, agent=agent, session_id=session_id,
            errors_only=status == "error",
            since_unix_nano=time_param("since", since, now),
            until_unix_nano=time_param("until", until, now),
            min_duration_ns=int(min_duration_ms * 1e6) if min_duration_ms is not None else None,
            min_cost_usd=min_cost_usd, guardrail_hits_only=guardrail == "hits", search=q.strip() if q else None,
            limit=limit + 1,
            after=decode_cursor(cursor),
        )
        found = state.store.list_traces(flt).to_pylist()
        page = found[:limit]
        next_cursor = None
        if len(found) > limit:
            last = page[-1]
            next_cursor = encode_cursor(last["start_time_unix_nano"], last["trace_id"])
        return OrjsonResponse({"traces": [trace_item(r) for r in page], "next_cursor": next_cursor})

    def trace_table(trace_id: str, project: str | None, columns: tuple[str, ...] | None = None,
                    version: TraceVersion | None = None) -> pa.Table:
        """A validated trace id's stored spans (those columns), or 404."""
        table = state.store.get_trace(trace_id, project, columns, version)
        if table.num_rows == 0:
            raise ApiError(ErrorCode.NOT_FOUND, f"no trace {trace_id}")
        return table

    @app.get("/api/v1/traces/{trace_id}", tags=["traces"], dependencies=guarded)
    def get_trace(trace_id: str, project: str | None = None) -> Any:
        """Every stored span of a trace (normalised fields and the raw OTLP content), by start time."""
        trace_id = trace_id_param(trace_id)
        return OrjsonResponse({"trace_id": trace_id, "spans": span_rows(trace_table(trace_id, project))})

    def analysis_response(kind: str, trace_id: str, project: str | None, cache_control: str | None,
                          build: Callable[[TraceVersion | None], bytes]) -> Response:
        """A big trace's analysis from the cache when its version is unchanged; `Cache-Control: no-cache`
        rebuilds it. `X-Trajscope-Cache` says which happened."""
        version = state.store.trace_version(trace_id, project)
        cacheable = version is not None and version.span_count >= CACHE_MIN_SPANS
        key = (kind, trace_id, project, version)
        if cacheable and "no-cache" not in (cache_control or ""):
            body = state.analysis_cache.get(key)
            if body is not None:
                return Response(body, media_type="application/json", headers={"X-Trajscope-Cache": "hit"})
        with gc_paused():
            body = build(version)
        if cacheable:
            state.analysis_cache.put(key, body)
        return Response(body, media_type="application/json", headers={"X-Trajscope-Cache": "miss"})

    @app.get("/api/v1/traces/{trace_id}/trajectory", tags=["traces"], dependencies=guarded)
    def get_trajectory(trace_id: str, project: str | None = None,
                       layout: Layout = "objects",
                       cache_control: Annotated[str | None, Header(include_in_schema=False)] = None) -> Any:
        """The run step by step: depth-first from the root, siblings by start time, parallel groups, tool
        calls linked to the LLM step that requested them, anomalies and totals."""
        trace_id = trace_id_param(trace_id)

        def build(version: TraceVersion | None) -> bytes:
            table = trace_table(trace_id, project, TRAJECTORY_COLUMNS, version)
            return orjson.dumps(trajectory_of_table(trace_id, table, layout))

        return analysis_response(f"trajectory-{layout}", trace_id, project, cache_control, build)

    @app.get("/api/v1/traces/{trace_id}/latency", tags=["traces"], dependencies=guarded)
    def get_latency(trace_id: str, project: str | None = None,
                    layout: Layout = "objects",
                    cache_control: Annotated[str | None, Header(include_in_schema=False)] = None) -> Any:
        """Critical path and where the time went: per-span self and critical time, and critical/busy time
        by category, tool and model (critical times sum to the root's duration)."""
        trace_id = trace_id_param(trace_id)

        def build(version: TraceVersion | None) -> bytes:
            table = trace_table(trace_id, project, LATENCY_COLUMNS, version)
            return latency_body(state.analysis_executor, trace_id, table, layout)

        return analysis_response(f"latency-{layout}", trace_id, project, cache_control, build)

    @app.get("/api/v1/sessions", tags=["sessions"], dependencies=guarded)
    def sessions(
        flt: Annotated[RunFilter, Depends(run_filter)], user: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50, cursor: Cursor = None,
    ) -> Any:
        """Sessions (conversations), most recently active first, with their totals."""
        found = list_sessions(state.store, flt, user, limit + 1, decode_session_cursor(cursor))
        page, next_cursor = found[:limit], None
        if len(found) > limit:
            next_cursor = encode_session_cursor(page[-1]["last_start_time_unix_nano"], page[-1]["session_id"])
        return OrjsonResponse({"sessions": page, "next_cursor": next_cursor})

    @app.get("/api/v1/sessions/{session_id}", tags=["sessions"], dependencies=guarded)
    def session(session_id: str, project: str | None = None) -> Any:
        """The session's traces in time order with per-trace and total tokens, cost, duration, errors."""
        found = get_session(state.store, session_id, project)
        if found is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"no session {session_id!r}")
        return OrjsonResponse(found)

    @app.get("/api/v1/stats/latency", tags=["stats"], dependencies=guarded)
    def stats_latency(
        flt: Annotated[RunFilter, Depends(run_filter)],
        group_by: Annotated[str, Query(pattern="^(category|tool|model|agent|span_name)$")] = "category",
    ) -> Any:
        """Where the time of many runs goes: per group, count and duration percentiles, and the total
        critical-path time with its share of all critical time."""
        return OrjsonResponse(latency_stats(state.store, group_by, flt))

    @app.get("/api/v1/stats/usage", tags=["stats"], dependencies=guarded)
    def stats_usage(
        flt: Annotated[RunFilter, Depends(run_filter)],
        group_by: Annotated[str, Query(pattern="^(model|agent|user|session|day)$")] = "model",
    ) -> Any:
        """Model calls, tokens (each call counted once), cost and errors per group."""
        return OrjsonResponse(usage_stats(state.store, group_by, flt))

    @app.get("/api/v1/stats/guardrails", tags=["stats"], dependencies=guarded)
    def stats_guardrails(
        flt: Annotated[RunFilter, Depends(run_filter)],
        group_by: Annotated[str, Query(pattern="^(name|action|agent|day)$")] = "name",
    ) -> Any:
        """Guardrail checks per group: checks, hits, blocks, checks whose outcome was not reported, and
        the hit rate over checks with a known outcome."""
        return OrjsonResponse(guardrail_stats(state.store, group_by, flt))

    @app.get("/api/v1/alerts", tags=["alerts"], dependencies=guarded)
    def alerts() -> Any:
        """Each rule of the server's `--alerts` file with its state: pending, ok, firing (since when, the
        observed value and details) or error."""
        monitor = state.alerts
        if monitor is None:
            return OrjsonResponse({"configured": False, "alerts": []})
        return OrjsonResponse({"configured": True, "interval_s": monitor.config.interval_s,
                               "webhook": monitor.config.webhook is not None, "alerts": monitor.states()})

    add_sql_routes(app, state, guarded)
    add_cost_routes(app, state, guarded)
    install_openapi(app)
    return app
