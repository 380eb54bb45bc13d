"""A full disk (a small tmpfs mounted for the test): exports are refused with UNAVAILABLE / 503 while it is
full, the server keeps answering, ingestion resumes by itself once space returns, and a SIGKILL while the
disk is full loses nothing that was acknowledged."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import grpc
import httpx
import pytest

from tests.e2e.conftest import make_server, wait_for
from tests.otlp_builders import make_request, make_span

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(path, leave: int) -> None:
    """Write ``path`` until the disk is full, then give back ``leave`` bytes."""
    chunk = b"\0" * (1 << 20)
    with open(path, "wb") as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(chunk)
                f.flush()
        os.ftruncate(f.fileno(), max(0, f.tell() - leave))


def _export(srv, i: int, via: str) -> tuple[str, str]:
    trace_id = os.urandom(16)
    body = make_request([make_span(f"s{i}-{k}", trace_id=trace_id, attrs={"pad": "x" * 400}) for k in range(64)])
    payload = body.SerializeToString()
    if via == "grpc":
        with grpc.insecure_channel(srv.otlp_grpc) as channel:
            try:
                channel.unary_unary(EXPORT)(payload, timeout=10)
                return trace_id.hex(), "acked"
            except grpc.RpcError as exc:
                return trace_id.hex(), exc.code().name
    got = httpx.post(srv.otlp_http, content=payload, headers={"Content-Type": "application/x-protobuf"}, timeout=10)
    return trace_id.hex(), "acked" if got.status_code == 200 else str(got.status_code)


def _stored(srv, trace_ids: set[str]) -> dict[str, int]:
    rows = httpx.post(f"{srv.api}/api/v1/sql", timeout=30, json={
        "sql": "SELECT trace_id, count(*) AS n FROM spans GROUP BY trace_id", "limit": 100000}).json()["rows"]
    return {r["trace_id"]: r["n"] for r in rows if r["trace_id"] in trace_ids}


def test_full_disk_refuses_retryably_resumes_and_a_kill_loses_nothing_acknowledged(small_disk):
    srv = make_server(small_disk)
    srv.start()
    filler = small_disk / "filler"
    answers: dict[str, str] = {}
    try:
        for i in range(3):
            trace, verdict = _export(srv, i, "http")
            answers[trace] = verdict
        assert set(answers.values()) == {"acked"}
        _fill(filler, leave=256 << 10)
        refused = []
        for i in range(3, 60):
            trace, verdict = _export(srv, i, ("http", "grpc")[i % 2])
            answers[trace] = verdict
            if verdict != "acked":
                refused.append(verdict)
            if len(refused) >= 4:
                break
        assert refused and set(refused) <= {"503", "UNAVAILABLE"}, refused
        assert httpx.get(f"{srv.api}/api/v1/health", timeout=10).status_code == 200  # still serving

        srv.stop(signal.SIGKILL)  # killed while the disk is full
        filler.unlink()  # space returns
        srv.start()
        acked = {t for t, v in answers.items() if v == "acked"}
        stored = wait_for(lambda: (s := _stored(srv, set(answers))) and set(s) >= acked and s)
        assert {t: stored[t] for t in acked} == dict.fromkeys(acked, 64)
        assert not set(stored) - acked  # nothing refused was stored

        # Full again while running, then space returns without a restart: ingestion resumes by itself.
        _fill(filler, leave=0)
        trace, verdict = _export(srv, 100, "http")
        assert verdict == "503"
        filler.unlink()
        trace, verdict = wait_for(lambda: (r := _export(srv, 101, "http"))[1] == "acked" and r, timeout=30)
        assert wait_for(lambda: _stored(srv, {trace}).get(trace) == 64)
    finally:
        if srv.proc and srv.proc.poll() is None:
            srv.stop()
    log = srv.log_text(tail=None)
    assert "cannot log acknowledged exports" in log  # the operator is told why exports are refused
    assert "Traceback" not in log
