"""``GET /metrics``: the server's self-metrics in the Prometheus text format (the API key applies when set;
no wait for pending loads: a scrape must answer while ingest is behind)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import Response

from trajscope.metrics import Exposition
from trajscope.query.state import AppState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def add_metrics_route(app: FastAPI, state: AppState, dependencies: list) -> None:
    @app.get("/metrics", include_in_schema=False, dependencies=dependencies)
    def metrics() -> Response:
        out = Exposition()
        state.metrics(out)
        for route, histogram in state.route_latency.items():
            out.histogram("trajscope_api_request_seconds", histogram, "API request latency by route", route=route)
        return Response(out.text(), media_type=CONTENT_TYPE)
