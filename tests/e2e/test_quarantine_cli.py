"""`trajscope quarantine list|retry|drop`, and the quarantine's count in /api/v1/health."""

from __future__ import annotations

import json

from tests.e2e.conftest import make_server, run_cli
from tests.otlp_builders import make_request, make_span
from trajscope.collector.ack_log import ACK_LOG_DIR, AckLog
from trajscope.collector.otlp_decode import decode_request
from trajscope.storage.quarantine import QUARANTINE_DIR, Quarantine


def test_quarantined_entries_are_counted_listed_retried_and_dropped(tmp_path):
    server = make_server(tmp_path)
    server.start()
    assert server.stop() == 0
    exported = [make_span("was quarantined as an export")]
    decoded = [make_span("was quarantined as spans", attrs={"gen_ai.usage.input_tokens": 3})]
    ack_log = AckLog(server.data / ACK_LOG_DIR)
    ack_log.quarantine("default", make_request(exported).SerializeToString(), RuntimeError("worker died"), 1)
    ack_log.quarantine("default", b"\xff\xff not a request", ValueError("cannot parse"), 1)
    ack_log.close()
    Quarantine(server.data / QUARANTINE_DIR).add_spans(
        decode_request(make_request(decoded).SerializeToString()).table, "ValueError: value out of range")

    server.start()
    health = server.get("/api/v1/health").json()
    assert (health["ingest"]["quarantine_entries"], health["ingest"]["quarantine_spans"]) == (3, 3)
    refused = run_cli("quarantine", "retry", "--all", "--data", str(server.data))
    assert refused.returncode == 1 and "in use by another process" in refused.stderr
    assert server.stop() == 0

    listed = run_cli("quarantine", "list", "--data", str(server.data))
    assert listed.returncode == 0 and "worker died" in listed.stdout and "value out of range" in listed.stdout
    entries = json.loads(run_cli("quarantine", "list", "--json", "--data", str(server.data)).stdout)
    assert sorted(e["kind"] for e in entries) == ["export", "export", "spans"]

    retried = run_cli("quarantine", "retry", "--all", "--data", str(server.data))
    assert retried.returncode == 1, retried.stderr  # the unparseable body still fails, and stays
    (left,) = json.loads(run_cli("quarantine", "list", "--json", "--data", str(server.data)).stdout)
    assert left["reason"] == "ValueError: cannot parse" and f"{left['id']}: still fails" in retried.stderr
    assert run_cli("quarantine", "drop", left["id"], "--data", str(server.data)).returncode == 0
    assert json.loads(run_cli("quarantine", "list", "--json", "--data", str(server.data)).stdout) == []

    server.start()
    names = set()
    for trace in server.get("/api/v1/traces").json()["traces"]:
        names |= {s["name"] for s in server.get(f"/api/v1/traces/{trace['trace_id']}").json()["spans"]}
    assert names == {"was quarantined as an export", "was quarantined as spans"}
    assert server.get("/api/v1/health").json()["ingest"]["quarantine_entries"] == 0
    server.stop()
