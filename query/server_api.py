"""The server's own routes: the web UI's files, health, and the state of the alert rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

import trajscope.ui
from trajscope.query.errors import ApiError, ErrorCode
from trajscope.query.serialise import OrjsonResponse
from trajscope.query.state import AppState

UI_DIR = Path(trajscope.ui.__file__).parent / "static"


def add_server_routes(app: FastAPI, state: AppState, guarded: list) -> None:
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

    @app.get("/api/v1/alerts", tags=["alerts"], dependencies=guarded)
    def alerts(request: Request) -> Any:
        """Each rule of the server's `--alerts` file with its state: pending, ok, firing (since when, the
        observed value and details) or error. A key limited to some projects sees the rules of those projects
        only (a rule without a project reads them all)."""
        monitor = state.alerts
        if monitor is None:
            return OrjsonResponse({"configured": False, "alerts": []})
        projects = request.state.grant.projects
        rules = [s for s in monitor.states() if projects is None or s["project"] in projects]
        return OrjsonResponse({"configured": True, "interval_s": monitor.config.interval_s,
                               "webhook": monitor.config.webhook is not None, "alerts": rules})
