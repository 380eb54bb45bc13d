"""Re-cost stored spans after the price table changed (``trajscope reprice``, ``POST /api/v1/reprice``).

Only costs trajscope computed are touched: a reported cost is the provider's word and stays. Each span is
priced at the price in force when it started (``effective_from``), and the summaries of the traces whose
cost changed are recomputed, chunk by chunk, so ingestion keeps going in between.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from trajscope.analysis.pricing import PriceTable, span_cost
from trajscope.storage.duckdb_store import DuckDBStore

CHUNK_SPANS = 20_000
_UPDATE_SCHEMA = pa.schema([("trace_id", pa.string()), ("span_id", pa.string()), ("cost_usd", pa.float64()),
                            ("cost_source", pa.string())])


@dataclass(frozen=True)
class RepriceResult:
    spans_examined: int
    spans_changed: int
    traces_refreshed: int


def _same(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12))


def reprice(store: DuckDBStore, prices: PriceTable, *, since_unix_nano: int | None = None,
            until_unix_nano: int | None = None,
            progress: Callable[[int, int], None] | None = None) -> RepriceResult:
    sql = ("SELECT trace_id, span_id, coalesce(response_model, request_model) AS model, start_time_unix_nano, "
           "input_tokens, output_tokens, cached_input_tokens, cache_creation_input_tokens, cost_usd, cost_source "
           "FROM spans WHERE cost_source IS DISTINCT FROM 'reported' "
           "AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)")
    params: list[object] = []
    if since_unix_nano is not None:
        sql += " AND start_time_unix_nano >= ?"
        params.append(since_unix_nano)
    if until_unix_nano is not None:
        sql += " AND start_time_unix_nano < ?"
        params.append(until_unix_nano)
    rows = store.query(sql + " ORDER BY trace_id", params).to_pylist()
    changed: list[tuple] = []
    for r in rows:
        cost, source = span_cost(prices, None, r["model"], r["start_time_unix_nano"], r["input_tokens"],
                                 r["output_tokens"], r["cached_input_tokens"], r["cache_creation_input_tokens"])
        if source != r["cost_source"] or not _same(cost, r["cost_usd"]):
            changed.append((r["trace_id"], r["span_id"], cost, source))
    refreshed = 0
    total = len(changed)
    if progress:
        progress(0, total)
    start = 0
    while start < total:
        # Never split a trace across chunks: each chunk refreshes whole traces once.
        end = min(start + CHUNK_SPANS, total)
        while end < total and changed[end][0] == changed[end - 1][0]:
            end += 1
        chunk = changed[start:end]
        refreshed += store.update_costs(pa.Table.from_pylist(
            [dict(zip(_UPDATE_SCHEMA.names, c, strict=True)) for c in chunk], schema=_UPDATE_SCHEMA))
        start = end
        if progress:
            progress(start, total)
    if total:
        # Reported done only once in the file: trajscope never replays DuckDB's WAL (storage.clean_start). A
        # repricing cut short by a crash keeps the chunks checkpointed before it (each chunk changes spans
        # and their summaries together) and is completed by running it again.
        store.checkpoint()
    return RepriceResult(len(rows), total, refreshed)
