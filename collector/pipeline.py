"""Ingest pipeline shared by both receivers: backlog check → decode off the event loop → staging log.

An export is acknowledged only when its spans are durable. With an ``AckLog`` (the server's setup), a
protobuf export is validated in the server (``validate``: the verdict decoding will reach, for OTLP's
partial success), its body appended to that fsynced log and acknowledged; decoding runs behind, at most
``decode_backlog`` spans at a time (a full backlog delays the next acknowledgement), and the decoded spans
go to the loader without the staging log, the record leaving the ack log once they are in a checkpointed
store file.
OTLP/JSON exports, and every export without an ``AckLog``, are decoded first and acknowledged once their
spans are in the staging log (see ``storage.loader``, which loads them into the store behind the
acknowledgement). Errors are typed so each receiver can answer with its protocol's status:
``InvalidRequest`` (not retryable), ``Overloaded`` and ``Unavailable`` (retryable).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from trajscope.collector import redaction
from trajscope.collector.ack_log import AckLog
from trajscope.collector.decode_batches import DecodeBatcher, SharedHandOver
from trajscope.collector.decode_pool import warm_up
from trajscope.collector.otlp_decode import DecodedBatch, InvalidRequest, decode_request
from trajscope.collector.otlp_json import decode_json_request
from trajscope.collector.validate import validate_request
from trajscope.storage.loader import Loader, WriterClosed, ipc_bytes

if TYPE_CHECKING:
    from trajscope.memory_budget import MemoryGuard

log = logging.getLogger(__name__)

Encoding = Literal["protobuf", "json"]

__all__ = ["ExportOutcome", "IngestPipeline", "IngestStats", "InvalidRequest", "Overloaded", "Unavailable"]


# Spans decoded and waiting to load past which exports are refused (Overloaded): bounds the loader's memory
# and how far behind a reader can be.
MAX_PENDING_SPANS = 65_536
# How long an export waits for room in the loader's or the decode backlog before it is refused.
ADMISSION_WAIT_S = 2.0
LOADER_POLL_S = 0.005
WARN_EVERY_S = 10.0

# Exports of an earlier run decoded at once at start-up (the batcher groups them across the workers).
RELOAD_CHUNK = 64


class Overloaded(Exception):
    """More arrives than the server can store: the client should retry after ``retry_after_s`` (gRPC
    RESOURCE_EXHAUSTED with a RetryInfo, HTTP 429 with Retry-After; the OpenTelemetry exporters retry both)."""

    def __init__(self, what: str, retry_after_s: int = 1) -> None:
        super().__init__(f"{what}; retry in {retry_after_s} s")
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
    failed_after_ack: int = 0  # acknowledged exports whose decode or staging failed (quarantined)
    decoding: int = 0  # acknowledged exports not yet decoded and handed to the loader
    groups: int = 0  # decode jobs that took several queued exports at once
    by_encoding: dict[str, int] = field(default_factory=dict)
    redactions: dict[str, int] = field(default_factory=dict)  # spans changed per redaction rule


@dataclass(frozen=True)
class _Decoded:
    """What a decode worker sends back: the accepted spans already as an Arrow IPC stream, which is
    exactly what the staging log stores (no second serialisation in the server process)."""

    payload: bytes
    accepted: int
    rejected: int
    error_message: str
    redactions: dict[str, int] = field(default_factory=dict)  # spans each redaction rule changed


def _decode(body: bytes, encoding: Encoding, project: str) -> _Decoded:
    # Trace summaries are left to the loader: a vectorised pass has a fixed cost, shared by a whole load
    # rather than paid per export (docs/performance.md).
    batch: DecodedBatch = (decode_json_request(body, project) if encoding == "json"
                           else decode_request(body, project))
    table, redactions = redaction.redacted(batch.table)  # before anything is staged or stored
    payload = ipc_bytes(table) if batch.accepted else b""
    return _Decoded(payload, batch.accepted, batch.rejected, batch.error_message, redactions)


def _warm_up_request() -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x01" * 8, "warm-up"
    return request.SerializeToString()


_WARM_UP_REQUEST = _warm_up_request()


class IngestPipeline:
    def __init__(self, writer: Loader, decoder: Executor, *, max_pending_spans: int = MAX_PENDING_SPANS,
                 decode_slots: int = 1, ack_log: AckLog | None = None, decode_backlog: int = 8192,
                 admission_wait_s: float = ADMISSION_WAIT_S, memory: MemoryGuard | None = None):
        """``decode_slots``: decode jobs in flight at once (one per decode worker); protobuf exports that
        arrive while all are busy are decoded together (``decode_batches``). ``ack_log``: acknowledge
        protobuf exports on it before decoding, with up to ``decode_backlog`` spans of them not yet decoded
        (an export bigger than that on its own when nothing else is). An export finding ``max_pending_spans``
        spans waiting to load, or no room in the decode backlog within ``admission_wait_s``, is refused as
        ``Overloaded``: answered well within the exporters' 10 s timeout, never queued without bound. So is one
        arriving while ``memory`` (the budget's guard) stays over its admission mark that long."""
        self._writer = writer
        writer.expect_more(lambda: self.stats.decoding > 0)  # acknowledged exports still being decoded
        self._decoder = decoder
        self._max_pending = max_pending_spans
        self._memory = memory
        self.stats = IngestStats()
        self._batcher = DecodeBatcher(decoder, _decode, decode_slots, self.stats)
        self._ack_log = ack_log
        self._backlog_budget = max(1, decode_backlog)
        self._admission_wait_s = admission_wait_s
        self._last_refusal_warning = -WARN_EVERY_S
        self._backlog_spans = 0
        self._backlog_room = asyncio.Condition()
        self._behind: set[asyncio.Task] = set()
        self._appending: set[asyncio.Future] = set()
        # Exports acknowledged on the ack log, and those of them handed to the loader since (or set aside): the read
        # barrier waits for the second to catch up with the first, from any thread.
        self._settled = threading.Condition()
        self._acked_early = 0
        self._handed_early = 0

    async def warm_up(self, workers: int) -> None:
        """Run one real decode in every decode worker before the first export arrives."""
        await warm_up(self._decoder, workers, _decode, _WARM_UP_REQUEST, "protobuf", "default")

    async def export(self, body: bytes, encoding: Encoding, project: str) -> ExportOutcome:
        """Durably store one export request; see the module docstring for the errors."""
        stats = self.stats
        stats.requests += 1
        stats.by_encoding[encoding] = stats.by_encoding.get(encoding, 0) + 1
        if self._writer.pending_rows >= self._max_pending and not await self._room(self._loader_full):
            stats.overloaded += 1
            raise Overloaded(f"ingest backlog full ({self._writer.pending_rows} spans waiting to load, limit "
                             f"{self._max_pending}) for {self._admission_wait_s:g} s")
        memory = self._memory
        if memory is not None and memory.over() and not await self._room(memory.over):
            stats.overloaded += 1
            raise Overloaded(f"{memory.refusal()} for {self._admission_wait_s:g} s")
        if self._ack_log is not None and encoding == "protobuf":
            return await self._acknowledge_first(body, project)
        try:
            accepted, rejected, message = await self._decode_and_stage(body, encoding, project)
        except InvalidRequest:
            stats.invalid_requests += 1
            raise
        except (WriterClosed, Unavailable):
            stats.failed += 1
            raise
        self._count(accepted, rejected, message)
        return ExportOutcome(accepted, rejected, message)

    def _loader_full(self) -> bool:
        return self._writer.pending_rows >= self._max_pending

    async def _room(self, full: Callable[[], bool]) -> bool:
        """Wait up to ``admission_wait_s`` while ``full()`` (the loader's backlog at its cap, memory over the
        mark): a burst slows the acknowledgements to the loader's pace; only a condition that does not clear
        in time refuses exports."""
        deadline = time.monotonic() + self._admission_wait_s
        while full():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(LOADER_POLL_S)
        return True

    def _count(self, accepted: int, rejected: int, message: str) -> None:
        self.stats.spans_accepted += accepted
        self.stats.spans_rejected += rejected
        if rejected:
            log.warning("partial success: %s", message)

    async def _decode_and_stage(self, body: bytes, encoding: Encoding, project: str) -> tuple[int, int, str]:
        """Decode an export and stage its spans: (accepted, rejected, partial-success message)."""
        batch, accepted, group = await self._decode(body, encoding, project)
        if accepted:
            try:
                # The writer's futures cannot be cancelled: an export giving up (its client went away) leaves
                # the others of its group waiting on the same one.
                await asyncio.wrap_future(self._hand_over(self._writer.submit, batch, accepted, group))
            except WriterClosed as exc:
                raise Unavailable(str(exc)) from exc
            except Exception as exc:
                raise Unavailable(f"storage failed to commit the spans: {exc}") from exc
        return accepted, batch.rejected, batch.error_message

    async def _decode(self, body: bytes, encoding: Encoding, project: str,
                      validated: int | None = None) -> tuple[_Decoded, int, SharedHandOver | None]:
        """(decoded batch, this export's accepted spans, the group it was decoded with or None).
        ``validated``: its valid spans, when ``validate`` has parsed it already."""
        if encoding == "protobuf":
            got = await self._batcher.decode_protobuf(body, project, validated)
        else:
            got = await self._batcher.decode_one(body, encoding, project)
        if isinstance(got, tuple):  # decoded with other exports: their spans are handed over once, together
            return got
        return got, got.accepted, None

    def _hand_over(self, submit: Callable[[bytes, int], Future[int]], batch: _Decoded, accepted: int,
                   group: SharedHandOver | None) -> Future[int]:
        """The writer's future for an export's spans; a group's spans are submitted once, by whichever of
        its exports gets here first (and its redactions counted then)."""
        if group is None:
            self._count_redactions(batch.redactions)
            return submit(batch.payload, accepted)
        if group.writer_future is None:
            self._count_redactions(batch.redactions)
            group.writer_future = submit(batch.payload, batch.accepted)
        return group.writer_future

    def _count_redactions(self, found: dict[str, int]) -> None:
        for rule, spans in found.items():
            self.stats.redactions[rule] = self.stats.redactions.get(rule, 0) + spans

    # -- acknowledged on the ack log, decoded behind --------------------------------------------------
    async def _acknowledge_first(self, body: bytes, project: str) -> ExportOutcome:
        assert self._ack_log is not None
        try:
            verdict = validate_request(body)
        except InvalidRequest:
            self.stats.invalid_requests += 1
            raise
        if verdict.accepted:
            if not await self._reserve(verdict.accepted, self._admission_wait_s):
                self.stats.overloaded += 1
                raise Overloaded(f"decode backlog full ({self._backlog_spans} spans acknowledged and not yet "
                                 f"decoded, limit {self._backlog_budget}) for {self._admission_wait_s:g} s")
            append = asyncio.wrap_future(self._ack_log.append(project, body))
            self._appending.add(append)
            append.add_done_callback(self._appending.discard)
            try:
                segment = await asyncio.shield(append)
            except asyncio.CancelledError:
                # The client went away, but the record may still land in the log: decode it all the same,
                # or its segment (and every later one) would stay until the next start.
                append.add_done_callback(
                    lambda done: self._logged_after_client_left(done, body, project, verdict.accepted))
                raise
            except Exception as exc:
                await self._unreserve(verdict.accepted)
                self.stats.failed += 1
                self._warn_refusing(exc)
                raise Unavailable(f"storage failed to log the export: {exc}") from exc
            self._start_behind(body, project, segment, verdict.accepted)
        self._count(verdict.accepted, verdict.rejected, verdict.error_message)
        return ExportOutcome(verdict.accepted, verdict.rejected, verdict.error_message)

    def _warn_refusing(self, exc: BaseException) -> None:
        """Say why exports are refused (a full disk, an I/O error), at most once per ``WARN_EVERY_S``."""
        now = time.monotonic()
        if now - self._last_refusal_warning >= WARN_EVERY_S:
            self._last_refusal_warning = now
            log.warning("cannot log acknowledged exports (%s): refusing them as retryable until it works again",
                        exc)

    def _start_behind(self, body: bytes, project: str, segment: int, spans: int) -> None:
        with self._settled:
            self._acked_early += 1
        self.stats.decoding += 1
        task = asyncio.get_running_loop().create_task(self._decode_behind(body, project, segment, spans))
        self._behind.add(task)
        task.add_done_callback(self._behind.discard)

    def _logged_after_client_left(self, append: asyncio.Future, body: bytes, project: str, spans: int) -> None:
        if append.cancelled() or append.exception() is not None:
            task = asyncio.get_running_loop().create_task(self._unreserve(spans))
            self._behind.add(task)
            task.add_done_callback(self._behind.discard)
        else:
            self._start_behind(body, project, append.result(), spans)

    async def _reserve(self, spans: int, timeout: float | None = None) -> bool:
        """Wait for room in the decode backlog (False: none within ``timeout``). Counted in spans, not exports:
        16 exports of 2,048 spans left ~32k spans to decode and load after the last acknowledgement of a
        100k-span burst."""
        def room() -> bool:
            return self._backlog_spans == 0 or self._backlog_spans + spans <= self._backlog_budget

        async with self._backlog_room:
            if not room():
                try:
                    await asyncio.wait_for(self._backlog_room.wait_for(room), timeout)
                except TimeoutError:
                    return False  # the lock is held again: nothing was reserved
            self._backlog_spans += spans
            return True

    async def _unreserve(self, spans: int) -> None:
        async with self._backlog_room:
            self._backlog_spans -= spans
            self._backlog_room.notify_all()

    async def _decode_behind(self, body: bytes, project: str, segment: int, expected: int) -> None:
        """Decode an acknowledged export and hand its spans to the loader; its record leaves the ack log
        once they are in a checkpointed store file (the ack log is what keeps them durable until then)."""
        assert self._ack_log is not None
        ack_log = self._ack_log
        release = True
        try:
            batch, accepted, group = await self._decode(body, "protobuf", project, expected)
            if accepted != expected:  # the validation and the decoders disagree: a bug, said loudly
                log.error("an export validated with %d spans was decoded with %d", expected, accepted)
            if accepted:
                loaded = self._hand_over(self._writer.submit_acknowledged, batch, accepted, group)
                # Runs on the load thread (or here, if already loaded).
                loaded.add_done_callback(lambda _: ack_log.release(segment))
                release = False
        except asyncio.CancelledError:
            release = False  # the loop is going away mid-decode: the record waits for the next start
            raise
        except WriterClosed:
            release = False  # shutting down: the record waits for the next start
        except Exception as exc:
            self.stats.failed_after_ack += 1
            try:
                ack_log.quarantine(project, body, exc, expected)
            except OSError:
                # Not even quarantined: the record stays in the log and is decoded again at the next start.
                log.exception("could not quarantine an acknowledged export; it stays in the acknowledgement log")
                release = False
        finally:
            if release:
                ack_log.release(segment)
            self.stats.decoding -= 1
            await self._unreserve(expected)
            with self._settled:
                self._handed_early += 1
                self._settled.notify_all()

    async def reload_earlier_run(self, ack_log: AckLog, progress: Callable[[str], None] | None = None) -> int:
        """Decode and stage what an earlier run acknowledged on ``ack_log`` but had not loaded (before the
        receivers start). Returns the number of exports. They are decoded ``RELOAD_CHUNK`` at a time, so
        the decode workers take them in groups as under load."""
        count, chunk = 0, []
        last_said = time.monotonic()
        for item in ack_log.left_by_earlier_run():
            if not count and progress:
                progress("decoding the exports a previous run acknowledged but had not loaded…")
            count += 1
            chunk.append(item)
            if len(chunk) == RELOAD_CHUNK:
                await self._reload(ack_log, chunk)
                chunk = []
                if progress and time.monotonic() - last_said >= 2.0:
                    progress(f"… {count} exports decoded")
                    last_said = time.monotonic()
        if chunk:
            await self._reload(ack_log, chunk)
        if count and progress:
            progress(f"decoded and staged {count} acknowledged export(s) of a previous run")
        ack_log.earlier_run_reloaded()
        return count

    async def _reload(self, ack_log: AckLog, chunk: list[tuple[str, bytes]]) -> None:
        results = await asyncio.gather(*(self._decode_and_stage(body, "protobuf", project)
                                         for project, body in chunk), return_exceptions=True)
        for (project, body), result in zip(chunk, results, strict=True):
            if isinstance(result, BaseException):
                self.stats.failed_after_ack += 1
                ack_log.quarantine(project, body, result)

    def caught_up(self) -> bool:
        """Whether every acknowledged span is loaded: ``sync`` would return at once."""
        with self._settled:
            handed = self._handed_early >= self._acked_early
        return handed and self._writer.caught_up()

    @property
    def decode_backlog_spans(self) -> int:
        return self._backlog_spans

    def unloaded_spans(self) -> int:
        """Spans acknowledged and not yet queryable: being decoded, or waiting to load."""
        return self._backlog_spans + self._writer.pending_rows

    def sync(self, timeout: float = 30.0) -> bool:
        """Wait until every span acknowledged before this call is loaded (queryable). False on timeout.
        From any thread but the event loop's (the exports it waits for are decoded there)."""
        deadline = time.monotonic() + timeout
        with self._settled:
            target = self._acked_early
            if not self._settled.wait_for(lambda: self._handed_early >= target, timeout):
                return False
        return self._writer.sync(max(0.0, deadline - time.monotonic()))

    async def drain(self) -> None:
        """Wait for every acknowledged export to be staged (at shutdown, after the receivers stop)."""
        while self._behind or self._appending:
            await asyncio.gather(*self._behind, *self._appending, return_exceptions=True)
