"""``POST /api/v1/delete``: erasure requests — a trace, or every trace of a session or a user — with an audit line."""

from __future__ import annotations

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field

from trajscope.query.errors import ApiError, ErrorCode
from trajscope.query.project_scope import ProjectRefused, scoped_project
from trajscope.query.serialise import OrjsonResponse
from trajscope.retention import erase


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
        grant = http.state.grant
        try:
            project = scoped_project(grant, [request.project] if request.project is not None else [])
        except ProjectRefused as exc:
            raise ApiError(exc.code, exc.message) from None
        deleted = erase(state.store, state.audit, grant.name, project, **named)
        return OrjsonResponse({"traces": deleted.traces, "spans": deleted.spans, "log_records": deleted.log_records})
