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

from tests.e2e.conftest import make_server
from tests.otlp_builders import make_span
from tests.otlp_fuzz import mutated_json, mutated_protobuf, send_mutations

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
    try:
        seen = send_mutations(server, random.Random(SEED), REQUESTS, grpc_method=EXPORT, url=server.otlp_http,
                              protobuf=mutated_protobuf, json_body=mutated_json, encode=_encoded)
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
        assert server.stop() == 0
    print(dict(seen))
    assert "Traceback" not in server.log_text(tail=None)
    # The fuzzer reached both the refusals and the acknowledgements on every transport.
    for transport in ("grpc", "http", "json"):
        answers = {k for k in seen if k.startswith(transport)}
        assert len(answers) >= 2, seen
