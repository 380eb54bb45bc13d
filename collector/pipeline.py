"""Ingest pipeline shared by both receivers: backlog check → decode off the event loop → staging log.

An export is acknowledged only when its spans are durable (in the fsynced staging log; see
``storage.staged_writer``, which loads them into the store behind the acknowledgement). Errors are
typed so each receiver can answer with its protocol's status: ``InvalidRequest`` (not retryable),
``Overloaded`` and ``Unavailable`` (retryable).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Literal

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from trajscope.collector.decode_batches import DecodeBatcher
from trajscope.collector.decode_pool import warm_up
from trajscope.collector.otlp_decode import DecodedBatch, InvalidRequest, decode_request
from trajscope.collector.otlp_json import decode_json_request
from trajscope.storage.staged_writer import StagedWriter, WriterClosed, ipc_bytes

log = logging.getLogger(__name__)

Encoding = Literal["protobuf", "json"]

__all__ = ["ExportOutcome", "IngestPipeline", "IngestStats", "InvalidRequest", "Overloaded", "Unavailable"]


class Overloaded(Exception):
    """The backlog is full; the client should retry after ``retry_after_s``."""

    def __init__(self, pending: int, limit: int, retry_after_s: int = 1) -> None:
        super().__init__(f"ingest backlog full ({pending} spans waiting, limit {limit}); retry later")
        self.retry_after_s = retry_after_s


class Unavailable(Exception):
    """The spans could not be stored (shutting down, storage failure); retrying may succeed."""


@dataclass(frozen=True)
class ExportOutcome:
    accepted: int
    rejected: int = 0
    error_message: str = ""


@dataclass
class IngestStats:
    requests: int = 0
    spans_accepted: int = 0
    spans_rejected: int = 0
    invalid_requests: int = 0
    overloaded: int = 0
    failed: int = 0
    groups: int = 0  # decode jobs that took several queued exports at once
    by_encoding: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Decoded:
    """What a decode worker sends back: the accepted spans already as an Arrow IPC stream, which is
    exactly what the staging log stores (no second serialisation in the server process)."""

    payload: bytes
    accepted: int
    rejected: int
    error_message: str


def _decode(body: bytes, encoding: Encoding, project: str) -> _Decoded:
    # Trace summaries are left to the loader: over a 32k-span load they cost ~1.7 µs/span, over one
    # 512-span export ~4.5 (a vectorised pass has a fixed cost of ~2 ms; bench/README.md).
    batch: DecodedBatch = (decode_json_request(body, project) if encoding == "json"
                           else decode_request(body, project))
    payload = ipc_bytes(batch.table) if batch.accepted else b""
    return _Decoded(payload, batch.accepted, batch.rejected, batch.error_message)


def _warm_up_request() -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x01" * 8, "warm-up"
    return request.SerializeToString()


_WARM_UP_REQUEST = _warm_up_request()


class IngestPipeline:
    def __init__(self, writer: StagedWriter, decoder: Executor, *, max_pending_spans: int = 500_000,
                 decode_slots: int = 1):
        """``decode_slots``: decode jobs in flight at once (one per decode worker); protobuf exports that
        arrive while all are busy are decoded together (``decode_batches``)."""
        self._writer = writer
        self._decoder = decoder
        self._max_pending = max_pending_spans
        self.stats = IngestStats()
        self._batcher = DecodeBatcher(decoder, _decode, decode_slots, self.stats)

    async def warm_up(self, workers: int) -> None:
        """Run one real decode in every decode worker before the first export arrives."""
        await warm_up(self._decoder, workers, _decode, _WARM_UP_REQUEST, "protobuf", "default")

    async def export(self, body: bytes, encoding: Encoding, project: str) -> ExportOutcome:
        """Decode and durably store one export request; see the module docstring for the errors."""
        stats = self.stats
        stats.requests += 1
        stats.by_encoding[encoding] = stats.by_encoding.get(encoding, 0) + 1
        pending = self._writer.pending_rows
        if pending >= self._max_pending:
            stats.overloaded += 1
            raise Overloaded(pending, self._max_pending)
        try:
            if encoding == "protobuf":
                got = await self._batcher.decode_protobuf(body, project)
            else:
                got = await self._batcher.decode_one(body, encoding, project)
        except InvalidRequest:
            stats.invalid_requests += 1
            raise
        group = None
        if isinstance(got, tuple):  # decoded with other exports: their spans are staged once, together
            batch, accepted, group = got
        else:
            batch, accepted = got, got.accepted
            stats.spans_rejected += batch.rejected
            if batch.rejected:
                log.warning("partial success: %s", batch.error_message)
        if accepted:
            try:
                if group is None:
                    await self._stage(batch)
                else:
                    if group.staged is None:
                        group.staged = self._stage(batch)
                    # shielded: one export giving up (its client went away) must not cancel the others'
                    await asyncio.shield(group.staged)
            except WriterClosed as exc:
                stats.failed += 1
                raise Unavailable(str(exc)) from exc
            except Exception as exc:
                stats.failed += 1
                raise Unavailable(f"storage failed to commit the spans: {exc}") from exc
            stats.spans_accepted += accepted
        return ExportOutcome(accepted, batch.rejected, batch.error_message)

    def _stage(self, batch: _Decoded) -> asyncio.Future:
        return asyncio.wrap_future(self._writer.submit(batch.payload, batch.accepted))
