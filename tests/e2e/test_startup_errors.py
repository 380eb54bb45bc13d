"""`trajscope serve` that cannot start says why in one line and exits 1, instead of a traceback."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.conftest import free_ports


def _serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trajscope.cli", "serve", *args], capture_output=True,
                          text=True, timeout=60)


def test_startup_busy_port_and_locked_data_directory(server, tmp_path):
    grpc_port, http_port, api_port = free_ports(3)
    busy_http = _serve("--data", str(tmp_path / "a"), "--grpc-port", str(grpc_port), "--http-port",
                       str(server.http_port), "--api-port", str(api_port))
    assert busy_http.returncode == 1
    assert f"cannot listen for OTLP/HTTP on 127.0.0.1:{server.http_port}" in busy_http.stderr
    assert "--http-port" in busy_http.stderr and "Traceback" not in busy_http.stderr

    locked = _serve("--data", str(server.data), "--grpc-port", str(grpc_port), "--http-port", str(http_port),
                    "--api-port", str(api_port))
    assert locked.returncode == 1
    assert f"data directory {server.data} is in use by another process" in locked.stderr
    assert "Traceback" not in locked.stderr


def test_a_memory_budget_too_small_or_unreadable_is_refused_at_start(tmp_path):
    ports = [str(p) for p in free_ports(3)]
    flags = ["--data", str(tmp_path / "d"), "--grpc-port", ports[0], "--http-port", ports[1], "--api-port", ports[2]]
    small = _serve(*flags, "--memory-limit", "100MiB")
    assert small.returncode == 1
    assert "--memory-limit 100MiB is below the 256 MiB" in small.stderr and "Traceback" not in small.stderr
    unreadable = _serve(*flags, "--memory-limit", "lots")
    assert unreadable.returncode == 2
    assert "--memory-limit: cannot read 'lots' as a size" in unreadable.stderr
