"""``trajscope demo``: send the synthetic agent workload to a running server over OTLP."""

from __future__ import annotations

import sys
import time

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from trajscope.workload import Workload, to_requests


def send_http(endpoint: str, payload: bytes, api_key: str | None) -> ExportTraceServiceResponse:
    headers = {"Content-Type": "application/x-protobuf"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    response = httpx.post(endpoint, content=payload, headers=headers, timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"{endpoint} answered {response.status_code}: {response.text[:300]}")
    return ExportTraceServiceResponse.FromString(response.content)


def run_demo(endpoint: str, sessions: int, seed: int, api_key: str | None, project: str | None) -> int:
    url = endpoint.rstrip("/")
    if not url.endswith("/v1/traces"):
        url += "/v1/traces"
    workload = Workload(seed=seed, rag=True)
    sent_spans = traces = 0
    started = time.perf_counter()
    print(f"trajscope demo: sending {sessions} sessions (seed {seed}) to {url}", flush=True)
    for request in to_requests(workload.sessions(sessions), spans_per_request=256, project=project):
        n = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        try:
            response = send_http(url, request.SerializeToString(), api_key)
        except (httpx.HTTPError, RuntimeError) as exc:
            print(f"trajscope demo: {exc}\n  is `trajscope serve` running?", file=sys.stderr)
            return 1
        if response.partial_success.rejected_spans:
            print(f"  server rejected {response.partial_success.rejected_spans} spans: "
                  f"{response.partial_success.error_message}", file=sys.stderr)
        sent_spans += n
        traces += len(request.resource_spans)
        print(f"  sent {traces} traces / {sent_spans} spans", end="\r", flush=True)
    elapsed = time.perf_counter() - started
    print(f"\ntrajscope demo: {traces} traces, {sent_spans} spans acknowledged in {elapsed:.1f}s", flush=True)
    return 0
