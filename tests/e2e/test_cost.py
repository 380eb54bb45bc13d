"""Cost end to end: computed, reported and unpriced spans, the effective price table, and re-pricing
history after the table changed (through the API with a progress bar, and on a stopped data directory)."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from tests.e2e.conftest import make_server, run_cli
from tests.otlp_builders import make_span

FEB = int(dt.datetime(2026, 2, 1, tzinfo=dt.UTC).timestamp()) * 10**9
AUG = int(dt.datetime(2026, 8, 1, tzinfo=dt.UTC).timestamp()) * 10**9
MS = 10**6
ACME_PRICES = """
[[model]]
name = "acme-llm-9"
provider = "acme"
input = 1.0
output = 2.0
effective_from = "2026-01-01"
source = "contract 2026"

[[model]]
name = "acme-llm-9"
provider = "acme"
input = 3.0
output = 6.0
effective_from = "2026-06-01"
source = "contract 2026, amended"
"""


def _llm(root, start, model, **usage):
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model}
    attrs.update({f"gen_ai.usage.{k}": v for k, v in usage.items()})
    return make_span(f"chat {model}", trace_id=root.trace_id, parent=root, start=start, end=start + 10 * MS,
                     attrs=attrs)


def _send(srv, spans):
    assert srv.export(spans).status_code == 200


def _sql(srv, sql):
    response = httpx.post(f"{srv.api}/api/v1/sql", json={"sql": sql}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["rows"]


def test_costs_and_repricing(tmp_path):
    srv = make_server(tmp_path)
    srv.start()
    a = make_span("invoke_agent a", start=FEB, end=FEB + 100 * MS, attrs={"gen_ai.agent.name": "a"})
    b = make_span("invoke_agent b", start=AUG, end=AUG + 100 * MS, attrs={"gen_ai.agent.name": "b"})
    _send(srv, [a, _llm(a, FEB + MS, "gpt-4o", input_tokens=1000, output_tokens=500, cache_read_input_tokens=200),
                _llm(a, FEB + 20 * MS, "acme-llm-9", input_tokens=1000, output_tokens=500),
                _llm(a, FEB + 40 * MS, "acme-llm-9", input_tokens=7, output_tokens=7, cost=0.5)])
    _send(srv, [b, _llm(b, AUG + MS, "acme-llm-9", input_tokens=1000, output_tokens=500)])
    gpt4o = (800 * 2.50 + 200 * 1.25 + 500 * 10.00) / 1e6
    try:
        rows = _sql(srv, "SELECT request_model, cost_usd, cost_source FROM spans WHERE category = 'llm' "
                         "ORDER BY start_time_unix_nano")
        assert [(r["request_model"], r["cost_source"]) for r in rows] == [
            ("gpt-4o", "computed"), ("acme-llm-9", "unpriced"), ("acme-llm-9", "reported"), ("acme-llm-9", "unpriced")]
        assert rows[0]["cost_usd"] == pytest.approx(gpt4o) and rows[1]["cost_usd"] is None
        unpriced = httpx.get(f"{srv.api}/api/v1/stats/unpriced_models").json()["models"]
        assert [(m["model"], m["spans"], m["input_tokens"]) for m in unpriced] == [("acme-llm-9", 2, 2000)]
        traces = {t["agent_name"]: t for t in httpx.get(f"{srv.api}/api/v1/traces").json()["traces"]}
        assert traces["a"]["cost_usd"] == pytest.approx(gpt4o + 0.5)
        assert traces["b"]["cost_usd"] is None  # unknown is not zero
    finally:
        srv.stop()

    # The team adds its contract prices and restarts; history is re-priced, by date.
    prices = tmp_path / "prices.toml"
    prices.write_text(ACME_PRICES)
    srv = make_server(tmp_path, "--prices", str(prices))
    srv.data = tmp_path / "data"
    srv.start()
    try:
        table = httpx.get(f"{srv.api}/api/v1/prices").json()
        assert table["extra_file"] == str(prices)
        acme = [p for p in table["prices"] if p["name"] == "acme-llm-9"]
        assert [(p["effective_from"], p["input"]) for p in acme] == [("2026-01-01", 1.0), ("2026-06-01", 3.0)]
        done = run_cli("reprice", "--url", srv.api)
        assert done.returncode == 0, done.stderr
        assert "repricing [" in done.stderr and "2 of 3 costed spans changed, 2 traces refreshed" in done.stderr
        rows = _sql(srv, "SELECT start_time_unix_nano, cost_usd, cost_source FROM spans "
                         "WHERE request_model = 'acme-llm-9' ORDER BY start_time_unix_nano")
        assert [r["cost_source"] for r in rows] == ["computed", "reported", "computed"]
        assert rows[0]["cost_usd"] == pytest.approx((1000 * 1.0 + 500 * 2.0) / 1e6)  # February price
        assert rows[1]["cost_usd"] == 0.5  # reported: untouched
        assert rows[2]["cost_usd"] == pytest.approx((1000 * 3.0 + 500 * 6.0) / 1e6)  # August price
        assert httpx.get(f"{srv.api}/api/v1/stats/unpriced_models").json()["models"] == []
        traces = {t["agent_name"]: t for t in httpx.get(f"{srv.api}/api/v1/traces").json()["traces"]}
        assert traces["a"]["cost_usd"] == pytest.approx(gpt4o + 0.5 + 0.002)
        assert traces["b"]["cost_usd"] == pytest.approx(0.006)
        # Re-pricing again changes nothing.
        again = run_cli("reprice", "--url", srv.api)
        assert "0 of 3 costed spans changed" in again.stderr
    finally:
        srv.stop()

    # Offline, on the stopped data directory, only since August, with another file.
    flat = tmp_path / "flat.toml"
    flat.write_text(ACME_PRICES.split("[[model]]")[0] + "[[model]]" + ACME_PRICES.split("[[model]]")[1]
                    .replace("input = 1.0", "input = 2.0").replace("output = 2.0", "output = 4.0"))
    done = run_cli("reprice", "--data", str(tmp_path / "data"), "--prices", str(flat), "--since", "2026-07-01")
    assert done.returncode == 0, done.stderr
    out = run_cli("sql", "--data", str(tmp_path / "data"), "--format", "csv",
               "SELECT agent_name, cost_usd FROM traces ORDER BY agent_name").stdout.splitlines()
    assert out[0] == '"agent_name","cost_usd"'
    assert float(out[1].split(",")[1]) == pytest.approx(gpt4o + 0.5 + 0.002)  # before --since: kept
    assert float(out[2].split(",")[1]) == pytest.approx((1000 * 2.0 + 500 * 4.0) / 1e6)
    bad = run_cli("serve", "--data", str(tmp_path / "x"), "--prices", str(tmp_path / "missing.toml"))
    assert bad.returncode == 1 and "bad price file" in bad.stderr and "missing.toml" in bad.stderr
