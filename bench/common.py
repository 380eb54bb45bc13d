"""Shared by the benchmarks: a server process on free ports, and the pre-serialised workload."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import httpx
import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from trajscope.collector.otlp_json import encode_json_request
from trajscope.workload import Workload, to_requests

OUT = Path(__file__).parent / ".out"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_payloads(total_spans: int, batch: int, seed: int = 7) -> list[bytes]:
    """Realistic agent export requests of ``batch`` spans, serialised once, up front."""
    workload = Workload(seed=seed)
    payloads, count = [], 0
    for request in to_requests(workload.sessions(10**9), spans_per_request=batch):
        payloads.append(request.SerializeToString())
        count += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        if count >= total_spans:
            break
    return payloads


def otlp_json(payload: bytes) -> bytes:
    """An export request as OTLP/JSON, as the JavaScript SDK's default exporter sends it."""
    return orjson.dumps(encode_json_request(ExportTraceServiceRequest.FromString(payload)))


def write_payloads(path: Path, payloads: list[bytes]) -> None:
    with open(path, "wb") as f:
        for p in payloads:
            f.write(struct.pack("<I", len(p)))
            f.write(p)


def read_payloads(path: Path) -> list[bytes]:
    data, out, i = path.read_bytes(), [], 0
    while i < len(data):
        (n,) = struct.unpack_from("<I", data, i)
        out.append(data[i + 4:i + 4 + n])
        i += 4 + n
    return out


class ServerProcess:
    def __init__(self, data: Path, *extra: str, keep: bool = False) -> None:
        if data.exists() and not keep:
            shutil.rmtree(data)
        self.data = data
        self.log = open(data.parent / f"{data.name}.log", "wb")  # noqa: SIM115
        # A port picked free can be taken before the server binds it (the ephemeral range is shared with
        # the load generators' connections): a server that exits during start-up is started again.
        for _ in range(3):
            if self._start(extra):
                return
        raise RuntimeError("server did not become healthy")

    def _start(self, extra: tuple[str, ...]) -> bool:
        self.grpc_port, self.http_port, self.api_port = free_port(), free_port(), free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trajscope.cli", "serve", "--data", str(self.data),
             "--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port),
             "--api-port", str(self.api_port), *extra],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                print(f"  (server exited during start-up, code {self.proc.returncode}: starting again)", flush=True)
                return False
            try:
                if httpx.get(self.url("/api/v1/health"), timeout=1).status_code == 200:
                    return True
            except httpx.HTTPError:
                time.sleep(0.1)
        self.proc.kill()
        return False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.api_port}{path}"

    def ingest(self) -> dict:
        return httpx.get(self.url("/api/v1/health"), timeout=10).json()["ingest"]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)
        self.log.close()


class LightClient:
    """GET requests on one keep-alive connection with the standard library, for timing the server: httpx
    spends ~2 ms of client-side Python per request on this machine (a health check 3.7 vs 1.5 ms), which
    is the client's cost, not the server's."""

    def __init__(self, base_url: str, timeout: float = 120) -> None:
        host = base_url.split("//", 1)[1].split("/", 1)[0]
        self._conn = http.client.HTTPConnection(host, timeout=timeout)

    def get(self, path: str, params: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> bytes:
        if params:
            path += "?" + urllib.parse.urlencode(params)
        self._conn.request("GET", path, headers=headers or {})
        response = self._conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
        return body

    def close(self) -> None:
        self._conn.close()


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def median(values: list[float]) -> float:
    return statistics.median(values)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def env_note() -> str:
    return f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"


def timed(fn, repeat: int) -> list[float]:
    """Milliseconds of ``repeat`` calls of ``fn``."""
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out
