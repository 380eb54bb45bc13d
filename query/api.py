"""The query API (FastAPI; OpenAPI at ``/docs``): the app, its two dependencies (the API key, and fresh
reads), and the routes of each resource, one module each."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trajscope.collector.auth import UNAUTHENTICATED
from trajscope.query.cost_api import add_cost_routes
from trajscope.query.delete_api import add_delete_routes
from trajscope.query.errors import ApiError, ErrorCode, install_error_handlers
from trajscope.query.metrics_api import add_metrics_route
from trajscope.query.observability import RequestObservation
from trajscope.query.openapi import install_openapi
from trajscope.query.project_scope import ProjectScope
from trajscope.query.serialise import OrjsonResponse
from trajscope.query.server_api import add_server_routes
from trajscope.query.sessions_api import add_session_routes
from trajscope.query.sql_api import add_sql_routes
from trajscope.query.state import AppState
from trajscope.query.stats_api import add_stats_routes
from trajscope.query.traces_api import add_trace_routes

__all__ = ["AppState", "create_app"]


def create_app(state: AppState) -> FastAPI:
    app = FastAPI(
        title="trajscope",
        version="0.1.0",
        description="Traces of AI agents, normalised into agent terms. Ids are lowercase hex; times are "
                    "`*_unix_nano` integers plus `duration_ms`.",
        default_response_class=OrjsonResponse,
    )
    install_error_handlers(app)

    # Both dependencies run on the event loop: a plain `def` dependency is a hop to a worker thread and back
    # on every request (docs/performance.md).
    async def authorised(request: Request) -> None:
        grant = request.state.grant  # the key checked once per request, by ProjectScope
        if grant == UNAUTHENTICATED:
            raise ApiError(ErrorCode.UNAUTHORIZED, grant)
        if isinstance(grant, str):
            raise ApiError(ErrorCode.PERMISSION_DENIED, grant)

    async def fresh(request: Request) -> None:
        # Only waiting for a load leaves the event loop.
        if not state.caught_up() and not await run_in_threadpool(state.sync, state.read_wait_s):
            request.state.behind = state.unloaded()

    guarded = [Depends(authorised), Depends(fresh)]
    # Routes return response objects (OrjsonResponse, or ready bytes): a plain dict would first be walked
    # by FastAPI's jsonable_encoder before being serialised.
    for add_routes in (add_server_routes, add_trace_routes, add_session_routes, add_stats_routes, add_sql_routes,
                       add_cost_routes, add_delete_routes):
        add_routes(app, state, guarded)
    add_metrics_route(app, state, [Depends(authorised)])
    install_openapi(app)
    app.add_middleware(ProjectScope, access=state.access)
    app.add_middleware(BehindHeader)
    app.add_middleware(RequestObservation, latency=state.route_latency)
    return app


class BehindHeader:
    """Adds ``X-Trajscope-Behind: N`` to an answer given before N acknowledged spans were queryable (ingest
    under overload: the read stopped waiting after ``AppState.read_wait_s``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                behind = scope.get("state", {}).get("behind")
                if behind is not None:
                    message.setdefault("headers", [])
                    message["headers"] = [*message["headers"], (b"x-trajscope-behind", str(behind).encode())]
            await send(message)

        await self.app(scope, receive, send_with_header)
