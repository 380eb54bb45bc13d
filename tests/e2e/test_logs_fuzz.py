"""A seeded mutation fuzzer over OTLP log exports against a real server (gRPC, HTTP protobuf, OTLP/JSON):
every request gets an answer exporters understand — never HTTP 500 or gRPC INTERNAL/UNKNOWN — and a good
export still lands afterwards. ``TRAJSCOPE_FUZZ_REQUESTS`` / ``TRAJSCOPE_FUZZ_SEED`` lengthen or vary the run."""

from __future__ import annotations

import base64
import os
import random

import httpx
import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from tests.e2e.conftest import make_server
from tests.otlp_builders import any_value, kvs
from tests.otlp_fuzz import mutated_bytes, send_mutations

EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
REQUESTS = int(os.environ.get("TRAJSCOPE_FUZZ_REQUESTS", "300"))
SEED = int(os.environ.get("TRAJSCOPE_FUZZ_SEED", "22"))
_VALUES = ["text", "", 7, -2**63, 2**63 - 1, 1.5, float("nan"), float("inf"), True, b"\x00\xff", [1, "a", [2.0]],
           {"k": {"$bytes": "x"}}, {"content": "hi", "nested": {"deep": [None or 0]}}]


def _request(rng: random.Random) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    for _ in range(rng.randint(1, 2)):
        resource = request.resource_logs.add()
        resource.resource.attributes.extend(kvs({"service.name": rng.choice(["svc", "", "x" * 300])}))
        scope = resource.scope_logs.add()
        scope.scope.name = rng.choice(["genai", ""])
        for _ in range(rng.randint(0, 6)):
            record = scope.log_records.add(
                time_unix_nano=rng.choice([0, 1, 1_700_000_000_000_000_000, 2**64 - 1]),
                observed_time_unix_nano=rng.choice([0, 5, 2**63]),
                severity_number=rng.choice([0, 9, 24]), severity_text=rng.choice(["", "INFO"]),
                trace_id=rng.choice([b"", os.urandom(16), bytes(16), os.urandom(15)]),
                span_id=rng.choice([b"", os.urandom(8), bytes(8), os.urandom(9)]),
                event_name=rng.choice(["", "gen_ai.evaluation.result", "gen_ai.guardrail.result",
                                       "gen_ai.client.inference.operation.details", "\u2603" * 3]))
            record.attributes.extend(kvs({f"k{i}": rng.choice(_VALUES) for i in range(rng.randint(0, 4))}))
            if rng.random() < 0.7:
                record.body.CopyFrom(any_value(rng.choice(_VALUES)))
    return request


def _mutated_protobuf(rng: random.Random) -> bytes:
    body = _request(rng).SerializeToString()
    return body if not body or rng.random() < 0.3 else mutated_bytes(body, rng)


def _mutated_json(rng: random.Random) -> bytes:
    doc = json_format.MessageToDict(_request(rng))
    records = [r for rl in doc.get("resourceLogs", []) for sl in rl.get("scopeLogs", [])
               for r in sl.get("logRecords", [])]
    for record in records:
        for key in ("traceId", "spanId"):
            if key in record:
                record[key] = base64.b64decode(record[key]).hex()
    choice = rng.randrange(6)
    if choice == 0 and records:
        rng.choice(records)[rng.choice(["traceId", "spanId"])] = rng.choice(["zz", 7, None, "ab" * 40])
    elif choice == 1 and records:
        rng.choice(records)["attributes"] = rng.choice(["x", [1], {"key": "a"}, [{"key": 1, "value": []}]])
    elif choice == 2:
        doc["resourceLogs"] = rng.choice(["x", 1, [None], [{"scopeLogs": "y"}], [{"scopeLogs": [{"logRecords": [3]}]}]])
    elif choice == 3 and records:
        rng.choice(records)["timeUnixNano"] = rng.choice(["-1", "1e30", [], "18446744073709551616"])
    elif choice == 4:
        return orjson.dumps(doc)[: rng.randrange(1, 40)]
    return orjson.dumps(doc)


def test_mutated_log_exports_get_protocol_answers_and_good_ones_still_land(tmp_path):
    server = make_server(tmp_path)
    server.start()
    url = server.otlp_http.replace("/v1/traces", "/v1/logs")
    try:
        seen = send_mutations(server, random.Random(SEED), REQUESTS, grpc_method=EXPORT, url=url,
                              protobuf=_mutated_protobuf, json_body=_mutated_json)
        good = ExportLogsServiceRequest()
        trace_id = os.urandom(16)
        good.resource_logs.add().scope_logs.add().log_records.add(
            time_unix_nano=5, trace_id=trace_id, span_id=os.urandom(8), event_name="after the fuzz")
        answer = httpx.post(url, content=good.SerializeToString(), headers={"Content-Type": "application/x-protobuf"})
        assert answer.status_code == 200
        logs = server.get(f"/api/v1/traces/{trace_id.hex()}/logs").json()["logs"]
        assert [r["event_name"] for r in logs] == ["after the fuzz"]
    finally:
        assert server.stop() == 0
    print(dict(seen))
    assert "Traceback" not in server.log_text(tail=None)
    for transport in ("grpc", "http", "json"):
        assert len({k for k in seen if k.startswith(transport)}) >= 2, seen
