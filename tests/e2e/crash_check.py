"""What a stopped server's data directory must hold after any sequence of crashes."""

from __future__ import annotations

from pathlib import Path

import duckdb

from tests.summaries import canonical_summaries
from trajscope.storage.batch_summary import summarise_table
from trajscope.storage.duckdb_store import DB_FILE
from trajscope.storage.trace_summary import FACT_COLUMNS


def check_store(data: Path, acked: set[tuple[str, str]]) -> list[str]:
    """Problems found (empty when none): acknowledged spans missing, spans stored twice, summaries that differ
    from a from-scratch recomputation over the stored spans, traces without a summary or summaries without
    spans."""
    con = duckdb.connect(str(data / DB_FILE), read_only=True)
    try:
        stored = con.execute("SELECT trace_id, span_id FROM spans").fetchall()
        spans = con.execute(f"SELECT {', '.join(FACT_COLUMNS)} FROM spans").to_arrow_table()
        summaries = con.execute("SELECT * FROM traces").to_arrow_table()
    finally:
        con.close()
    problems = []
    unique = set(stored)
    if len(unique) != len(stored):
        problems.append(f"{len(stored) - len(unique)} span(s) stored more than once")
    missing = acked - unique
    if missing:
        problems.append(f"{len(missing)} acknowledged span(s) missing, e.g. {sorted(missing)[:3]}")
    expected = canonical_summaries(summarise_table(spans, 0))
    got = canonical_summaries(summaries.select(summarise_table(spans, 0).column_names))
    if len(got) != len(expected):
        problems.append(f"{len(got)} trace summaries for {len(expected)} stored traces")
    elif got != expected:
        wrong = [g["trace_id"] for g, e in zip(got, expected, strict=True) if g != e]
        problems.append(f"{len(wrong)} trace summaries differ from a recomputation, e.g. {wrong[:3]}")
    return problems
