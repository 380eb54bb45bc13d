"""A real ``trajscope serve`` process on free loopback ports, per test module."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@dataclass
class Server:
    data: Path
    grpc_port: int
    http_port: int
    api_port: int
    proc: subprocess.Popen | None = None
    extra_args: tuple[str, ...] = ()

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def otlp_http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/v1/traces"

    @property
    def otlp_grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout: float = 30) -> None:
        log = open(self.data.parent / f"server-{self.api_port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trajscope.cli", "serve", "--data", str(self.data),
             "--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port),
             "--api-port", str(self.api_port), *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_text()}")
            try:
                if httpx.get(f"{self.api}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not healthy in {timeout}s: {self.log_text()}")

    def log_text(self, tail: int | None = 3000) -> str:
        text = (self.data.parent / f"server-{self.api_port}.log").read_text(errors="replace")
        return text if tail is None else text[-tail:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def get(self, path: str, **params) -> httpx.Response:
        return httpx.get(f"{self.api}{path}", params=params, timeout=30)

    def export(self, spans: list) -> httpx.Response:
        """One OTLP/HTTP protobuf export of these spans (``otlp_builders.make_span``)."""
        from tests.otlp_builders import make_request

        return httpx.post(self.otlp_http, content=make_request(spans).SerializeToString(),
                          headers={"Content-Type": "application/x-protobuf"}, timeout=60)


def run_cli(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    """``trajscope ARGS`` in a child process, output captured as text."""
    return subprocess.run([sys.executable, "-m", "trajscope.cli", *args], capture_output=True, text=True,
                          timeout=120, check=check)


def make_server(tmp_path: Path, *extra_args: str) -> Server:
    return Server(tmp_path / "data", *free_ports(3), extra_args=extra_args)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = make_server(tmp_path_factory.mktemp("srv"))
    srv.start()
    yield srv
    if srv.proc and srv.proc.poll() is None:
        srv.stop()


def wait_for(predicate, timeout: float = 15, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
