"""The OpenTelemetry JavaScript SDK (from npm) exporting OTLP/HTTP JSON and protobuf, gzip, to trajscope."""

from __future__ import annotations

import gzip
import http.server
import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import ClassVar

import orjson
import pytest

from tests.e2e.conftest import wait_for
from trajscope.collector import otlp_json
from trajscope.collector.otlp_json_build import build_request

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


class _Capture(http.server.BaseHTTPRequestHandler):
    """Keeps each OTLP/HTTP body the SDK sends (gunzipped, chunked or not) and answers 200."""

    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        if self.headers.get("Transfer-Encoding") == "chunked":
            body = b""
            while size := int(self.rfile.readline().strip(), 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.bodies.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def test_the_js_sdk_json_takes_the_fast_builder(js_sdk):
    # What the JS exporter sends must not fall back to json_format (3× slower): the fast path is the point.
    _Capture.bodies = []
    capture = http.server.HTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=capture.serve_forever, daemon=True).start()
    try:
        done = subprocess.run(["node", "send.mjs", "http-json", f"http://127.0.0.1:{capture.server_port}/v1/traces",
                               "capture"], cwd=js_sdk, capture_output=True, text=True, timeout=60)
    finally:
        capture.shutdown()
    assert done.returncode == 0, done.stderr
    assert len(_Capture.bodies) == 3
    for body in _Capture.bodies:
        doc = orjson.loads(body)
        for rs in otlp_json._list(doc, "resourceSpans", "resource_spans"):
            for ss in otlp_json._list(rs, "scopeSpans", "scope_spans"):
                for span in otlp_json._list(ss, "spans", "spans"):
                    assert otlp_json.hex_ids_to_base64(span, otlp_json._SPAN_ID_KEYS) is None
        assert build_request(doc).resource_spans[0].scope_spans[0].spans[0].name
