"""Cross-run statistics: latency, usage, guardrails and retrieval per group; what no dialect mapped."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query

from trajscope.query.filters import RunFilter, run_filter
from trajscope.query.retrieval_stats import retrieval_stats
from trajscope.query.serialise import OrjsonResponse
from trajscope.query.state import AppState
from trajscope.query.stats import guardrail_stats, latency_stats, unmapped_stats, usage_stats


def add_stats_routes(app: FastAPI, state: AppState, guarded: list) -> None:
    @app.get("/api/v1/stats/latency", tags=["stats"], dependencies=guarded)
    def stats_latency(
        flt: Annotated[RunFilter, Depends(run_filter)],
        group_by: Annotated[str, Query(pattern="^(category|tool|model|agent|span_name)$")] = "category",
    ) -> Any:
        """Where the time of many runs goes: per group, count and duration percentiles, and the total
        critical-path time with its share of all critical time."""
        return OrjsonResponse(latency_stats(state.store, group_by, flt))

    @app.get("/api/v1/stats/usage", tags=["stats"], dependencies=guarded)
    def stats_usage(
        flt: Annotated[RunFilter, Depends(run_filter)],
        group_by: Annotated[str, Query(pattern="^(model|agent|user|session|day)$")] = "model",
    ) -> Any:
        """Model calls, tokens (each call counted once), cost and errors per group."""
        return OrjsonResponse(usage_stats(state.store, group_by, flt))

    @app.get("/api/v1/stats/guardrails", tags=["stats"], dependencies=guarded)
    def stats_guardrails(
        flt: Annotated[RunFilter, Depends(run_filter)],
        group_by: Annotated[str, Query(pattern="^(name|action|agent|day)$")] = "name",
    ) -> Any:
        """Guardrail checks per group: checks, hits, blocks, checks whose outcome was not reported, and
        the hit rate over checks with a known outcome."""
        return OrjsonResponse(guardrail_stats(state.store, group_by, flt))

    @app.get("/api/v1/stats/retrieval", tags=["stats"], dependencies=guarded)
    def stats_retrieval(
        flt: Annotated[RunFilter, Depends(run_filter)],
        group_by: Annotated[str, Query(pattern="^(index|retriever|agent|day)$")] = "index",
        limit: Annotated[int, Query(ge=1, le=1000, description="documents in `top_documents`")] = 20,
        fail_below: Annotated[float, Query(description="an evaluation score below this fails")] = 0.5,
    ) -> Any:
        """Retrieval quality per group: calls, p50/p95 latency, critical-path share, mean documents returned,
        empty-result rate, mean and p10 of the top document's score, and how often a reranker changed the top
        document; plus the documents retrieved most often (`top_documents`) and those most often in runs that
        ended in an error or a failing evaluation (`bad_run_documents`)."""
        return OrjsonResponse(retrieval_stats(state.store, group_by, flt, limit=limit, fail_below=fail_below))

    @app.get("/api/v1/stats/unmapped", tags=["stats"], dependencies=guarded)
    def stats_unmapped(
        flt: Annotated[RunFilter, Depends(run_filter)],
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> Any:
        """Spans no dialect mapped (category `other`): how many, per span name, and their attribute keys per
        prefix with example keys — what to add to the dialect tables (docs/dialects.md)."""
        return OrjsonResponse(unmapped_stats(state.store, flt, limit))
