"""Repeated SIGKILLs of a real server on one data directory, as a host that crashes again and again would.

Each round starts the server on the same data, puts it under load from three senders (gRPC protobuf, HTTP
protobuf, HTTP OTLP/JSON) and kills it at a random moment: under load, right after the start-up replay,
while it reprices, or kills a ``trajscope compact`` run instead. Afterwards every start must have succeeded,
every acknowledged span must be stored exactly once, and every trace summary must equal one recomputed
from the stored spans.

Run longer by hand: ``python -m tests.e2e.crash_loop --rounds 50 --seed 7 --data /tmp/crash``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import orjson
import psutil

from tests.e2e.conftest import Server, make_server
from tests.e2e.crash_check import check_store
from tests.otlp_builders import make_request, make_span
from trajscope.collector.otlp_json import encode_json_request

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
MOMENTS = ("load", "load", "after_replay", "reprice", "compact")
T0 = 1_760_000_000 * 10**9
# Each start prices "crash-model" by one of these, so that a repricing after a restart changes stored costs.
PRICES = ("input = 1.0\noutput = 2.0", "input = 3.0\noutput = 0.5")


def price_files(directory: Path) -> list[Path]:
    files = []
    for i, body in enumerate(PRICES):
        path = directory / f"prices-{i}.toml"
        path.write_text(f'[[model]]\nname = "crash-model"\n{body}\neffective_from = "2020-01-01"\n')
        files.append(path)
    return files


def _export(rng: random.Random, max_spans: int) -> tuple[list[tuple[str, str]], object]:
    """One export: a trace of a root and some children with token counts (so costs and summaries vary)."""
    trace_id = rng.randbytes(16)
    root = make_span("agent", trace_id=trace_id, span_id=rng.randbytes(8), start=T0, end=T0 + 10**9)
    spans = [root]
    for i in range(rng.randint(5, max_spans)):
        start = T0 + rng.randrange(10**9)
        spans.append(make_span(f"chat {i}", trace_id=trace_id, span_id=rng.randbytes(8), parent=root, start=start,
                               end=start + rng.randrange(1, 10**8),
                               attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "crash-model",
                                      "gen_ai.usage.input_tokens": rng.randrange(1000),
                                      "gen_ai.usage.output_tokens": rng.randrange(1000),
                                      "payload": "x" * rng.randrange(300)}))
    return [(s.trace_id.hex(), s.span_id.hex()) for s in spans], make_request(spans)


@dataclass
class Load:
    """Senders on all three encodings until stopped; ``acked`` holds (trace_id, span_id) acknowledged."""

    server: Server
    seed: int
    acked: set[tuple[str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for i, kind in enumerate(("grpc", "grpc", "http", "json")):
            thread = threading.Thread(target=self._send, args=(kind, random.Random(self.seed * 10 + i)), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _send(self, kind: str, rng: random.Random) -> None:
        channel = grpc.insecure_channel(self.server.otlp_grpc)
        call = channel.unary_unary(EXPORT)
        with httpx.Client(timeout=5) as http:
            while not self._stop.is_set():
                ids, request = _export(rng, 120)
                try:
                    if kind == "grpc":
                        call(request.SerializeToString(), timeout=5)
                    else:
                        body, media = ((request.SerializeToString(), "application/x-protobuf") if kind == "http"
                                       else (orjson.dumps(encode_json_request(request)), "application/json"))
                        if http.post(self.server.otlp_http, content=body,
                                     headers={"Content-Type": media}).status_code != 200:
                            time.sleep(0.05)
                            continue
                except (grpc.RpcError, httpx.HTTPError):
                    time.sleep(0.05)
                    continue  # not acknowledged: may or may not be stored
                with self._lock:
                    self.acked.update(ids)
        channel.close()

    def count(self) -> int:
        with self._lock:
            return len(self.acked)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL a process and wait for it and its decode workers to be gone."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    psutil.wait_procs(children, timeout=10)


def _wait(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)


@dataclass
class CrashLoopResult:
    rounds: list[str]
    acked: set[tuple[str, str]]
    starts: int


def crash_loop(server: Server, rounds: int, seed: int, say: Callable[[str], None] = lambda _: None,
               most_spans: int = 6000, moments: tuple[str, ...] = MOMENTS) -> CrashLoopResult:
    """``rounds`` kills of ``server`` (not running on entry; running on return). Every start must succeed:
    ``Server.start`` raises with the server's log otherwise."""
    rng = random.Random(seed)
    prices = price_files(server.data.parent)
    base_args = server.extra_args
    acked: set[tuple[str, str]] = set()
    done: list[str] = []
    starts = 0
    # Every kind of moment at least once (given enough rounds), in a seeded order.
    schedule = [moments[i % len(moments)] for i in range(rounds)]
    rng.shuffle(schedule)
    for number, moment in enumerate(schedule):
        if moment == "compact":
            proc = subprocess.Popen([sys.executable, "-m", "trajscope.cli", "compact", "--data", str(server.data),
                                     "--prices", str(prices[number % 2])],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.05, 1.5))
            _kill(proc)
            done.append(moment)
            say(f"round {number + 1}: killed compaction")
            continue
        server.extra_args = (*base_args, "--prices", str(prices[number % 2]))
        server.start(timeout=120)
        starts += 1
        if moment == "after_replay":
            time.sleep(rng.uniform(0, 0.3))
            _kill(server.proc)
            done.append(moment)
            say(f"round {number + 1}: killed right after the start")
            continue
        load = Load(server, seed * 1000 + number)
        load.start()
        target = rng.randint(most_spans // 10, most_spans)
        _wait(lambda load=load, target=target: load.count() >= target, 60)
        if moment == "reprice":
            threading.Thread(target=_reprice, args=(server,), daemon=True).start()
            time.sleep(rng.uniform(0.05, 0.6))
        else:
            time.sleep(rng.uniform(0, 0.5))
        _kill(server.proc)
        load.stop()
        acked |= load.acked
        done.append(moment)
        say(f"round {number + 1}: killed {moment}, {len(load.acked)} spans acknowledged this round")
    server.start(timeout=180)
    starts += 1
    return CrashLoopResult(done, acked, starts)


def _reprice(server: Server) -> None:
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(f"{server.api}/api/v1/reprice", json={}, timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, required=True, help="a scratch directory (emptied first)")
    parser.add_argument("--spans", type=int, default=6000, help="most spans acknowledged before a kill")
    parser.add_argument("--moments", default=",".join(sorted(set(MOMENTS))), help="when to kill, comma-separated")
    args = parser.parse_args()
    import shutil

    shutil.rmtree(args.data, ignore_errors=True)
    args.data.mkdir(parents=True)
    server = make_server(args.data)
    result = crash_loop(server, args.rounds, args.seed, say=lambda m: print(m, flush=True), most_spans=args.spans,
                        moments=tuple(args.moments.split(",")))
    ok = verify(server, result.acked, say=lambda m: print(m, flush=True))
    print(f"{len(result.rounds)} kills, {result.starts} starts, {len(result.acked)} spans acknowledged: "
          f"{'all stored once, summaries exact' if ok else 'FAILED'}", flush=True)
    server.stop()
    return 0 if ok else 1


def verify(server: Server, acked: set[tuple[str, str]], say: Callable[[str], None]) -> bool:
    """Every acknowledged span stored once; every summary equal to one recomputed from the stored spans."""
    server.stop()
    problems = check_store(server.data, acked)
    for p in problems:
        say(p)
    server.start(timeout=120)
    return not problems


if __name__ == "__main__":
    raise SystemExit(main())
