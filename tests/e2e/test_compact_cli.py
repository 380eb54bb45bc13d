from pathlib import Path

import httpx

from tests.collector.test_ack_replay import _left_behind
from tests.e2e.conftest import make_server, run_cli
from tests.otlp_builders import make_request, make_span


def test_compact_refuses_a_running_server_then_compacts_once_stopped(tmp_path):
    srv = make_server(tmp_path)
    srv.start()
    root = make_span("invoke_agent a")
    assert srv.export([root]).status_code == 200
    busy = run_cli("compact", "--data", str(srv.data))
    assert busy.returncode == 1 and "stop the server" in busy.stderr
    srv.stop()
    # What a crash would have left acknowledged but not loaded: folded in by the compaction.
    late = make_span("invoke_agent late")
    _left_behind(Path(srv.data) / "acklog", [make_request([late]).SerializeToString()])
    done = run_cli("compact", "--data", str(srv.data))
    assert done.returncode == 0, done.stderr
    assert "2 spans" in done.stderr and "bytes" in done.stderr and "1 acknowledged export(s)" in done.stderr
    srv.start()
    for span in (root, late):
        assert httpx.get(f"{srv.api}/api/v1/traces/{span.trace_id.hex()}").status_code == 200
    srv.stop()
