"""Routes of sessions (conversations): the session list and one session's runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query

from trajscope.query.errors import ApiError, ErrorCode
from trajscope.query.filters import RunFilter, run_filter
from trajscope.query.params import Cursor, decode_session_cursor, encode_session_cursor
from trajscope.query.serialise import OrjsonResponse
from trajscope.query.sessions import get_session, list_sessions
from trajscope.query.state import AppState
from trajscope.query.traces_api import MAX_PAGE


def add_session_routes(app: FastAPI, state: AppState, guarded: list) -> None:
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
