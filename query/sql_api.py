"""``POST /api/v1/sql``: analysts' read-only SQL over the trace tables and views (see ``analyst_sql``)."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, Field

from trajscope.audit import statement_hash
from trajscope.query.analyst_sql import DEFAULT_LIMIT, MAX_LIMIT, SqlError, run_sql
from trajscope.query.errors import ApiError, ErrorCode
from trajscope.query.result_formats import MEDIA_TYPES, encode
from trajscope.query.scoped_sql import scoped_statement


class SqlRequest(BaseModel):
    sql: str = Field(description="one SELECT / WITH / EXPLAIN / DESCRIBE statement")
    format: Literal["json", "csv", "arrow", "parquet"] = "json"
    limit: int = Field(DEFAULT_LIMIT, ge=0, le=MAX_LIMIT, description="rows returned at most; "
                       "`truncated` (JSON) or the X-Trajscope-Truncated header says if there were more")
    timeout_s: float | None = Field(None, gt=0, description="deadline; may only lower the server's")


def _audit(state, http: Request, sql: str, started: float, **fields) -> None:
    if state.audit is not None:
        state.audit.record(http.state.grant.name, "sql", sha256=statement_hash(sql),
                           duration_ms=round((time.perf_counter() - started) * 1e3, 1), **fields)


def add_sql_routes(app: FastAPI, state, dependencies: list) -> None:
    @app.post("/api/v1/sql", tags=["sql"], dependencies=dependencies,
              responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}}})
    def sql(request: SqlRequest, http: Request) -> Response:
        """Run one read query over `spans`, `traces`, `log_records`, `llm_calls`, `tool_calls`,
        `guardrail_events`, `evaluations`, `sessions` (columns in docs/analyst-sql.md). JSON for small
        answers; Arrow IPC stream or Parquet for large ones. Errors: `invalid_sql`, `forbidden` (400),
        `timeout` (408), `too_large` (413)."""
        timeout = min(request.timeout_s or state.sql_timeout_s, state.sql_timeout_s)
        projects = http.state.grant.projects  # None: every project (query.project_scope)
        started = time.perf_counter()
        with state.store.reading() as cursor:
            try:
                statement = request.sql if projects is None else scoped_statement(cursor, request.sql, projects)
                result = run_sql(cursor, statement, limit=request.limit, timeout_s=timeout)
            except SqlError as exc:
                _audit(state, http, request.sql, started, outcome=exc.code.value)
                raise ApiError(ErrorCode(exc.code.value), exc.message) from None
        _audit(state, http, request.sql, started, outcome="ok", rows=result.table.num_rows)
        meta = {"truncated": result.truncated, "limit": request.limit, "elapsed_ms": round(result.elapsed_ms, 1)}
        body = encode(result.table, request.format, **meta)
        headers = {"X-Trajscope-Row-Count": str(result.table.num_rows),
                   "X-Trajscope-Truncated": str(result.truncated).lower(),
                   "X-Trajscope-Elapsed-Ms": str(meta["elapsed_ms"])}
        if request.format == "parquet":
            headers["Content-Disposition"] = 'attachment; filename="result.parquet"'
        return Response(body, media_type=MEDIA_TYPES[request.format], headers=headers)
