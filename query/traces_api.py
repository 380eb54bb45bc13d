"""Routes of one run: the trace list, a trace's spans, its trajectory and its latency report."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

import orjson
import pyarrow as pa
from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import Response

from trajscope.analysis import evaluations, log_events, messages, retrieval
from trajscope.analysis.latency import COLUMNS as LATENCY_COLUMNS
from trajscope.analysis.trajectory import COLUMNS as TRAJECTORY_COLUMNS
from trajscope.analysis.trajectory import trajectory_of_table
from trajscope.query.analysis_offload import latency_body
from trajscope.query.errors import ApiError, ErrorCode
from trajscope.query.gc_pause import gc_paused
from trajscope.query.params import (
    CostUsd,
    Cursor,
    DurationMs,
    TimeText,
    decode_cursor,
    encode_cursor,
    span_id_param,
    time_param,
    trace_id_param,
)
from trajscope.query.response_cache import MIN_SPANS as CACHE_MIN_SPANS
from trajscope.query.serialise import OrjsonResponse, span_rows, trace_item
from trajscope.query.state import AppState
from trajscope.storage.interface import TraceFilter, TraceVersion

MAX_PAGE = 1000
# What a retrieval step's full documents are read again from (analysis.retrieval).
_DOCUMENT_COLUMNS = ("span_id", "name", "category", "attributes", "events")
# How big-run analyses list their steps / spans (analysis.trajectory and analysis.latency LAYOUTS).
Layout = Annotated[str, Query(pattern="^(objects|table)$", description=(
    "`objects` (default): one object per step (span); `table`: `{fields, rows}`, the same values without "
    "repeating the keys — much faster for big runs"))]


def add_trace_routes(app: FastAPI, state: AppState, guarded: list) -> None:
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
                    version: TraceVersion | None = None, logs: bool = True) -> tuple[pa.Table, list[dict[str, Any]]]:
        """A validated trace id's stored spans (those columns), with the log records that name one of them
        among its events (``analysis.log_events``), and the other log records; or 404. ``logs`` False: the
        caller knows the trace has none, or does not read events."""
        if version is None:
            version = state.store.trace_version(trace_id, project)
        if version is not None and version.span_count > state.max_trace_spans:
            raise ApiError(ErrorCode.TOO_LARGE, (
                f"trace {trace_id} has {version.span_count} spans, over the {state.max_trace_spans} a trace read "
                "returns (--max-trace-spans); query it with SQL (POST /api/v1/sql), e.g. "
                f"SELECT ... FROM spans WHERE trace_id = '{trace_id}' LIMIT ..."))
        table = state.store.get_trace(trace_id, project, columns, version)
        if table.num_rows == 0:
            raise ApiError(ErrorCode.NOT_FOUND, f"no trace {trace_id}")
        if not logs:
            return table, []
        return log_events.attach(table, state.store.get_logs(trace_id, project))

    @app.get("/api/v1/traces/{trace_id}", tags=["traces"], dependencies=guarded)
    def get_trace(trace_id: str, project: str | None = None) -> Any:
        """Every stored span of a trace (normalised fields, the raw OTLP content, and per span its `messages`
        and `evaluations` as read from attributes and events), by start time; and `logs`, the trace's log
        records that name no stored span."""
        trace_id = trace_id_param(trace_id)
        table, left = trace_table(trace_id, project)
        spans = span_rows(table)
        for span in spans:
            span["messages"] = messages.messages(span["attributes"], span["events"])
            span["evaluations"] = evaluations.of_events(span["events"])
        return OrjsonResponse({"trace_id": trace_id, "spans": spans, "logs": left})

    @app.get("/api/v1/traces/{trace_id}/spans/{span_id}/documents", tags=["traces"], dependencies=guarded)
    def get_documents(trace_id: str, span_id: str, project: str | None = None) -> Any:
        """A retrieval step's documents with their whole content (the trajectory and the
        `retrieved_documents` view keep previews): `{query, index_name, top_k, system, documents,
        input_documents}`, each document `{id, rank, score, distance, previous_rank, preview, chars, content,
        metadata}`. 404 when the span is not a retrieval step."""
        trace_id, span_id = trace_id_param(trace_id), span_id_param(span_id)
        table, _ = trace_table(trace_id, project, _DOCUMENT_COLUMNS)
        for span in span_rows(table):
            if span["span_id"] != span_id:
                continue
            step = retrieval.retrieval(span["attributes"], span["events"], span["category"], span["name"],
                                       full=True)
            if step is None:
                raise ApiError(ErrorCode.NOT_FOUND, f"span {span_id} of trace {trace_id} is not a retrieval step")
            return OrjsonResponse({"trace_id": trace_id, "span_id": span_id, **step})
        raise ApiError(ErrorCode.NOT_FOUND, f"no span {span_id} in trace {trace_id}")

    @app.get("/api/v1/traces/{trace_id}/logs", tags=["traces"], dependencies=guarded)
    def get_trace_logs(trace_id: str, project: str | None = None) -> Any:
        """Every OTLP log record of a trace, oldest first; `span_id` names the span it is an event of."""
        trace_id = trace_id_param(trace_id)
        return OrjsonResponse({"trace_id": trace_id,
                               "logs": log_events.record_dicts(state.store.get_logs(trace_id, project))})

    def analysis_response(kind: str, trace_id: str, project: str | None, cache_control: str | None,
                          build: Callable[[TraceVersion | None, int], bytes]) -> Response:
        """A big trace's analysis from the cache when its version is unchanged; `Cache-Control: no-cache`
        rebuilds it. `X-Trajscope-Cache` says which happened."""
        version = state.store.trace_version(trace_id, project)
        cacheable = version is not None and version.span_count >= CACHE_MIN_SPANS
        # Log records attach to spans when read: a new one changes the analysis as a new span does.
        logs = state.store.log_count(trace_id, project)
        key = (kind, trace_id, project, version, logs)
        if cacheable and "no-cache" not in (cache_control or ""):
            body = state.analysis_cache.get(key)
            if body is not None:
                return Response(body, media_type="application/json", headers={"X-Trajscope-Cache": "hit"})
        with gc_paused():
            body = build(version, logs)
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

        def build(version: TraceVersion | None, logs: int) -> bytes:
            table, _ = trace_table(trace_id, project, TRAJECTORY_COLUMNS, version, logs=logs > 0)
            return orjson.dumps(trajectory_of_table(trace_id, table, layout))

        return analysis_response(f"trajectory-{layout}", trace_id, project, cache_control, build)

    @app.get("/api/v1/traces/{trace_id}/latency", tags=["traces"], dependencies=guarded)
    def get_latency(trace_id: str, project: str | None = None,
                    layout: Layout = "objects",
                    cache_control: Annotated[str | None, Header(include_in_schema=False)] = None) -> Any:
        """Critical path and where the time went: per-span self and critical time, and critical/busy time
        by category, tool and model (critical times sum to the root's duration)."""
        trace_id = trace_id_param(trace_id)

        def build(version: TraceVersion | None, logs: int) -> bytes:
            table, _ = trace_table(trace_id, project, LATENCY_COLUMNS, version, logs=False)  # reads no events
            return latency_body(state.analysis_executor, trace_id, table, layout)

        return analysis_response(f"latency-{layout}", trace_id, project, cache_control, build)
