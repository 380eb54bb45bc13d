"""What ``GET /metrics`` reports of the running server: ingest counters by outcome, backlogs, the logs' size
and age, load latency, memory of the server and its workers against the budget."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from trajscope.collector.ack_log import AckLog
from trajscope.collector.logs_ingest import LogsIngest
from trajscope.collector.pipeline import IngestPipeline
from trajscope.memory_budget import MemoryGuard, heap_bytes
from trajscope.metrics import Exposition
from trajscope.storage.duckdb_store import DuckDBStore
from trajscope.storage.loader import Loader
from trajscope.storage.quarantine import Quarantine


@dataclass
class ServerParts:
    pipeline: IngestPipeline
    writer: Loader
    ack_log: AckLog
    logs: LogsIngest
    logs_ack_log: AckLog
    quarantine: Quarantine
    memory: MemoryGuard
    store: DuckDBStore


def collect(out: Exposition, parts: ServerParts) -> None:
    p, w = parts.pipeline.stats, parts.writer.stats
    out.counter("trajscope_otlp_requests_total", p.requests, "OTLP export requests received", signal="traces")
    out.counter("trajscope_otlp_requests_total", parts.logs.stats.requests, "", signal="logs")
    out.counter("trajscope_spans_received_total", p.spans_accepted + p.spans_rejected,
                "spans in export requests that parsed")
    out.counter("trajscope_spans_accepted_total", p.spans_accepted, "spans acknowledged (durable)")
    out.counter("trajscope_spans_refused_total", p.spans_rejected,
                "spans refused one by one through partial success", reason="invalid_span")
    for reason, count in (("invalid_request", p.invalid_requests), ("overloaded", p.overloaded),
                          ("unavailable", p.failed)):
        out.counter("trajscope_exports_refused_total", count, "whole export requests refused, by reason",
                    reason=reason, signal="traces")
    out.counter("trajscope_exports_refused_total", parts.logs.stats.invalid_requests, "", reason="invalid_request",
                signal="logs")
    out.counter("trajscope_exports_refused_total", parts.logs.stats.overloaded, "", reason="overloaded",
                signal="logs")
    out.counter("trajscope_exports_failed_after_ack_total", p.failed_after_ack,
                "acknowledged exports whose decode failed (kept in quarantine)")
    out.counter("trajscope_log_records_accepted_total", parts.logs.stats.records_accepted, "OTLP log records stored")
    out.counter("trajscope_log_records_refused_total", parts.logs.stats.records_rejected,
                "OTLP log records refused through partial success")
    for signal, found in (("traces", p.redactions), ("logs", parts.logs.stats.redactions)):
        for rule, count in sorted(found.items()):
            out.counter("trajscope_redactions_total", count, "spans or log records a redaction rule changed before "
                        "storage", rule=rule, signal=signal)
    out.counter("trajscope_spans_written_total", w.spans_written, "spans loaded into the store")
    out.counter("trajscope_spans_duplicate_total", w.spans_duplicate, "spans loaded again and skipped (retries)")
    out.counter("trajscope_loads_total", w.loads, "loads into the store")
    out.counter("trajscope_load_failures_total", w.load_failures, "loads that failed (retried or quarantined)")
    out.counter("trajscope_checkpoints_total", w.checkpoints, "store checkpoints")
    out.counter("trajscope_checkpoint_failures_total", w.checkpoint_failures, "store checkpoints that failed")
    out.counter("trajscope_store_reattaches_total", w.reattaches,
                "times the database file was attached again, dropping DuckDB's in-memory metadata")
    out.histogram("trajscope_load_seconds", parts.writer.load_latency, "time per load into the store")
    out.gauge("trajscope_decode_backlog_spans", parts.pipeline.decode_backlog_spans,
              "spans acknowledged and not yet decoded")
    out.gauge("trajscope_decoding_exports", p.decoding, "acknowledged exports being decoded")
    out.gauge("trajscope_load_backlog_spans", parts.writer.pending_rows, "decoded spans waiting to load")
    for signal, ack_log in (("traces", parts.ack_log), ("logs", parts.logs_ack_log)):
        size, age = ack_log.backlog()
        out.gauge("trajscope_ack_log_bytes", size, "bytes in the acknowledgement log", signal=signal)
        out.gauge("trajscope_ack_log_oldest_unreleased_seconds", age,
                  "age of the oldest record not yet in a checkpointed store file", signal=signal)
    entries, spans = parts.quarantine.counts()
    out.gauge("trajscope_quarantine_entries", entries, "exports and loads set aside in quarantine")
    out.gauge("trajscope_quarantine_spans", spans, "spans in quarantine")
    guard = parts.memory
    out.gauge("trajscope_memory_pss_bytes", guard.server, "memory in use (PSS, last sample)", process="server")
    out.gauge("trajscope_memory_pss_bytes", guard.workers, "", process="workers")
    out.gauge("trajscope_memory_budget_bytes", guard.plan.budget, "the memory budget (--memory-limit)")
    out.gauge("trajscope_memory_admission_bytes", guard.admission_mark(),
              "measured memory above which exports are refused")
    out.gauge("trajscope_memory_peak_bytes", guard.peak, "highest measured memory since start")
    out.gauge("trajscope_memory_outgrown_bytes", guard.outgrown,
              "DuckDB memory the store's indexes hold past the budget's room for them (raise --memory-limit)")
    out.gauge("trajscope_memory_held_elsewhere_bytes", guard.held_elsewhere,
              "memory over the admission mark that refusing exports did not free (the mark moved past it)")
    out.counter("trajscope_memory_refusals_total", guard.refusals, "exports refused while memory was over the mark")
    out.gauge("trajscope_arrow_memory_bytes", pa.total_allocated_bytes(), "Arrow buffers allocated in the server")
    heap = heap_bytes()
    if heap is not None:
        out.gauge("trajscope_malloc_in_use_bytes", heap, "the server's C heap (glibc malloc) in use")
    out.gauge("trajscope_duckdb_memory_limit_bytes", guard.duckdb_limit, "DuckDB's cap now (grows with its indexes)")
    for tag, used in parts.store.memory_by_tag().items():
        out.gauge("trajscope_duckdb_memory_bytes", used, "DuckDB buffer memory by what holds it", tag=tag)
