"""Retrieval quality across runs: per index, retriever, agent or day — how often retrieval runs, how long it
takes and how much of the runs' critical path it holds, how many documents come back, how often none, how
strong the top one is, and how often a reranker changes it; and the documents retrieved most often, with how
often they were part of a run that ended in an error or a failing evaluation.

Reads the ``retrievals`` and ``retrieved_documents`` views (``storage.views``), the runs' precomputed critical
breakdowns and the ``evaluations`` view.
"""

from __future__ import annotations

from typing import Any

from trajscope.analysis.units import ns_to_ms
from trajscope.query.filters import RunFilter
from trajscope.storage.interface import SpanStore

# group → key over a ``retrievals`` row r
RETRIEVAL_GROUPS: dict[str, str] = {
    "index": "r.index_name",
    "retriever": "r.name",
    "agent": "r.agent_name",
    "day": "strftime(make_timestamp(r.start_time_unix_nano // 1000), '%Y-%m-%d')",
}
# An evaluation fails with one of these labels (lower-cased), or a score below ``fail_below``.
# Documents most often in bad runs first, then by the share of their runs that were bad.
_BAD_FIRST = "bad_runs DESC, bad_runs / count(DISTINCT docs.trace_id) DESC, retrieved DESC"
FAILING_LABELS = ("fail", "failed", "failure", "incorrect", "false", "bad", "hallucinated", "unfaithful")


def retrieval_stats(store: SpanStore, group_by: str, flt: RunFilter, *, limit: int = 20,
                    fail_below: float = 0.5) -> dict[str, Any]:
    runs = flt.traces("t")
    key = RETRIEVAL_GROUPS[group_by]
    groups = store.query(f"""
        WITH runs AS (SELECT t.project, t.trace_id FROM traces t WHERE {runs.sql()}),
        steps AS (SELECT r.* FROM retrievals r SEMI JOIN runs USING (project, trace_id))
        SELECT {key} AS key, count(*) AS calls,
               quantile_cont(r.duration_ms, 0.5) AS p50_ms, quantile_cont(r.duration_ms, 0.95) AS p95_ms,
               avg(r.documents) AS mean_documents,
               avg(CAST(r.empty AS DOUBLE)) AS empty_rate,
               avg(r.top_score) AS top_score_mean, quantile_cont(r.top_score, 0.1) AS top_score_p10,
               count(*) FILTER (WHERE r.category = 'reranker') AS reranks,
               avg(CAST(r.top_changed AS DOUBLE)) AS rerank_top_changed_rate,
               count(DISTINCT r.trace_id) AS traces
        FROM steps r GROUP BY ALL
        ORDER BY {"key DESC" if group_by == "day" else "calls DESC, key NULLS LAST"}""", runs.params).to_pylist()
    critical = _critical_shares(store, group_by, runs)
    for g in groups:
        share = critical.get(g["key"])
        g["critical_ms"] = ns_to_ms(share[0]) if share else 0.0
        g["critical_share"] = round(share[0] / share[1], 6) if share and share[1] else 0.0
        for name in ("p50_ms", "p95_ms", "mean_documents", "empty_rate", "top_score_mean", "top_score_p10",
                     "rerank_top_changed_rate"):
            if g[name] is not None:
                g[name] = round(g[name], 6)
    return {"group_by": group_by, "groups": groups,
            "top_documents": _top_documents(store, runs, limit, fail_below, "retrieved DESC, bad_runs DESC"),
            "bad_run_documents": _top_documents(store, runs, limit, fail_below, _BAD_FIRST, bad_only=True)}


def _critical_shares(store: SpanStore, group_by: str, runs: Any) -> dict[Any, tuple[float, float]]:
    """Per group: the critical-path time retrieval steps held in the filtered runs, and all critical time of
    those runs. The runs' breakdowns name each step's span, agent and run; an index is found through the
    step's span name in its run (split evenly where one name searched several indexes in one run)."""
    key = {"index": "m.index_name", "retriever": "b.span_name", "agent": "b.agent_name",
           "day": "strftime(make_timestamp(b.run_start // 1000), '%Y-%m-%d')"}[group_by]
    join = ("JOIN (SELECT trace_id, name, index_name, count(*) OVER (PARTITION BY trace_id, name) AS ways "
            "FROM (SELECT DISTINCT trace_id, name, index_name FROM retrievals)) m "
            "ON m.trace_id = b.trace_id AND m.name = b.span_name") if group_by == "index" else ""
    weight = "1.0 / m.ways" if group_by == "index" else "1.0"
    rows = store.query(f"""
        WITH rows AS (
            SELECT trace_id, run_start, unnest(critical_breakdown) AS b
            FROM (SELECT t.trace_id, t.start_time_unix_nano AS run_start, t.critical_breakdown FROM traces t
                  WHERE {runs.sql()})),
        flat AS (SELECT trace_id, run_start, b.category, b.span_name, b.agent_name,
                        CAST(b.critical_ns AS DOUBLE) AS critical_ns FROM rows),
        total AS (SELECT sum(critical_ns) AS t FROM flat)
        SELECT {key} AS key, sum(b.critical_ns * {weight}) AS critical_ns, any_value(total.t) AS total_ns
        FROM flat b {join}, total
        WHERE b.category IN ('retriever', 'reranker')
        GROUP BY ALL""", runs.params).to_pylist()
    return {r["key"]: (r["critical_ns"] or 0.0, r["total_ns"] or 0.0) for r in rows}


def _top_documents(store: SpanStore, runs: Any, limit: int, fail_below: float, order: str,
                   bad_only: bool = False) -> list[dict[str, Any]]:
    """Documents retrievers returned (by id, else by their preview) in ``order``, and of the runs they were
    part of, how many ended in an error or had a failing evaluation; ``bad_only``: those in any bad run."""
    labels = ", ".join(f"'{label}'" for label in FAILING_LABELS)
    rows = store.query(f"""
        WITH runs AS (SELECT t.project, t.trace_id, t.error_count FROM traces t WHERE {runs.sql()}),
        failing AS (SELECT DISTINCT project, trace_id FROM evaluations
                    WHERE lower(score_label) IN ({labels}) OR score_value < ?),
        docs AS (SELECT d.project, d.trace_id, coalesce(d.document_id, d.preview) AS document, d.document_id,
                        d.preview, d.index_name, d.rank, d.score
                 FROM retrieved_documents d SEMI JOIN runs USING (project, trace_id)
                 WHERE d.category = 'retriever' AND coalesce(d.document_id, d.preview) IS NOT NULL)
        SELECT docs.document, any_value(docs.document_id) AS document_id, any_value(docs.preview) AS preview,
               any_value(docs.index_name) AS index_name, count(*) AS retrieved,
               count(DISTINCT docs.trace_id) AS runs, avg(docs.rank) AS mean_rank, avg(docs.score) AS mean_score,
               count(DISTINCT docs.trace_id) FILTER (WHERE runs.error_count > 0) AS runs_with_error,
               count(DISTINCT docs.trace_id) FILTER (WHERE failing.trace_id IS NOT NULL) AS runs_failing_evaluation,
               count(DISTINCT docs.trace_id) FILTER (WHERE runs.error_count > 0 OR failing.trace_id IS NOT NULL)
                   AS bad_runs
        FROM docs JOIN runs USING (project, trace_id)
        LEFT JOIN failing USING (project, trace_id)
        GROUP BY docs.document
        {"HAVING bad_runs > 0" if bad_only else ""}
        ORDER BY {order}, docs.document
        LIMIT ?""", [*runs.params, fail_below, limit]).to_pylist()
    for r in rows:
        r["bad_run_rate"] = round(r["bad_runs"] / r["runs"], 6) if r["runs"] else None
        r["mean_rank"] = round(r["mean_rank"], 6)
        if r["mean_score"] is not None:
            r["mean_score"] = round(r["mean_score"], 6)
        del r["document"]
    return rows
