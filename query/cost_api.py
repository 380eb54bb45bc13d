"""Cost routes: the effective price table, the models nobody priced, and re-pricing history."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from trajscope.collector import costing
from trajscope.query.filters import RunFilter, run_filter
from trajscope.query.params import time_param
from trajscope.query.serialise import OrjsonResponse
from trajscope.storage.repricing import reprice


class RepriceRequest(BaseModel):
    since: str | None = Field(None, description="only spans that started at or after: Unix ns, RFC 3339 or an age")
    until: str | None = Field(None, description="only spans that started before")


def unpriced_models(store, flt: RunFilter) -> list[dict[str, Any]]:
    where = flt.traces("s")  # spans carry the same project/service/agent/start columns as traces
    sql = f"""
        SELECT coalesce(s.response_model, s.request_model, '(no model name)') AS model,
               any_value(s.provider) AS provider,
               count(*) AS spans, sum(s.input_tokens) AS input_tokens, sum(s.output_tokens) AS output_tokens,
               min(s.start_time_unix_nano) AS first_seen_unix_nano, max(s.start_time_unix_nano) AS last_seen_unix_nano
        FROM spans s WHERE s.cost_source = 'unpriced' AND {where.sql()}
        GROUP BY 1 ORDER BY spans DESC, model"""
    rows = store.query(sql, where.params).to_pylist()
    for row in rows:
        row["input_tokens"] = int(row["input_tokens"] or 0)
        row["output_tokens"] = int(row["output_tokens"] or 0)
    return rows


def add_cost_routes(app: FastAPI, state, dependencies: list) -> None:
    @app.get("/api/v1/prices", tags=["cost"], dependencies=dependencies)
    def prices() -> Any:
        """The effective price table: the built-in one plus the server's `--prices` file."""
        table = costing.prices()
        entries = sorted((p.as_dict() for p in table.entries()), key=lambda p: (p["provider"], p["name"],
                                                                                  p["effective_from"]))
        return OrjsonResponse({"extra_file": costing.extra_file(), "unit": "USD per million tokens",
                               "prices": entries})

    @app.get("/api/v1/stats/unpriced_models", tags=["cost", "stats"], dependencies=dependencies)
    def stats_unpriced(flt: Annotated[RunFilter, Depends(run_filter)]) -> Any:
        """Models seen with tokens but no price (their spans' `cost_usd` is null, never 0): add them with
        `--prices FILE`, restart, and run `trajscope reprice`."""
        return OrjsonResponse({"models": unpriced_models(state.store, flt)})

    @app.post("/api/v1/reprice", tags=["cost"], dependencies=dependencies)
    def reprice_route(request: RepriceRequest, http: Request) -> StreamingResponse:
        """Recompute the computed costs of stored spans with the server's current price table (reported
        costs stay), honouring `effective_from`. Streams NDJSON: `{"done", "total"}` progress lines, then
        `{"result": {...}}` (or `{"error": ...}`)."""
        now = time.time_ns()
        since = time_param("since", request.since, now)
        until = time_param("until", request.until, now)
        lines: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

        def work() -> None:
            try:
                result = reprice(state.store, costing.prices(), since_unix_nano=since, until_unix_nano=until,
                                 progress=lambda done, total: lines.put(
                                     orjson.dumps({"done": done, "total": total}) + b"\n"))
                lines.put(orjson.dumps({"result": result.__dict__}) + b"\n")
                if state.audit is not None:
                    state.audit.record(http.state.grant.name, "reprice", since=request.since,
                                       until=request.until, **result.__dict__)
            except Exception as exc:  # reported in the stream: the status line has already been sent
                lines.put(orjson.dumps({"error": {"code": "internal", "message": str(exc)}}) + b"\n")
            finally:
                lines.put(None)

        threading.Thread(target=work, name="trajscope-reprice", daemon=True).start()

        def stream() -> Iterator[bytes]:
            while (line := lines.get()) is not None:
                yield line

        return StreamingResponse(stream(), media_type="application/x-ndjson")
