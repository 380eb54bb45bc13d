"""Alerts through a real server: rules from --alerts, state at /api/v1/alerts, the webhook on a local
receiver, firing then resolved as the expensive run leaves the window."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx

from tests.e2e.conftest import make_server, run_cli, wait_for
from tests.otlp_builders import make_span

received: list[dict] = []


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_alert_fires_and_resolves_with_webhook(tmp_path, server):
    assert httpx.get(f"{server.api}/api/v1/alerts").json() == {"configured": False, "alerts": []}
    hook = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    rules = tmp_path / "alerts.toml"
    rules.write_text(f"""
interval = "0.3s"
webhook = "http://127.0.0.1:{hook.server_port}/alerts"

[[rule]]
name = "expensive run"
kind = "trace_cost"
threshold_usd = 0.25
window = "4s"

[[rule]]
name = "any block"
kind = "guardrail_blocks"
threshold = 5
window = "1h"
""")
    srv = make_server(tmp_path, "--alerts", str(rules))
    srv.start()
    try:
        states = {a["name"]: a for a in wait_for(lambda: [a for a in httpx.get(
            f"{srv.api}/api/v1/alerts").json()["alerts"] if a["status"] != "pending"], timeout=10)}
        assert states["expensive run"]["status"] == "ok" and states["any block"]["status"] == "ok"
        now = time.time_ns()
        root = make_span("invoke_agent a", start=now, end=now + 10**6, attrs={"gen_ai.agent.name": "a"})
        llm = make_span("chat", trace_id=root.trace_id, parent=root, start=now, end=now + 10**6, attrs={
            "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 10, "gen_ai.usage.cost": 0.40})
        assert srv.export([root, llm]).status_code == 200
        assert wait_for(lambda: any(r["event"] == "firing" for r in received), timeout=10)
        fired = next(r for r in received if r["event"] == "firing")["alert"]
        assert fired["name"] == "expensive run" and fired["value"] == 0.40
        assert fired["details"]["trace_ids"] == [root.trace_id.hex()]
        state = next(a for a in httpx.get(f"{srv.api}/api/v1/alerts").json()["alerts"]
                     if a["name"] == "expensive run")
        assert state["status"] == "firing"
        # Four seconds later the run has left the window: resolved, and the webhook hears it once.
        assert wait_for(lambda: any(r["event"] == "resolved" for r in received), timeout=15)
        assert [r["event"] for r in received] == ["firing", "resolved"]
    finally:
        srv.stop()
        hook.shutdown()
    bad = tmp_path / "bad.toml"
    bad.write_text("[[rule]]\nkind = 'trace_cost'\n")
    done = run_cli("serve", "--data", str(tmp_path / "d2"), "--alerts", str(bad))
    assert done.returncode == 1 and "bad alert rules" in done.stderr and "threshold_usd" in done.stderr
