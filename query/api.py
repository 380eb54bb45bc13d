"""The query API (FastAPI; OpenAPI at ``/docs``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request

from trajscope.collector.auth import is_authorised, key_from_headers
from trajscope.query.errors import ApiError, ErrorCode, install_error_handlers
from trajscope.query.params import decode_cursor, encode_cursor, time_param, trace_id_param
from trajscope.query.serialise import OrjsonResponse, rows, span_item, trace_item
from trajscope.storage.duckdb_store import DuckDBStore
from trajscope.storage.interface import TraceFilter

MAX_PAGE = 1000


class AppState:
    """What the routes need from the running server."""

    def __init__(self, store: DuckDBStore, api_key: str | None = None,
                 ingest_stats: Callable[[], dict[str, Any]] | None = None) -> None:
        self.store = store
        self.api_key = api_key
        self.ingest_stats = ingest_stats or dict
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

    def authorised(
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
        x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> None:
        if not is_authorised(state.api_key, key_from_headers(authorization, x_api_key)):
            raise ApiError(ErrorCode.UNAUTHORIZED, "missing or wrong API key (Authorization: Bearer <key>)")

    guarded = [Depends(authorised)]

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
        since: Annotated[str | None, Query(description="Unix ns, RFC 3339, or an age like 1h")] = None,
        until: Annotated[str | None, Query(description="Unix ns, RFC 3339, or an age like 1h")] = None,
        min_duration_ms: Annotated[float | None, Query(ge=0)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        cursor: str | None = None,
    ) -> Any:
        """Traces newest first, one summary row each. Pass ``next_cursor`` back as ``cursor`` for more."""
        now = time.time_ns()
        flt = TraceFilter(
            project=project, service=service, agent=agent, session_id=session_id,
            errors_only=status == "error",
            since_unix_nano=time_param("since", since, now),
            until_unix_nano=time_param("until", until, now),
            min_duration_ns=int(min_duration_ms * 1e6) if min_duration_ms is not None else None,
            limit=limit + 1,
            after=decode_cursor(cursor),
        )
        found = rows(state.store.list_traces(flt))
        page = found[:limit]
        next_cursor = None
        if len(found) > limit:
            last = page[-1]
            next_cursor = encode_cursor(last["start_time_unix_nano"], last["trace_id"])
        return {"traces": [trace_item(r) for r in page], "next_cursor": next_cursor}

    @app.get("/api/v1/traces/{trace_id}", tags=["traces"], dependencies=guarded)
    def get_trace(trace_id: str, project: str | None = None) -> Any:
        """Every stored span of a trace (normalised fields and the raw OTLP content), by start time."""
        trace_id = trace_id_param(trace_id)
        spans = rows(state.store.get_trace(trace_id, project))
        if not spans:
            raise ApiError(ErrorCode.NOT_FOUND, f"no trace {trace_id}")
        return {"trace_id": trace_id, "spans": [span_item(s) for s in spans]}

    return app
