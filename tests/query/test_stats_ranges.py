"""Aggregates never overflow: the widest spans a client can send (start 0, end 2^63 - 1) still give every
stats route an answer."""

from __future__ import annotations

import math

import pytest

from tests.otlp_builders import make_request, make_span
from trajscope.collector.otlp_decode import decode_request
from trajscope.query.filters import RunFilter
from trajscope.query.stats import LATENCY_GROUPS, USAGE_GROUPS, latency_stats, usage_stats
from trajscope.storage.duckdb_store import DuckDBStore

INT64_MAX = 2**63 - 1


@pytest.fixture(scope="module")
def widest_store():
    store = DuckDBStore(":memory:")
    spans = [make_span(f"root-{i}", start=0, end=INT64_MAX, attrs={"gen_ai.usage.input_tokens": 2**40})
             for i in range(3)]
    store.write(decode_request(make_request(spans).SerializeToString()).table)
    yield store
    store.close()


@pytest.mark.parametrize("group_by", sorted(LATENCY_GROUPS))
def test_latency_stats_of_the_widest_spans(widest_store, group_by):
    stats = latency_stats(widest_store, group_by, RunFilter())
    if group_by in ("category", "span_name"):  # groups that cover every span: the whole sum, past int64
        assert stats["total_critical_ms"] == pytest.approx(3 * INT64_MAX / 1e6)
        assert sum(g["critical_ms"] for g in stats["groups"]) == pytest.approx(stats["total_critical_ms"])
    for group in stats["groups"]:
        assert all(math.isfinite(v) for v in (group["critical_ms"], group["critical_share"]))


@pytest.mark.parametrize("group_by", USAGE_GROUPS)
def test_usage_stats_of_the_widest_spans(widest_store, group_by):
    stats = usage_stats(widest_store, group_by, RunFilter())
    assert stats["groups"]
