"""Every parameter is checked by the shared types in ``query.params``: a value out of range or in a form the
API does not take is a 400 with a message naming it, never a 500."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from trajscope.query.api import AppState, create_app
from trajscope.query.params import INT64_MAX, time_param
from trajscope.storage.duckdb_store import DuckDBStore

_TIMED_ROUTES = ("/api/v1/traces", "/api/v1/sessions", "/api/v1/stats/latency", "/api/v1/stats/usage",
                 "/api/v1/stats/guardrails", "/api/v1/stats/unpriced_models")


@pytest.fixture(scope="module")
def api():
    store = DuckDBStore(":memory:")
    state = AppState(store)
    state.ready = True
    yield TestClient(create_app(state))
    store.close()


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(("params", "named"), [
    ({"min_duration_ms": "1e303"}, "min_duration_ms"),
    ({"min_duration_ms": "inf"}, "min_duration_ms"),
    ({"min_duration_ms": "nan"}, "min_duration_ms"),
    ({"min_cost_usd": "-1"}, "min_cost_usd"),
    ({"min_cost_usd": "1e400"}, "min_cost_usd"),
    ({"since": "³"}, "since"),
    ({"since": "١٢٣"}, "since"),
    ({"since": "9" * 39}, "since"),
    ({"until": "9" * 39}, "until"),
    ({"since": "99999999999999d"}, "since"),
    ({"until": "9999-12-31T00:00:00Z"}, "until"),
    ({"cursor": _cursor("9" * 39 + ":" + "a" * 32)}, "cursor"),
    ({"cursor": _cursor("³:" + "a" * 32)}, "cursor"),
    ({"cursor": "%%%"}, "cursor"),
    ({"limit": "0"}, "limit"),
    ({"limit": "1e3"}, "limit"),
])
def test_trace_list_parameters_out_of_range_are_400_naming_the_parameter(api, params, named):
    response = api.get("/api/v1/traces", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_argument"
    assert named in response.json()["error"]["message"]


@pytest.mark.parametrize("route", _TIMED_ROUTES)
@pytest.mark.parametrize("since", ["9" * 39, "³", "-5", "forever"])
def test_every_route_with_times_refuses_what_is_not_a_time(api, route, since):
    response = api.get(route, params={"since": since})
    assert response.status_code == 400, response.text
    assert "since" in response.json()["error"]["message"]


def test_times_in_range_are_taken_in_every_form():
    now = 2_000_000_000 * 10**9
    assert time_param("since", str(INT64_MAX), now) == INT64_MAX
    assert time_param("since", "0", now) == 0
    assert time_param("since", "15m", now) == now - 15 * 60 * 10**9
    assert time_param("since", "2026-11-26T08:00:00Z", now) == 1_795_680_000 * 10**9
    assert time_param("since", "1970-01-01T00:00:00Z", now) == 0
