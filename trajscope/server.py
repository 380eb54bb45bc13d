"""``trajscope serve``: wire storage, the ingest pipeline, both OTLP receivers and the API together.

Shutdown on SIGINT/SIGTERM: stop accepting, let in-flight exports finish (their spans are committed and
acknowledged), flush the writer, checkpoint, close.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import ipaddress
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict

import duckdb
import uvicorn

from trajscope.analysis.pricing import PriceError
from trajscope.audit import AUDIT_FILE, AuditLog
from trajscope.collector import costing, redaction
from trajscope.collector.ack_log import ACK_LOG_DIR, AckLog
from trajscope.collector.auth import Access
from trajscope.collector.decode_pool import make_decoder
from trajscope.collector.grpc_receiver import build_grpc_server
from trajscope.collector.http_receiver import build_http_app
from trajscope.collector.keyring import Keyring, KeysFileError
from trajscope.collector.logs_ingest import LOGS_ACK_DIR, LogsIngest
from trajscope.collector.pipeline import IngestPipeline
from trajscope.collector.redaction import RedactionError
from trajscope.config import ServerSettings, decode_workers, ingest_threads
from trajscope.memory_budget import MIN_BUDGET, MemoryGuard, MemoryPlan, parse_bytes, plan_memory
from trajscope.query.alerting import AlertConfig, AlertConfigError, AlertMonitor, load_rules
from trajscope.query.api import AppState, create_app
from trajscope.retention import RetentionError, RetentionJob, parse_retention
from trajscope.server_metrics import ServerParts, collect
from trajscope.storage.clean_start import DirectoryInUse
from trajscope.storage.duckdb_store import DuckDBStore, StoreError, out_of_space
from trajscope.storage.interface import StoreInvalidated, StoreUnavailable
from trajscope.storage.loader import Loader
from trajscope.storage.quarantine import QUARANTINE_DIR, Quarantine

log = logging.getLogger("trajscope")

# Longest pause between tries to open a store on a full disk.
MAX_SPACE_WAIT_S = 16.0
# Pause before a restart that follows another within a minute (``restart_in_place``).
RESTART_BACKOFF_S = 10.0
_RESTARTED_AT = "TRAJSCOPE_RESTARTED_AT"


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to us: two of them share one event loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _uvicorn(app, host: str, port: int) -> _EmbeddedServer:
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                            access_log=False, timeout_graceful_shutdown=10)
    return _EmbeddedServer(config)


class StartupError(Exception):
    """The server cannot start; the message says why and what to do."""


def check_ports_free(settings: ServerSettings) -> None:
    for label, port in (("OTLP/gRPC", settings.grpc_port), ("OTLP/HTTP", settings.http_port),
                        ("API", settings.api_port)):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((settings.host, port))
            except OSError as exc:
                raise StartupError(f"cannot listen for {label} on {settings.host}:{port}: {exc.strerror}; "
                                   f"choose another port (--{label.split('/')[-1].lower()}-port)") from None


def memory_plan(settings: ServerSettings) -> MemoryPlan:
    budget = parse_bytes(settings.memory_limit)
    if budget is None:
        raise StartupError(f"--memory-limit: cannot read {settings.memory_limit!r} as a size (e.g. 1GiB, 512MiB)")
    if budget < MIN_BUDGET:
        raise StartupError(f"--memory-limit {settings.memory_limit} is below the {MIN_BUDGET >> 20} MiB the server and "
                           "one decode worker need at rest; give at least that (default 1GiB)")
    return plan_memory(budget, parse_bytes(settings.duckdb_memory_limit))


def open_storage(settings: ServerSettings, plan: MemoryPlan, quarantine: Quarantine) -> tuple[DuckDBStore, Loader]:
    """The store and its loader. The staging log lives beside the database; spans a previous run acknowledged
    but did not load are loaded now, before anything new is accepted. While the disk is full, opening waits
    for space (said every try) rather than failing: a restart after DuckDB gave up on a full disk starts here."""
    pause = 1.0
    while True:
        try:
            return _open_storage(settings, plan, quarantine)
        except (DirectoryInUse, StoreError) as exc:
            raise StartupError(str(exc)) from None
        except (duckdb.Error, OSError, StoreUnavailable) as exc:
            if not out_of_space(exc):
                raise StartupError(f"cannot open data directory {settings.data}: {exc}") from None
            print(f"trajscope: the disk holding {settings.data} is full ({exc}); free some space — trying again "
                  f"in {pause:g} s", flush=True)
            time.sleep(pause)
            pause = min(2 * pause, MAX_SPACE_WAIT_S)


def _open_storage(settings: ServerSettings, plan: MemoryPlan, quarantine: Quarantine) -> tuple[DuckDBStore, Loader]:
    store = DuckDBStore(settings.data, memory_limit=plan.duckdb_setting, ingest_threads=ingest_threads(settings))
    try:
        return store, Loader(store, settings.data / "staging", quarantine=quarantine,
                             progress=lambda msg: print(f"trajscope: {msg}", flush=True))
    except BaseException:
        store.close()
        raise


def restart_in_place() -> None:
    """Replace this process with a fresh start of the same command line. The start reopens the store and
    re-applies what the logs hold, as after a crash. A restart less than a minute after the previous one
    waits a little first, so that a store that keeps failing does not spin."""
    last = float(os.environ.get(_RESTARTED_AT, "0") or 0)
    if time.time() - last < 60:
        time.sleep(RESTART_BACKOFF_S)
    os.environ[_RESTARTED_AT] = str(time.time())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)


def load_prices(settings: ServerSettings) -> None:
    try:
        costing.configure(settings.prices)
    except PriceError as exc:
        raise StartupError(f"bad price file: {exc}") from None


def load_redaction(settings: ServerSettings) -> None:
    """The redaction rules, in this process (the decode workers load them too)."""
    try:
        redaction.configure(settings.redact)
    except RedactionError as exc:
        raise StartupError(f"bad redaction rules: {exc}") from None


def load_alerts(settings: ServerSettings) -> AlertConfig | None:
    if settings.alerts is None:
        return None
    try:
        return load_rules(settings.alerts)
    except AlertConfigError as exc:
        raise StartupError(f"bad alert rules: {exc}") from None


def server_access(settings: ServerSettings) -> Access:
    """The keys the server checks; refuses to start open (no key at all) on a non-loopback address unless
    ``--insecure``."""
    try:
        keyring = Keyring(settings.keys_file) if settings.keys_file is not None else None
    except KeysFileError as exc:
        raise StartupError(f"bad keys file: {exc}") from None
    access = Access(settings.api_key, keyring)
    if access.open and not settings.insecure and not _loopback(settings.host):
        raise StartupError(f"refusing to serve {settings.host} without keys: anyone who can reach it could read and "
                           "write every trace. Give --keys-file (trajscope keys add ...) or --api-key, bind "
                           "127.0.0.1, or pass --insecure")
    return access


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve(settings: ServerSettings) -> bool:
    """Serve until stopped; True when the store must be reopened (``restart_in_place``)."""
    access = server_access(settings)
    try:
        retention = parse_retention(list(settings.retention))
    except RetentionError as exc:
        raise StartupError(str(exc)) from None
    check_ports_free(settings)
    load_prices(settings)
    load_redaction(settings)
    alert_config = load_alerts(settings)
    plan = memory_plan(settings)
    workers = decode_workers(settings)
    quarantine = Quarantine(settings.data / QUARANTINE_DIR)
    store, writer = open_storage(settings, plan, quarantine)
    decoder = make_decoder(workers, costing.extra_file(), settings.decoder, settings.redact)
    memory = MemoryGuard(plan, duckdb=store)
    # Also with --decode-backlog 0: what an earlier run acknowledged there is decoded at start.
    ack_log = AckLog(settings.data / ACK_LOG_DIR, quarantine)
    pipeline = IngestPipeline(writer, decoder, max_pending_spans=settings.max_pending_spans,
                              decode_slots=max(1, workers), memory=memory,
                              ack_log=ack_log if settings.decode_backlog > 0 else None,
                              decode_backlog=settings.decode_backlog, admission_wait_s=settings.admission_wait_s)
    memory.ingest_idle = lambda: pipeline.decode_backlog_spans == 0 and writer.pending_rows == 0
    logs_ack_log = AckLog(settings.data / LOGS_ACK_DIR, quarantine)
    logs = LogsIngest(store, logs_ack_log, memory=memory)

    def ingest_stats() -> dict:
        entries, spans = quarantine.counts()
        return {**asdict(pipeline.stats), "pending_spans": writer.pending_rows, **asdict(writer.stats),
                "quarantine_entries": entries, "quarantine_spans": spans,
                **{f"logs_{k}": v for k, v in asdict(logs.stats).items()}}

    state = AppState(store, settings.api_key, ingest_stats, pipeline.sync, settings.sql_timeout_s,
                     caught_up=pipeline.caught_up, read_wait_s=settings.read_wait_s, unloaded=pipeline.unloaded_spans,
                     max_trace_spans=settings.max_trace_spans)
    parts = ServerParts(pipeline, writer, ack_log, logs, logs_ack_log, quarantine, memory, store)
    state.metrics = lambda out: collect(out, parts)
    if workers > 0:  # a big run's latency analysis runs there, beside its trajectory here
        state.analysis_executor = decoder
    monitor = AlertMonitor(store, alert_config) if alert_config else None
    state.alerts = monitor
    state.access = access
    audit = AuditLog(settings.data / AUDIT_FILE)
    state.audit = audit
    if access.keyring is not None:
        access.keyring.on_change = lambda added, revoked, removed: audit.record(
            "keys-file", "keys_changed", added=added, revoked=revoked, removed=removed)
    retention_job = RetentionJob(store, retention, audit, settings.retention_every_s) if retention.any else None
    grpc_server = build_grpc_server(pipeline, settings.host, settings.grpc_port, access, logs)
    otlp_http = _uvicorn(build_http_app(pipeline, access, logs), settings.host, settings.http_port)
    api = _uvicorn(create_app(state), settings.host, settings.api_port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    invalidated: list[StoreInvalidated] = []

    def restart_for(fault: StoreInvalidated) -> None:
        # DuckDB serves no statement on the database again until it is reopened: stop, then start again.
        if not invalidated:
            invalidated.append(fault)
            loop.call_soon_threadsafe(stop.set)

    store.on_invalidated = restart_for

    await pipeline.warm_up(workers)
    memory.start()
    if memory.over():
        log.warning("the server and its workers use %d MiB at rest, above the admission mark (%d MiB) of the "
                    "%d MiB budget: exports will be refused until memory drops; raise --memory-limit",
                    memory.total >> 20, plan.admit_below >> 20, plan.budget >> 20)
    await pipeline.reload_earlier_run(ack_log, progress=lambda msg: print(f"trajscope: {msg}", flush=True))
    await loop.run_in_executor(None, logs.reload_earlier_run, lambda msg: print(f"trajscope: {msg}", flush=True))
    await grpc_server.start()
    tasks = [asyncio.create_task(s.serve()) for s in (otlp_http, api)]
    try:
        while not (otlp_http.started and api.started):
            done = [t for t in tasks if t.done()]
            if done:  # uvicorn exits on bind failure
                raise OSError(f"an HTTP listener failed to start (port in use?) on {settings.host}")
            await asyncio.sleep(0.02)
        state.ready = True
        if monitor:
            monitor.start()
        if retention_job:
            retention_job.start()
        host = settings.host
        print(f"trajscope serving — data in {store.db_path}", flush=True)
        print(f"  OTLP/gRPC  {host}:{settings.grpc_port}", flush=True)
        print(f"  OTLP/HTTP  http://{host}:{settings.http_port}/v1/traces and /v1/logs", flush=True)
        print(f"  API        http://{host}:{settings.api_port}/api/v1  (docs at /docs)", flush=True)
        await stop.wait()
        if invalidated:
            log.error("DuckDB gave up on the database (%s); restarting in place to reopen it: what was "
                      "acknowledged is in the logs and is loaded again at the start", invalidated[0])
        print(f"trajscope: shutting down: draining {pipeline.stats.decoding} acknowledged export(s) still being "
              f"decoded and {writer.pending_rows} span(s) waiting to load…", flush=True)
    finally:
        state.ready = False
        memory.stop()
        if retention_job:
            retention_job.stop()
        if monitor:
            monitor.stop()
        await grpc_server.stop(grace=5)
        for server in (otlp_http, api):
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        await pipeline.drain()  # acknowledged exports still being decoded
        writer.close()
        ack_log.close()
        logs.close()
        decoder.shutdown(wait=True)
        try:
            store.checkpoint()
        except Exception as exc:  # the logs keep whatever the file lacks: the next start re-applies it
            print(f"trajscope: the final checkpoint failed ({exc}); the next start re-applies the logs", flush=True)
        finally:
            store.close()
        print(f"trajscope: stopped ({writer.stats.spans_written} spans written this run)", flush=True)
    return bool(invalidated)


def run(settings: ServerSettings) -> int:
    # A crash in native code (DuckDB, Arrow, gRPC) leaves every thread's Python stack in the log.
    faulthandler.enable()
    try:
        restart = asyncio.run(serve(settings))
    except (StartupError, OSError) as exc:
        print(f"trajscope: {exc}", file=sys.stderr)
        return 1
    if restart:
        restart_in_place()
    return 0
