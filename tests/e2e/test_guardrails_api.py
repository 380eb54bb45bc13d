"""Guardrails end to end: every style through a real server, into the trace list, the trajectory, the
SQL view and /stats/guardrails — expected figures counted by hand."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from tests.otlp_builders import kvs, make_span

DAY1 = int(dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC).timestamp()) * 10**9
DAY2 = DAY1 + 86_400 * 10**9
MS = 10**6


def _run(agent: str, start: int, guards: list) -> list:
    root = make_span(f"invoke_agent {agent}", start=start, end=start + 100 * MS,
                     attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent})
    spans = [root]
    for i, (attrs, events) in enumerate(guards):
        span = make_span(f"guard-{i}", trace_id=root.trace_id, parent=root, start=start + (i + 1) * MS,
                         end=start + (i + 2) * MS, attrs=attrs)
        for ev in events:
            e = span.events.add()
            e.name, e.time_unix_nano = "guardrail", start + (i + 1) * MS
            e.attributes.extend(kvs(ev))
        spans.append(span)
    return spans


@pytest.fixture(scope="module")
def fed(server):
    runs = {
        # planner, day 1: pii blocks (hit), toxicity allows (no hit), a rail stops the flow (hit)
        "p1": _run("planner", DAY1, [
            ({"guardrail.name": "pii", "guardrail.action": "block"}, []),
            ({}, [{"guardrail.name": "toxicity", "guardrail.triggered": False, "guardrail.action": "allow"}]),
            ({"rail.name": "jailbreak", "rail.stop": True}, []),
        ]),
        # planner, day 2: pii redacts (hit); a bare OpenInference GUARDRAIL span (outcome unknown)
        "p2": _run("planner", DAY2, [
            ({"guardrail.name": "pii", "guardrail.action": "redact"}, []),
            ({"openinference.span.kind": "GUARDRAIL"}, []),
        ]),
        # support, day 2: guard.* style passed (no hit); two events on one span: toxicity hit + pii no hit
        "s1": _run("support", DAY2, [
            ({"guard.name": "toxicity", "guard.passed": True}, []),
            ({}, [{"guardrail.name": "toxicity", "guardrail.triggered": True, "guardrail.action": "warn"},
                  {"guardrail.name": "pii", "guardrail.triggered": False}]),
        ]),
    }
    for spans in runs.values():
        assert server.export(spans).status_code == 200
    return server, {k: v[0].trace_id.hex() for k, v in runs.items()}


def test_trace_list_and_trajectory_count_hits(fed):
    server, ids = fed
    page = httpx.get(f"{server.api}/api/v1/traces", params={"limit": 100}).json()["traces"]
    listed = {t["trace_id"]: t for t in page}
    assert {k: listed[v]["guardrail_hits"] for k, v in ids.items()} == {"p1": 2, "p2": 1, "s1": 1}
    trajectory = httpx.get(f"{server.api}/api/v1/traces/{ids['s1']}/trajectory").json()
    assert trajectory["totals"]["guardrail_hits"] == 1
    steps = {s["name"]: s for s in trajectory["steps"]}
    assert steps["guard-1"]["guardrail"] == {"name": "toxicity", "triggered": True, "action": "warn"}


def _groups(server, group_by):
    body = httpx.get(f"{server.api}/api/v1/stats/guardrails", params={"group_by": group_by}).json()
    return {g["key"]: (g["checks"], g["hits"], g["blocks"], g["outcome_unknown"]) for g in body["groups"]}


def test_stats_by_name_action_agent_day(fed):
    server, _ = fed
    # (checks, hits, blocks, outcome unknown)
    assert _groups(server, "name") == {"pii": (3, 2, 1, 0), "toxicity": (3, 1, 0, 0), "jailbreak": (1, 1, 1, 0),
                                       "guard-1": (1, 0, 0, 1)}
    assert _groups(server, "action") == {"block": (2, 2, 2, 0), "redact": (1, 1, 0, 0), "allow": (1, 0, 0, 0),
                                         "warn": (1, 1, 0, 0), "(none)": (3, 0, 0, 1)}
    assert _groups(server, "agent") == {"planner": (5, 3, 2, 1), "support": (3, 1, 0, 0)}
    assert _groups(server, "day") == {"2026-11-20": (3, 2, 2, 0), "2026-11-21": (5, 2, 0, 1)}
    rate = {g["key"]: g["hit_rate"] for g in httpx.get(f"{server.api}/api/v1/stats/guardrails").json()["groups"]}
    assert rate["pii"] == pytest.approx(2 / 3, abs=1e-4) and rate["guard-1"] is None


def test_sql_view_has_one_row_per_check(fed):
    server, _ = fed
    rows = httpx.post(f"{server.api}/api/v1/sql", json={
        "sql": "SELECT source, count(*) AS n FROM guardrail_events GROUP BY source ORDER BY source"}).json()["rows"]
    assert rows == [{"source": "event", "n": 3}, {"source": "span", "n": 5}]
