"""Official instrumentations around a real ``openai`` client pointed at a local fake OpenAI server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.e2e.conftest import wait_for

USAGE = {"prompt_tokens": 57, "completion_tokens": 9, "total_tokens": 66,
         "prompt_tokens_details": {"cached_tokens": 32}}


class _FakeOpenAI(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        request = json.loads(self.rfile.read(length) or b"{}")
        body = json.dumps({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000,
            "model": request.get("model", "x") + "-2024-07-18",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "Paris is the capital of France."}}],
            "usage": USAGE,
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def fake_openai():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def _instrumentor(kind):
    if kind == "otel-genai":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    else:
        from openinference.instrumentation.openai import OpenAIInstrumentor
    return OpenAIInstrumentor()


@pytest.mark.parametrize(("kind", "transport"), [("otel-genai", "http"), ("openinference", "grpc")])
def test_instrumented_openai_call_is_normalised(server, fake_openai, kind, transport):
    exporter = (HttpExporter(endpoint=server.otlp_http) if transport == "http"
                else GrpcExporter(endpoint=server.otlp_grpc, insecure=True))
    provider = TracerProvider(resource=Resource.create({"service.name": f"openai-{kind}"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = _instrumentor(kind)
    instrumentor.instrument(tracer_provider=provider)
    try:
        client = openai.OpenAI(base_url=fake_openai, api_key="sk-test", max_retries=0)
        answer = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Capital of France?"}])
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    assert answer.choices[0].message.content.startswith("Paris")

    listed = wait_for(lambda: server.get("/api/v1/traces", service=f"openai-{kind}").json()["traces"])
    assert len(listed) == 1
    trace = server.get(f"/api/v1/traces/{listed[0]['trace_id']}").json()
    llm = [s for s in trace["spans"] if s["category"] == "llm"]
    assert len(llm) == 1, [(s["name"], s["category"]) for s in trace["spans"]]
    span = llm[0]
    assert span["response_model"] == "gpt-4o-mini-2024-07-18"
    assert span["request_model"] in ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert span["provider"] == "openai"
    assert (span["input_tokens"], span["output_tokens"]) == (USAGE["prompt_tokens"], USAGE["completion_tokens"])
    assert listed[0]["input_tokens"] == USAGE["prompt_tokens"]
    assert listed[0]["output_tokens"] == USAGE["completion_tokens"]
