"""``POST /api/v1/delete``: erasure requests — a trace, or every trace of a session or a user — with an audit line."""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field

from trajscope.query.errors import ApiError, ErrorCode
from trajscope.query.serialise import OrjsonResponse
from trajscope.retention import erasure_condition


class DeleteRequest(BaseModel):
    trace_id: str | None = Field(None, pattern="^[0-9a-fA-F]{32}$")
    session_id: str | None = Field(None, min_length=1, max_length=512)
    user_id: str | None = Field(None, min_length=1, max_length=512)
    project: str | None = Field(None, min_length=1, max_length=512, description="only this project's traces")


def add_delete_routes(app: FastAPI, state, dependencies: list) -> None:
    @app.post("/api/v1/delete", tags=["server"], dependencies=dependencies)
    def delete(request: DeleteRequest, http: Request) -> OrjsonResponse:
        """Delete whole traces — spans, log records, summary — for an erasure request: one trace, or every
        trace a session or a user appears in. Needs the `admin` scope; a key limited to some projects deletes
        only in those. Answers the counts deleted; the audit log records who asked for what."""
        named = {k: v for k, v in (("trace_id", request.trace_id), ("session_id", request.session_id),
                                   ("user_id", request.user_id)) if v is not None}
        if len(named) != 1:
            raise ApiError(ErrorCode.INVALID_ARGUMENT, "name exactly one of trace_id, session_id, user_id")
        projects = getattr(http.state, "projects", None)
        project = request.project
        if projects is not None:
            if project is None and len(projects) == 1:
                project = next(iter(projects))
            if project is None or project not in projects:
                raise ApiError(ErrorCode.PERMISSION_DENIED,
                               f"this key deletes only in project(s) {', '.join(sorted(projects))}: name one")
        started = time.perf_counter()
        deleted = state.store.delete_traces(erasure_condition(project=project, **named))
        if state.audit is not None:
            state.audit.record(getattr(http.state, "actor", "open"), "delete", project=project, **named,
                               traces=deleted.traces, spans=deleted.spans, log_records=deleted.log_records,
                               duration_ms=round((time.perf_counter() - started) * 1e3, 1))
        return OrjsonResponse({"traces": deleted.traces, "spans": deleted.spans, "log_records": deleted.log_records})
