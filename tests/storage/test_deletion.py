"""Whole traces deleted — by retention and by erasure requests — leave summaries, sessions and stats consistent."""

from __future__ import annotations

import os

from tests.otlp_builders import make_span
from tests.storage.conftest import table_of
from trajscope.retention import Retention, apply_retention, erasure_condition, parse_retention
from trajscope.storage.duckdb_store import DuckDBStore

DAY = 86_400 * 10**9
NOW = 1_800_000_000 * 10**9


def _run(store, project, age_days, session, user, spans=3):
    tid = os.urandom(16)
    end = NOW - age_days * DAY
    root = make_span("invoke_agent a", trace_id=tid, start=end - 10**9, end=end,
                     attrs={"session.id": session, "user.id": user, "gen_ai.agent.name": "a"})
    kids = [make_span(f"chat {i}", trace_id=tid, parent=root, start=end - 10**9, end=end - 1,
                      attrs={"gen_ai.request.model": "m", "gen_ai.usage.cost": 1.0, "gen_ai.usage.input_tokens": 1})
            for i in range(spans - 1)]
    store.write(table_of([root, *kids], resource={"service.name": "s", "trajscope.project": project}))
    return tid.hex()


def _state(store):
    cur = store.cursor()
    return {"traces": cur.execute("SELECT count(*) FROM traces").fetchone()[0],
            "spans": cur.execute("SELECT count(*) FROM spans").fetchone()[0],
            "orphans": cur.execute("SELECT count(*) FROM spans s ANTI JOIN traces t USING (project, trace_id)")
            .fetchone()[0],
            "sessions": sorted(r[0] for r in cur.execute("SELECT session_id FROM sessions").fetchall()),
            "cost": cur.execute("SELECT sum(cost_usd) FROM traces").fetchone()[0]}


def test_retention_deletes_whole_traces_past_each_projects_age():
    store = DuckDBStore(":memory:")
    _run(store, "shop", 40, "s-old", "u1")
    _run(store, "shop", 10, "s-new", "u1")
    _run(store, "lab", 10, "l-mid", "u2")
    _run(store, "lab", 2, "l-new", "u2")
    retention = parse_retention(["30d", "lab=7d"])
    assert retention == Retention(30 * DAY, {"lab": 7 * DAY})
    deleted = apply_retention(store, retention, now_ns=NOW)
    assert (deleted.traces, deleted.spans) == (2, 6)
    assert _state(store) == {"traces": 2, "spans": 6, "orphans": 0, "sessions": ["l-new", "s-new"], "cost": 4.0}
    assert apply_retention(store, retention, now_ns=NOW).traces == 0


def test_erasure_by_trace_session_or_user_and_project():
    store = DuckDBStore(":memory:")
    a = _run(store, "shop", 1, "s1", "alice")
    _run(store, "shop", 1, "s2", "alice")
    _run(store, "lab", 1, "s3", "alice")
    _run(store, "shop", 1, "s4", "bob")
    assert store.delete_traces(erasure_condition(trace_id=a)).traces == 1
    assert store.delete_traces(erasure_condition(user_id="alice", project="shop")).traces == 1
    assert _state(store)["sessions"] == ["s3", "s4"]
    assert store.delete_traces(erasure_condition(session_id="s3")).spans == 3
    state = _state(store)
    assert (state["traces"], state["orphans"], state["sessions"]) == (1, 0, ["s4"])
    # A late span of a deleted trace starts it again, as a new trace (no summary left behind to clash with).
    store.write(table_of([make_span("late", trace_id=bytes.fromhex(a))]))
    assert _state(store)["traces"] == 2


def test_a_user_on_any_span_names_the_trace():
    store = DuckDBStore(":memory:")
    tid = os.urandom(16)
    root = make_span("root", trace_id=tid)
    child = make_span("child", trace_id=tid, parent=root, attrs={"user.id": "carol"})
    store.write(table_of([root, child]))
    assert store.delete_traces(erasure_condition(user_id="carol")).spans == 2


def test_delete_on_a_stopped_servers_directory_writes_its_audit_line(tmp_path, capsys):
    from trajscope.audit import AUDIT_FILE, AuditLog
    from trajscope.delete_cli import _directory

    store = DuckDBStore(tmp_path / "d")
    _run(store, "shop", 1, "s1", "dave")
    store.checkpoint()
    store.close()
    assert _directory(tmp_path / "d", {"user_id": "dave"}, None) == 0
    assert "deleted 1 traces (3 spans" in capsys.readouterr().out
    (line,) = AuditLog(tmp_path / "d" / AUDIT_FILE).read()
    assert (line["actor"], line["action"], line["user_id"], line["traces"]) == ("cli", "delete", "dave", 1)
    reopened = DuckDBStore(tmp_path / "d")
    assert _state(reopened)["traces"] == 0
    reopened.close()
