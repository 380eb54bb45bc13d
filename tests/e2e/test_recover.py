"""A damaged database file: `trajscope serve` names it and `trajscope recover` in one line;
`trajscope recover` rebuilds the store from what is intact and reports what it could not read."""

from __future__ import annotations

from tests.e2e.conftest import make_server, run_cli
from tests.otlp_builders import make_request, make_span
from trajscope.collector.ack_log import ACK_LOG_DIR, AckLog
from trajscope.storage.duckdb_store import DB_FILE


def _stored_span_ids(server) -> set[str]:
    body = server.get("/api/v1/traces", limit=100).json()
    ids = set()
    for trace in body["traces"]:
        spans = server.get(f"/api/v1/traces/{trace['trace_id']}").json()["spans"]
        ids |= {s["span_id"] for s in spans}
    return ids


def _leave_in_ack_log(data, spans) -> None:
    """What a crash leaves: an acknowledged export not yet in the store."""
    ack_log = AckLog(data / ACK_LOG_DIR)
    ack_log.append("default", make_request(spans).SerializeToString()).result(5)
    ack_log.close()


def test_a_damaged_file_header_is_named_at_start_and_recover_rebuilds_from_the_logs(tmp_path):
    server = make_server(tmp_path)
    server.start()
    assert server.export([make_span("lost with the file")]).status_code == 200
    assert server.stop() == 0
    db = server.data / DB_FILE
    with open(db, "r+b") as f:
        f.write(b"\x00\xff" * 6000)  # its headers
    pending = [make_span(f"acknowledged-{i}") for i in range(3)]
    _leave_in_ack_log(server.data, pending)

    serve = run_cli("serve", "--data", str(server.data), "--grpc-port", str(server.grpc_port),
                    "--http-port", str(server.http_port), "--api-port", str(server.api_port))
    assert serve.returncode == 1 and "Traceback" not in serve.stderr
    (line,) = serve.stderr.strip().splitlines()
    assert str(db) in line and f"trajscope recover --data {server.data}" in line

    recovered = run_cli("recover", "--data", str(server.data))
    assert recovered.returncode == 3, recovered.stderr  # something could not be read: said in the exit code
    assert "nothing can be read from the damaged file" in recovered.stderr
    assert "3 spans stored now" in recovered.stderr
    (aside,) = (server.data / "set-aside").glob("db-*")
    assert (aside / DB_FILE).stat().st_size == db.stat().st_size or (aside / DB_FILE).exists()

    server.start()
    assert _stored_span_ids(server) == {s.span_id.hex() for s in pending}
    server.stop()


def test_recover_keeps_an_intact_file_and_folds_in_the_logs(tmp_path):
    server = make_server(tmp_path)
    server.start()
    kept = [make_span(f"kept-{i}") for i in range(4)]
    assert server.export(kept).status_code == 200
    assert server.stop() == 0
    pending = [make_span("acknowledged")]
    _leave_in_ack_log(server.data, pending)
    recovered = run_cli("recover", "--data", str(server.data))
    assert recovered.returncode == 0, recovered.stderr
    assert "the database file is intact" in recovered.stderr and "5 spans stored now" in recovered.stderr
    assert not (server.data / "set-aside").exists()
    server.start()
    assert _stored_span_ids(server) == {s.span_id.hex() for s in kept + pending}
    server.stop()
