"""Exports that queue while every decode worker is busy are decoded together, as one request.

A decode has a fixed cost per request (a few hundred NumPy and Arrow calls) besides its cost per span, so
bigger jobs cost less per span (``bench/decode.py --batch``). So at most one job per worker is in flight;
protobuf exports that arrive meanwhile wait here, and the next free worker takes all of them (same project,
within ``MAX_GROUP_BYTES``) as one job.

Two serialised ``ExportTraceServiceRequest`` messages concatenated are one valid message holding both
requests' resource spans (protobuf merges repeated fields), provided each is well formed on its own — a
truncated request could otherwise swallow the next one's bytes. The worker therefore parses each body
first, counts its spans, and decodes the concatenation; anything but a clean result (a malformed body,
rejected spans, a partial-success message) sends every export of the group back to be decoded alone, so
errors are reported exactly as for a single export. The group is staged as one batch: its exports are
acknowledged together, once that batch is durable.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from trajscope.collector.ingest_proto import RawSpansRequest

# A group's concatenated bodies stay under this (~3,000 spans of ~700 wire bytes): the fixed cost of a job
# is mostly shared by then, the last job of a burst, decoded after the last acknowledgement, stays short, and
# the decode worker's working set (what it keeps of its peak) stays small. Larger bounds measured slower
# end-to-end or bigger, smaller ones slower (docs/performance.md).
MAX_GROUP_BYTES = 2 << 20


@dataclass(frozen=True)
class GroupDecoded:
    """A group's decode: the decoder's result for all bodies together, and each body's span count."""

    decoded: Any
    span_counts: list[int]


def decode_group(decode: Callable[[bytes, str, str], Any], bodies: list[bytes], project: str,
                 counts: list[int] | None = None) -> GroupDecoded | None:
    """In a decode worker: the bodies decoded as one request, or None when they must be decoded one by one
    (one is malformed, or some span was rejected). ``counts``: each body's valid spans, when the bodies
    were validated already (``validate``: parsed whole, so none can swallow the next); else each body is
    parsed here first."""
    if counts is None:
        counts = []
        request = RawSpansRequest()
        for body in bodies:
            try:
                request.ParseFromString(body)
            except DecodeError:
                return None
            counts.append(sum(len(scope.spans) for resource in request.resource_spans
                              for scope in resource.scope_spans))
    try:
        decoded = decode(b"".join(bodies), "protobuf", project)
    except Exception:  # the exports decoded alone give each its own error
        return None
    if decoded.rejected or decoded.error_message or decoded.accepted != sum(counts):
        return None
    return GroupDecoded(decoded, counts)


@dataclass
class _Waiting:
    body: bytes
    project: str
    future: asyncio.Future
    spans: int | None  # valid spans, when validated before decoding


class DecodeBatcher:
    """Runs ``decode(body, encoding, project)`` in ``executor`` with at most ``slots`` jobs in flight; a
    protobuf export that has to wait may share its job with others (see the module docstring).

    ``decode_one`` returns the decoder's result for one export; ``decode_protobuf`` returns either that or,
    for an export decoded within a group, ``(group result, this export's span count, group)`` — the caller
    stages the group's spans once."""

    def __init__(self, executor: Executor, decode: Callable[[bytes, str, str], Any], slots: int,
                 stats: Any) -> None:
        self._executor = executor
        self._decode = decode
        self._slots = max(1, slots)
        self._in_flight = 0
        self._waiting: deque[_Waiting] = deque()
        self._stats = stats  # its ``groups`` counts the jobs that decoded more than one export

    async def decode_one(self, body: bytes, encoding: str, project: str) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._decode, body, encoding, project)

    async def decode_protobuf(self, body: bytes, project: str, spans: int | None = None) -> Any:
        """``spans``: the export's valid spans when it was validated (``validate``), which spares the group
        job parsing it again."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(body, project, future, spans))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        while self._waiting and self._in_flight < self._slots:
            first = self._waiting.popleft()
            group, size = [first], len(first.body)
            while (self._waiting and self._waiting[0].project == first.project
                   and size + len(self._waiting[0].body) <= MAX_GROUP_BYTES):
                item = self._waiting.popleft()
                group.append(item)
                size += len(item.body)
            self._submit(group)

    def _submit(self, group: list[_Waiting]) -> None:
        self._in_flight += 1
        loop = asyncio.get_running_loop()
        first = group[0]
        if len(group) == 1:
            job = loop.run_in_executor(self._executor, self._decode, first.body, "protobuf", first.project)
        else:
            counts = [item.spans for item in group]
            job = loop.run_in_executor(self._executor, decode_group, self._decode, [item.body for item in group],
                                       first.project, None if None in counts else counts)
        job.add_done_callback(lambda done: self._finished(done, group))

    def _finished(self, done: asyncio.Future, group: list[_Waiting]) -> None:
        self._in_flight -= 1
        try:
            error = done.exception()
        except asyncio.CancelledError as exc:
            error = exc
        if len(group) == 1:
            _settle(group[0].future, done.result() if error is None else None, error)
        elif error is None and done.result() is not None:
            self._stats.groups += 1
            result: GroupDecoded = done.result()
            shared = SharedHandOver()
            for item, count in zip(group, result.span_counts, strict=True):
                _settle(item.future, (result.decoded, count, shared), None)
        else:  # each export of the group alone, at once (their errors are owed now, not after the queue)
            for item in group:
                self._submit([item])
        self._dispatch()


class SharedHandOver:
    """The hand-over of a group's spans to the writer, shared by its exports: done by whichever gets there
    first; ``writer_future`` is the writer's future for them."""

    writer_future: Future | None = None


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # the export was cancelled (client gone)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
