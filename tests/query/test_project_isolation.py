"""Every route of the API, walked from its OpenAPI document, called with a read key for project alpha against
a store holding alpha's and beta's runs: nothing of beta comes back — ids, names, agents, sessions, models,
documents, counts, costs — whichever ids the request names."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from tests.otlp_builders import make_span
from tests.storage.conftest import table_of
from trajscope.collector.auth import Access
from trajscope.collector.keyring import Keyring, new_key, write_keys
from trajscope.query.alerting import AlertConfig, AlertMonitor, Rule
from trajscope.query.api import AppState, create_app
from trajscope.storage.duckdb_store import DuckDBStore

BETA_COST = 777.77


def _run(project: str, cost: float):
    root = make_span(f"invoke_agent {project}-agent", attrs={"gen_ai.agent.name": f"{project}-agent",
                                                             "session.id": f"{project}-session",
                                                             "user.id": f"{project}-user"})
    llm = make_span(f"chat {project}-model", trace_id=root.trace_id, parent=root, attrs={
        "gen_ai.request.model": f"{project}-model", "gen_ai.usage.cost": cost, "gen_ai.usage.input_tokens": 1234,
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text",
                                                                          "content": f"{project} secret prompt"}]}])})
    retrieve = make_span(f"retrieval {project}-index", trace_id=root.trace_id, parent=root, attrs={
        "gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": f"{project}-index",
        "gen_ai.retrieval.documents": json.dumps([{"id": f"{project}-doc", "score": 0.9}])})
    guard = make_span(f"{project}-guard", trace_id=root.trace_id, parent=root,
                      attrs={"guardrail.name": f"{project}-guard", "guardrail.action": "block"})
    return [root, llm, retrieve, guard]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    store = DuckDBStore(":memory:")
    alpha, beta = _run("alpha", 0.25), _run("beta", BETA_COST)
    for project, spans in (("alpha", alpha), ("beta", beta)):
        store.write(table_of(spans, resource={"service.name": f"{project}-svc", "trajscope.project": project}))
    keys_file = tmp_path_factory.mktemp("keys") / "keys.toml"
    reader, secret = new_key("alpha-read", ["read"], ["alpha"])
    everything, all_secret = new_key("all-read", ["read"], ["*"])
    write_keys(keys_file, [reader, everything])
    state = AppState(store)
    state.access = Access(None, Keyring(keys_file))
    state.ready = True
    # Alert rules of each project and one over all of them (evaluated, not started).
    rules = tuple(Rule(f"{p or 'all'}-spend", "cost_budget", 1.0, 3600.0, project=p) for p in ("alpha", "beta", None))
    state.alerts = AlertMonitor(store, AlertConfig(rules))
    state.alerts.evaluate_all()
    markers = {"beta-spend", "all-spend",
               beta[0].trace_id.hex(), *(s.span_id.hex() for s in beta), "beta-agent", "beta-session", "beta-user",
               "beta-model", "beta-index", "beta-doc", "beta-guard", "beta-svc", "beta secret prompt", "777.77",
               '"beta"'}
    ids = {"trace_id": beta[0].trace_id.hex(), "span_id": beta[2].span_id.hex(), "session_id": "beta-session"}
    own = {"trace_id": alpha[0].trace_id.hex(), "span_id": alpha[2].span_id.hex(), "session_id": "alpha-session"}
    api = TestClient(create_app(state))
    # The markers are there to be found: a key for every project sees beta's run, its cost and its documents.
    everyone = {"Authorization": f"Bearer {all_secret}"}
    for url in ("/api/v1/traces", f"/api/v1/traces/{ids['trace_id']}/trajectory", "/api/v1/stats/usage?group_by=agent",
                "/api/v1/alerts"):
        assert _leaks(api.get(url, headers=everyone).text, markers), url
    yield api, {"Authorization": f"Bearer {secret}"}, markers, ids, own
    store.close()


def _leaks(text: str, markers: set[str], asked: str = "") -> list[str]:
    """Beta's markers in an answer, but for what the request itself named (an error may echo an id asked for)."""
    return [m for m in markers if m in text and m not in asked]


def test_every_route_answers_a_key_for_alpha_with_nothing_of_beta(world):
    api, auth, markers, beta_ids, alpha_ids = world
    spec = api.get("/openapi.json").json()
    called = 0
    for path, operations in spec["paths"].items():
        for method in operations:
            for ids in (beta_ids, alpha_ids):
                url = re.sub(r"\{(\w+)\}", lambda m, ids=ids: ids[m.group(1)], path)
                if method == "get":
                    answer = api.get(url, headers=auth)
                elif path == "/api/v1/sql":
                    answer = api.post(url, headers=auth, json={"sql": "SELECT * FROM spans"})
                else:
                    answer = api.post(url, headers=auth, json={})
                called += 1
                assert answer.status_code in (200, 400, 403, 404), (method, url, answer.status_code, answer.text)
                assert not _leaks(answer.text, markers, url), (method, url, _leaks(answer.text, markers, url))
                for name in ("project", "group_by"):
                    assert name not in ids
            # Asking for beta by name is refused, not answered.
            if method == "get" and "project" in {p["name"] for p in operations[method].get("parameters", [])}:
                url = re.sub(r"\{(\w+)\}", lambda m: alpha_ids[m.group(1)], path)
                assert api.get(url, headers=auth, params={"project": "beta"}).status_code == 403
    assert called >= 2 * len(spec["paths"])


def test_stats_groups_cover_every_grouping_without_beta(world):
    api, auth, markers, _, _ = world
    spec = api.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for param in operations.get("get", {}).get("parameters", []):
            if param["name"] != "group_by":
                continue
            pattern = param["schema"].get("pattern", "")
            for group in re.findall(r"\w+", pattern):
                answer = api.get(path, headers=auth, params={"group_by": group})
                assert answer.status_code == 200, (path, group, answer.text)
                assert not _leaks(answer.text, markers), (path, group)


@pytest.mark.parametrize("sql", [
    "SELECT * FROM spans", "SELECT * FROM traces", "SELECT * FROM llm_calls", "SELECT * FROM retrieved_documents",
    "SELECT * FROM guardrail_events", "SELECT * FROM sessions", "SELECT * FROM retrievals",
    "SELECT sum(cost_usd) AS c, count(*) AS n FROM spans",
])
def test_sql_over_every_view_sees_alpha_only(world, sql):
    api, auth, markers, _, _ = world
    answer = api.post("/api/v1/sql", headers=auth, json={"sql": sql})
    assert answer.status_code == 200, answer.text
    assert not _leaks(answer.text, markers)


def test_alert_rules_of_the_keys_projects_only(world):
    api, auth, _, _, _ = world
    assert [a["name"] for a in api.get("/api/v1/alerts", headers=auth).json()["alerts"]] == ["alpha-spend"]
