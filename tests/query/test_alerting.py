"""Alert rules: parsing, each kind evaluated on a known store (figures by hand), and the firing → resolved
state machine with its webhook."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from tests.otlp_builders import make_request, make_span
from trajscope.collector.otlp_decode import decode_request
from trajscope.query.alerting import AlertConfig, AlertConfigError, AlertMonitor, Rule, evaluate, load_rules
from trajscope.storage.duckdb_store import DuckDBStore

NOW = 1_790_000_000 * 10**9
MS = 10**6
MIN = 60 * 10**9


def _run(store, agent, start, *, cost=None, error=False, tools=(), blocks=0):
    root = make_span(f"invoke_agent {agent}", start=start, end=start + 100 * MS,
                     attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": agent})
    spans = [root]
    if cost is not None:
        spans.append(make_span("chat", trace_id=root.trace_id, parent=root, start=start, end=start + MS, attrs={
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 1,
            "gen_ai.usage.cost": cost}))
    if error:
        spans[0].status.code = 2
    for name, ms in tools:
        spans.append(make_span(f"execute_tool {name}", trace_id=root.trace_id, parent=root, start=start,
                               end=start + ms * MS, attrs={"gen_ai.operation.name": "execute_tool",
                                                           "gen_ai.tool.name": name}))
    for _ in range(blocks):
        spans.append(make_span("pii", trace_id=root.trace_id, parent=root, start=start, end=start + MS,
                               attrs={"guardrail.name": "pii", "guardrail.action": "block"}))
    store.write(decode_request(make_request(spans).SerializeToString()).table)


@pytest.fixture
def store():
    s = DuckDBStore(":memory:")
    _run(s, "support", NOW - 2 * MIN, cost=0.30, error=True, tools=[("search", 100), ("search", 900)], blocks=2)
    _run(s, "support", NOW - 3 * MIN, cost=0.05, tools=[("search", 200)])
    _run(s, "support", NOW - 4 * MIN, cost=0.10, error=True, blocks=1)
    _run(s, "support", NOW - 90 * MIN, cost=9.0, error=True)  # outside every 1h window
    _run(s, "billing", NOW - 5 * MIN, cost=0.01, tools=[("refund", 50)])
    yield s
    s.close()


def rule(kind, threshold, **kw):
    return Rule(name=kind, kind=kind, threshold=threshold, window_s=kw.pop("window_s", 3600), **kw)


def test_trace_cost(store):
    firing, value, details = evaluate(store, rule("trace_cost", 0.08), NOW)
    assert firing and value == pytest.approx(0.30) and details["runs_over"] == 2
    assert not evaluate(store, rule("trace_cost", 0.5), NOW)[0]


def test_cost_budget(store):
    firing, value, _ = evaluate(store, rule("cost_budget", 0.4), NOW)
    assert firing and value == pytest.approx(0.30 + 0.05 + 0.10 + 0.01)
    assert not evaluate(store, rule("cost_budget", 0.5), NOW)[0]


def test_error_rate_per_agent_with_a_minimum(store):
    firing, value, details = evaluate(store, rule("error_rate", 0.5, agent="support"), NOW)
    assert firing and value == pytest.approx(2 / 3) and details == {"runs": 3, "failed": 2}
    assert not evaluate(store, rule("error_rate", 0.5, agent="support", min_count=4), NOW)[0]
    assert evaluate(store, rule("error_rate", 0.1, agent="billing"), NOW)[:2] == (False, 0.0)


def test_tool_latency_p95(store):
    # search: 100, 900, 200 ms → p95 (linear interpolation) = 200 + 0.9 × 700 = 830 ms
    firing, value, details = evaluate(store, rule("tool_latency_p95", 800, tool="search"), NOW)
    assert firing and value == pytest.approx(830)
    assert details["tools_over"] == [{"tool": "search", "p95_ms": 830.0, "calls": 3}]
    assert not evaluate(store, rule("tool_latency_p95", 800, tool="search", min_count=4), NOW)[0]
    # Without a tool, every tool is checked: only search is over 60 ms... and refund is not.
    assert [t["tool"] for t in evaluate(store, rule("tool_latency_p95", 60), NOW)[2]["tools_over"]] == ["search"]


def test_guardrail_blocks_per_window(store):
    assert evaluate(store, rule("guardrail_blocks", 2), NOW)[:2] == (True, 3.0)
    assert evaluate(store, rule("guardrail_blocks", 2, window_s=150), NOW)[:2] == (False, 2.0)
    assert evaluate(store, rule("guardrail_blocks", 0, guardrail="toxicity"), NOW)[:2] == (False, 0.0)


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_firing_then_resolved_calls_the_webhook_once_each(store):
    httpd = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    _Receiver.received = []
    config = AlertConfig((rule("trace_cost", 0.2, window_s=600),), 1.0,
                         f"http://127.0.0.1:{httpd.server_port}/hook")
    monitor = AlertMonitor(store, config)
    assert monitor.states()[0]["status"] == "pending"
    monitor.evaluate_all(NOW)
    monitor.evaluate_all(NOW + MIN)  # still firing: no second call
    assert [(r["event"], r["alert"]["name"]) for r in _Receiver.received] == [("firing", "trace_cost")]
    state = monitor.states()[0]
    assert state["status"] == "firing" and state["since_unix_nano"] == NOW and state["value"] == pytest.approx(0.3)
    monitor.evaluate_all(NOW + 20 * MIN)  # the expensive run left the 10-minute window
    assert [r["event"] for r in _Receiver.received] == ["firing", "resolved"]
    assert monitor.states()[0]["status"] == "ok"
    httpd.shutdown()


def test_an_unreachable_webhook_is_reported_not_fatal(store):
    monitor = AlertMonitor(store, AlertConfig((rule("trace_cost", 0.2),), 1.0, "http://127.0.0.1:9/hook"))
    monitor.evaluate_all(NOW)
    state = monitor.states()[0]
    assert state["status"] == "firing" and state["webhook_error"]


@pytest.mark.parametrize(("text", "message"), [
    ("", "no [[rule]]"),
    ("[[rule]]\nkind = 'nope'\n", "kind must be one of"),
    ("[[rule]]\nkind = 'trace_cost'\n", "threshold_usd (a number) is required"),
    ("[[rule]]\nkind = 'error_rate'\nthreshold = 0.1\nwindow = 'soon'\n", "not a duration"),
    ("[[rule]]\nkind = 'error_rate'\nthreshold = 0.1\ntreshold = 3\n", "unknown field(s) ['treshold']"),
    ("[[rule]]\nname = 'a'\nkind = 'error_rate'\nthreshold = 0.1\n[[rule]]\nname = 'a'\nkind = 'trace_cost'\n"
     "threshold_usd = 1\n", "two rules are named"),
])
def test_bad_rule_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "alerts.toml"
    path.write_text(text)
    with pytest.raises(AlertConfigError) as err:
        load_rules(path)
    assert message in str(err.value) and "alerts.toml" in str(err.value)


def test_a_rules_file_parses(tmp_path):
    path = tmp_path / "alerts.toml"
    path.write_text('interval = "10s"\nwebhook = "http://127.0.0.1:1/x"\n'
                    '[[rule]]\nname = "slow search"\nkind = "tool_latency_p95"\ntool = "search"\n'
                    'threshold_ms = 2000\nwindow = "15m"\nmin_calls = 10\n')
    config = load_rules(path)
    assert config.interval_s == 10 and config.webhook == "http://127.0.0.1:1/x"
    assert config.rules == (Rule("slow search", "tool_latency_p95", 2000.0, 900.0, tool="search", min_count=10),)
