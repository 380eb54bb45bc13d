"""A seeded mutation fuzzer over OTLP against a real server: protobuf over gRPC and HTTP, OTLP/JSON over
HTTP, plain and gzip (and broken gzip). Every request is answered within 10 s with a status the OTLP
exporters understand — never HTTP 500 or gRPC INTERNAL/UNKNOWN — and the server keeps storing good
exports afterwards.

A longer run: ``TRAJSCOPE_FUZZ_REQUESTS=5000 TRAJSCOPE_FUZZ_SEED=7 .venv/bin/python -m pytest
tests/e2e/test_otlp_fuzz.py``.
"""

from __future__ import annotations

import gzip
import os
import random
from collections import Counter

import grpc
import httpx

from tests.e2e.conftest import make_server
from tests.otlp_builders import make_span
from tests.otlp_fuzz import GRPC_ANSWERS, HTTP_ANSWERS, mutated_json, mutated_protobuf

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
REQUESTS = int(os.environ.get("TRAJSCOPE_FUZZ_REQUESTS", "450"))
SEED = int(os.environ.get("TRAJSCOPE_FUZZ_SEED", "20"))


def _encoded(body: bytes, rng: random.Random) -> tuple[bytes, dict[str, str]]:
    choice = rng.randrange(4)
    if choice == 0:
        return body, {}
    packed = gzip.compress(body)
    if choice == 3:  # broken gzip
        packed = packed[: rng.randrange(1, len(packed))] if rng.random() < 0.5 else packed[:10] + b"\x00" * 8
    return packed, {"Content-Encoding": "gzip"}


def test_mutated_exports_get_protocol_answers_and_good_exports_still_land(tmp_path):
    server = make_server(tmp_path)
    server.start()
    rng = random.Random(SEED)
    seen: Counter[str] = Counter()
    channel = grpc.insecure_channel(server.otlp_grpc)
    call = channel.unary_unary(EXPORT)
    try:
        with httpx.Client(timeout=10) as http:
            for number in range(REQUESTS):
                transport = ("grpc", "http", "json")[number % 3]
                if transport == "grpc":
                    body = mutated_protobuf(rng)
                    try:
                        call(body, timeout=10)
                        code = grpc.StatusCode.OK
                    except grpc.RpcError as exc:
                        code = exc.code()
                    assert code in GRPC_ANSWERS, (number, code, body[:200])
                    seen[f"grpc {code.name}"] += 1
                    continue
                body = mutated_protobuf(rng) if transport == "http" else mutated_json(rng)
                payload, headers = _encoded(body, rng)
                media = "application/x-protobuf" if transport == "http" else "application/json"
                response = http.post(server.otlp_http, content=payload, headers={"Content-Type": media, **headers})
                assert response.status_code in HTTP_ANSWERS, (number, response.status_code, response.text[:300],
                                                              body[:300])
                seen[f"{transport} {response.status_code}"] += 1
        good = [make_span(f"after the fuzz {i}") for i in range(3)]
        assert server.export(good).status_code == 200
        trace = server.get(f"/api/v1/traces/{good[0].trace_id.hex()}")
        assert trace.status_code == 200 and trace.json()["spans"][0]["name"] == "after the fuzz 0"
        health = server.get("/api/v1/health").json()["ingest"]
        # Whatever was acknowledged and then failed is in quarantine, never dropped.
        assert health["quarantine_entries"] >= health["failed_after_ack"], health
        assert health["load_failures"] == 0 or health["spans_quarantined"] > 0, health
        print({k: health[k] for k in ("failed_after_ack", "quarantine_entries", "load_failures")})
    finally:
        channel.close()
        assert server.stop() == 0
    print(dict(seen))
    assert "Traceback" not in server.log_text(tail=None)
    # The fuzzer reached both the refusals and the acknowledgements on every transport.
    for transport in ("grpc", "http", "json"):
        answers = {k for k in seen if k.startswith(transport)}
        assert len(answers) >= 2, seen
