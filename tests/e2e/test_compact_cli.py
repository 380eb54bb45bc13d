import httpx

from tests.e2e.conftest import make_server, run_cli
from tests.otlp_builders import make_span


def test_compact_refuses_a_running_server_then_compacts_once_stopped(tmp_path):
    srv = make_server(tmp_path)
    srv.start()
    root = make_span("invoke_agent a")
    assert srv.export([root]).status_code == 200
    busy = run_cli("compact", "--data", str(srv.data))
    assert busy.returncode == 1 and "stop the server" in busy.stderr
    srv.stop()
    done = run_cli("compact", "--data", str(srv.data))
    assert done.returncode == 0, done.stderr
    assert "1 spans" in done.stderr and "bytes" in done.stderr
    srv.start()
    assert httpx.get(f"{srv.api}/api/v1/traces/{root.trace_id.hex()}").status_code == 200
    srv.stop()
