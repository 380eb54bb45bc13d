"""The OpenTelemetry JavaScript SDK (from npm) exporting OTLP/HTTP JSON and protobuf, gzip, to trajscope."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import wait_for

JS_DIR = Path(__file__).parent / "js"


@pytest.fixture(scope="module")
def js_sdk():
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are required for the JavaScript SDK test (apt-get install nodejs npm)")
    if not (JS_DIR / "node_modules" / "@opentelemetry" / "sdk-trace").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True, timeout=300)
    return JS_DIR


@pytest.mark.parametrize("protocol", ["http-json", "http-proto"])
def test_js_sdk_export_is_stored_and_normalised(server, js_sdk, protocol):
    service = f"js-{protocol}"
    done = subprocess.run(["node", "send.mjs", protocol, server.otlp_http, service], cwd=js_sdk,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    trace_id = json.loads(done.stdout.strip().splitlines()[-1])["trace_id"]

    response = wait_for(lambda: (r := server.get(f"/api/v1/traces/{trace_id}")).status_code == 200 and r)
    assert response, f"trace {trace_id} never stored; server log: {server.log_text()}"
    spans = {s["name"]: s for s in response.json()["spans"]}
    assert set(spans) == {"invoke_agent js-agent", "chat gpt-4o", "execute_tool lookup"}
    llm = spans["chat gpt-4o"]
    assert (llm["category"], llm["request_model"], llm["input_tokens"], llm["output_tokens"]) == (
        "llm", "gpt-4o", 150, 25)
    assert llm["attributes"]["gen_ai.request.temperature"] == 0.25
    assert llm["attributes"]["tags"] == ["a", "b"]
    assert llm["parent_span_id"] == spans["invoke_agent js-agent"]["span_id"]
    assert [e["name"] for e in llm["events"]] == ["gen_ai.choice"]
    assert spans["execute_tool lookup"]["status_code"] == "ERROR"
    assert spans["invoke_agent js-agent"]["service_name"] == service

    listed = server.get("/api/v1/traces", service=service).json()["traces"]
    assert [(t["trace_id"], t["agent_name"], t["session_id"], t["error_count"]) for t in listed] == [
        (trace_id, "js-agent", "js-session", 1)]
