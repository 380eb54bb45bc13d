"""The protobuf hot path: decode a whole export request column by column.

The reference walker (``otlp_decode.decode_message``) reads every span through the upb objects and turns
every attribute into Python objects, which costs most of a core per ingest stream (docs/performance.md). Here the
request is parsed with ``ingest_proto`` (spans left as raw bytes), the fields of all spans are read with
NumPy (``wire``), and their attributes are decoded, turned into JSON and normalised as columns
(``attribute_columns``, ``normalise_columns``). Python touches only what few spans have: events, links,
guardrail checks, costs.

Returns ``None`` for what it does not read (a request that does not parse, fields in a non-canonical
encoding, numbers beyond int64, out-of-range enums): the caller then uses the reference walker, which gives
the same rows for valid input and the right error for invalid input. Tests decode the same requests both
ways and compare.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
from google.protobuf.message import DecodeError
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from trajscope.analysis import guardrails, retrieval
from trajscope.analysis.pricing import span_cost
from trajscope.collector import attribute_columns, wire
from trajscope.collector.costing import prices
from trajscope.collector.ingest_proto import RawSpansRequest
from trajscope.collector.normalise_columns import normalise_columns, wanted
from trajscope.collector.span_parts import (
    MAX_MESSAGES,
    SPAN_KINDS,
    STATUS_CODES,
    DecodedBatch,
    dumps,
    events_of,
    links_of,
    problem_message,
    rejection_message,
    resource_part_of,
    scope_part_of,
    span_problem,
)
from trajscope.storage.load_marks import UNSTAMPED
from trajscope.storage.schema import RETRIEVAL, SPAN_SCHEMA

log = logging.getLogger(__name__)

_INT64_MAX = 2**63 - 1
_RESOURCE_COLUMNS = ("resource_attributes", "resource_dropped_attributes_count", "resource_schema_url")
_SCOPE_COLUMNS = ("scope_name", "scope_version", "scope_attributes", "scope_dropped_attributes_count",
                  "scope_schema_url")
# Span field numbers (opentelemetry/proto/trace/v1/trace.proto).
_TRACE_ID, _SPAN_ID, _TRACE_STATE, _PARENT, _NAME, _KIND, _START, _END = 1, 2, 3, 4, 5, 6, 7, 8
_ATTRIBUTES, _DROPPED_ATTRIBUTES, _EVENTS, _DROPPED_EVENTS = 9, 10, 11, 12
_LINKS, _DROPPED_LINKS, _STATUS, _FLAGS = 13, 14, 15, 16
_STATUS_MESSAGE, _STATUS_CODE = 2, 3
_HEX = np.array([f"{i:02x}".encode() for i in range(256)]).view(np.uint16)


def decode_request(payload: bytes, default_project: str = "default", *, strict: bool = False) -> DecodedBatch | None:
    """The decoded request, or None when the reference walker has to decode it (see the module doc).

    An unexpected error here (a bug) is logged and the reference walker decodes the request, so no export
    fails because of the fast path; tests pass ``strict`` to see such errors."""
    request = RawSpansRequest()
    try:
        request.ParseFromString(payload)
        return _decode(request, default_project)
    except (DecodeError, wire.Irregular):
        return None
    except Exception:
        if strict:
            raise
        log.exception("columnar decode failed; decoding this request with the reference walker")
        return None


def _hex(buf: np.ndarray, starts: np.ndarray, width: int, valid: np.ndarray | None = None) -> pa.StringArray:
    """Ids of ``width`` bytes at ``starts`` as lowercase hex (null where not ``valid``)."""
    n = len(starts)
    text = _HEX[wire.windows(buf, starts, width)].tobytes()
    offsets = np.arange(0, 2 * width * n + 1, 2 * width, dtype=np.int32)
    mask = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text), mask)


def _all_zero(buf: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    return ~wire.windows(buf, starts, width).any(axis=1)


class _Fields:
    """Single fields of the scanned messages (absent fields read as proto3 defaults)."""

    def __init__(self, blob: bytes, buf: np.ndarray, fields: wire.Fields, count: int) -> None:
        self.blob, self.buf, self.fields, self.count = blob, buf, fields, count

    def at(self, number: int, wire_type: int) -> np.ndarray:
        return wire.single(self.fields, number, wire_type, self.count)

    def value(self, at: np.ndarray) -> np.ndarray:
        if not self.fields.value.size:
            return np.zeros(at.size, np.uint64)
        return np.where(at >= 0, self.fields.value[np.maximum(at, 0)], 0).astype(np.uint64)

    def start(self, at: np.ndarray) -> np.ndarray:
        if not self.fields.start.size:
            return np.zeros(at.size, np.int64)
        return self.fields.start[np.maximum(at, 0)]

    def uint(self, number: int, wire_type: int, limit: int) -> np.ndarray:
        values = self.value(self.at(number, wire_type))
        if (values > limit).any():
            raise wire.Irregular(f"field {number} out of range")
        return values.astype(np.int64)

    def strings(self, number: int, keep: np.ndarray, null_if_empty: bool) -> pa.StringArray:
        at = self.at(number, wire.LEN)[keep]
        present = at >= 0
        starts = np.where(present, self.start(at), 0)
        ends = starts + np.where(present, self.value(at), 0).astype(np.int64)
        valid = (ends > starts) if null_if_empty else None
        return attribute_columns.strings_from(*wire.gather(self.buf, starts, ends), valid)

    def repeated(self, number: int) -> np.ndarray:
        idx = self.fields.of(number)
        if idx.size and (self.fields.wire[idx] != wire.LEN).any():
            raise wire.Irregular(f"field {number} with an unexpected wire type")
        return idx

    def bytes_of(self, idx: int) -> bytes:
        start = int(self.fields.start[idx])
        return self.blob[start:start + int(self.fields.value[idx])]


def _decode(request: Any, default_project: str) -> DecodedBatch:
    raw: list[bytes] = []
    groups: list[tuple[Any, Any, int, int, int]] = []  # resource, scope, their indices, first span
    for r_index, resource_spans in enumerate(request.resource_spans):
        res = resource_part_of(resource_spans.resource, resource_spans.schema_url, default_project)
        for s_index, scope_spans in enumerate(resource_spans.scope_spans):
            groups.append((res, scope_part_of(scope_spans.scope, scope_spans.schema_url), r_index, s_index,
                           len(raw)))
            raw.extend(scope_spans.spans)
    total = len(raw)
    if total == 0:
        return DecodedBatch(SPAN_SCHEMA.empty_table(), 0, "")

    blob = b"".join(raw) + bytes(wire.PAD)
    buf = np.frombuffer(blob, np.uint8)
    offsets = np.zeros(total + 1, np.int64)
    np.cumsum(np.fromiter(map(len, raw), np.int64, total), out=offsets[1:])
    f = _Fields(blob, buf, wire.scan(buf, offsets[:-1], offsets[1:]), total)

    # Which spans can be stored (``span_problem``): ids of the right length and not all zero, times in int64.
    trace_at, span_at, parent_at = f.at(_TRACE_ID, wire.LEN), f.at(_SPAN_ID, wire.LEN), f.at(_PARENT, wire.LEN)
    trace_len, span_len, parent_len = f.value(trace_at), f.value(span_at), f.value(parent_at)
    start_ns, end_ns = f.value(f.at(_START, wire.I64)), f.value(f.at(_END, wire.I64))
    ok = ((trace_len == 16) & (span_len == 8) & ((parent_len == 0) | (parent_len == 8))
          & (start_ns <= _INT64_MAX) & (end_ns <= _INT64_MAX))
    ok[ok] &= ~_all_zero(buf, f.start(trace_at)[ok], 16) & ~_all_zero(buf, f.start(span_at)[ok], 8)
    keep = ok.nonzero()[0]
    rejected = total - keep.size
    messages: list[str] = []
    if rejected:
        firsts = [g[4] for g in groups]
        for i in (~ok).nonzero()[0][:MAX_MESSAGES].tolist():
            g = groups[int(np.searchsorted(firsts, i, side="right")) - 1]
            messages.append(problem_message(g[2], g[3], i - g[4], span_problem(Span.FromString(raw[i])) or ""))
    message = rejection_message(rejected, messages)
    n = keep.size
    if n == 0:
        return DecodedBatch(SPAN_SCHEMA.empty_table(), rejected, message)
    index_of = np.full(total, -1, np.int64)
    index_of[keep] = np.arange(n)

    kind = f.uint(_KIND, wire.VARINT, len(SPAN_KINDS) - 1)[keep]
    names = f.strings(_NAME, keep, null_if_empty=False)
    parent_ok = parent_len[keep] == 8
    parent_ok[parent_ok] &= ~_all_zero(buf, f.start(parent_at)[keep][parent_ok], 8)
    starts = start_ns[keep].astype(np.int64)
    ends = end_ns[keep].astype(np.int64)

    status_code = np.zeros(n, np.int64)
    status_message: pa.Array = pa.nulls(n, pa.string())
    status_at = f.at(_STATUS, wire.LEN)[keep]
    with_status = (status_at >= 0).nonzero()[0]
    if with_status.size:
        s_start = f.start(status_at[with_status])
        sf = _Fields(blob, buf, wire.scan(buf, s_start, s_start + f.value(status_at[with_status]).astype(np.int64)),
                     with_status.size)
        status_code[with_status] = sf.uint(_STATUS_CODE, wire.VARINT, len(STATUS_CODES) - 1)
        texts = sf.strings(_STATUS_MESSAGE, np.arange(with_status.size), null_if_empty=True)
        full: list[str | None] = [None] * n
        for j, text in zip(with_status.tolist(), texts.to_pylist(), strict=True):
            full[j] = text
        status_message = pa.array(full, pa.string())

    events: dict[int, list[dict[str, Any]]] = {}
    links: dict[int, list[dict[str, Any]]] = {}
    for number, parse, out, convert in ((_EVENTS, Span.Event.FromString, events, events_of),
                                        (_LINKS, Span.Link.FromString, links, links_of)):
        found: dict[int, list[Any]] = {}
        for idx in f.repeated(number).tolist():
            owner = int(index_of[f.fields.message[idx]])
            if owner >= 0:
                found.setdefault(owner, []).append(parse(f.bytes_of(idx)))
        for owner, items in found.items():
            out[owner] = convert(items) or []

    kv = f.repeated(_ATTRIBUTES)
    kv_span = index_of[f.fields.message[kv]]
    kv = kv[kv_span >= 0]
    kv_span = kv_span[kv_span >= 0]
    attr_starts = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(kv_span, minlength=n), out=attr_starts[1:])
    kv_start = f.fields.start[kv]
    cols = attribute_columns.decode(blob, kv_start, kv_start + f.fields.value[kv].astype(np.int64), attr_starts,
                                   wanted)
    norm, signal = normalise_columns(cols, names, events)

    # Cost: reported wins, else tokens × price; only spans with either have one.
    cost_usd: list[float | None] = [None] * n
    cost_source: list[str | None] = [None] * n
    response_model, request_model = norm["response_model"], norm["request_model"]
    cached, cache_write = norm["cached_input_tokens"], norm["cache_creation_input_tokens"]
    start_list = starts.tolist()
    table = prices()
    for s, (reported, inp, out_tokens) in enumerate(zip(norm["cost_usd"], norm["input_tokens"],
                                                        norm["output_tokens"], strict=True)):
        if reported is not None or inp is not None or out_tokens is not None:
            cost_usd[s], cost_source[s] = span_cost(table, reported, response_model[s] or request_model[s],
                                                    start_list[s], inp, out_tokens, cached[s], cache_write[s])

    checks: list[list[dict[str, Any]] | None] = [None] * n
    hits: list[int | None] = [None] * n
    category = norm["category"]
    # Only these spans can record a check: a guardrail attribute, the guardrail category, or an event
    # named ``guardrail``. Other spans with events (exceptions, GenAI content events) have none, and
    # reading their attributes back as Python values cost ~20 µs each.
    candidates = signal
    for s, items in events.items():
        if any(e.get("name") == "guardrail" for e in items):
            candidates[s] = True
    checked = candidates.nonzero()[0]
    checked_names = names.take(pa.array(checked)).to_pylist()
    for s, attrs, name in zip(checked.tolist(), cols.values_of(checked, guardrails.ATTRIBUTE_KEYS), checked_names,
                              strict=True):
        found_checks = guardrails.checks(attrs, events.get(s), name, category[s])
        if found_checks:
            checks[s] = [c._asdict() for c in found_checks]
            hits[s] = guardrails.hits(found_checks)

    # Retrieval steps: the retriever and reranker spans (by category) and spans with result events; only
    # their attributes are read back as Python values.
    steps: list[dict[str, Any] | None] = [None] * n
    kinds = retrieval.RETRIEVAL_CATEGORIES
    steps_at = {s for s, kind in enumerate(category) if kind in kinds}
    steps_at.update(s for s, items in events.items() if retrieval.has_result_events(e.get("name") for e in items))
    if steps_at:
        at = sorted(steps_at)
        taken = pa.array(at, pa.int64())
        for s, attrs, name in zip(at, cols.objects.take(taken).to_pylist(), names.take(taken).to_pylist(),
                                  strict=True):
            step = retrieval.retrieval(orjson.loads(attrs), events.get(s), category[s], name)
            if step:
                steps[s] = retrieval.stored(step)

    group_first = np.array([g[4] for g in groups], np.int64)
    group_index = pa.array(np.searchsorted(group_first, keep, side="right") - 1)
    columns: dict[str, Any] = {
        "project": pa.array([g[0].project for g in groups], pa.string()).take(group_index),
        "trace_id": _hex(buf, f.start(trace_at)[keep], 16),
        "span_id": _hex(buf, f.start(span_at)[keep], 8),
        "parent_span_id": _hex(buf, np.where(parent_ok, f.start(parent_at)[keep], 0), 8, parent_ok),
        "trace_state": f.strings(_TRACE_STATE, keep, null_if_empty=True),
        "flags": f.uint(_FLAGS, wire.I32, 2**32 - 1)[keep],
        "name": names,
        "kind": pa.array(SPAN_KINDS, pa.string()).take(pa.array(kind)),
        "service_name": pa.array([g[0].service for g in groups], pa.string()).take(group_index),
        "start_time_unix_nano": starts,
        "end_time_unix_nano": ends,
        "duration_ns": np.maximum(ends - starts, 0),
        "status_code": pa.array(STATUS_CODES, pa.string()).take(pa.array(status_code)),
        "status_message": status_message,
        **{field: values for field, values in norm.items() if field != "cost_usd"},
        "cost_usd": cost_usd,
        "cost_source": cost_source,
        "guardrails": checks,
        "guardrail_hits": hits,
        "retrieval": steps if any(step is not None for step in steps) else pa.nulls(n, RETRIEVAL),
        "attributes": cols.objects,
        "dropped_attributes_count": f.uint(_DROPPED_ATTRIBUTES, wire.VARINT, 2**32 - 1)[keep],
        "events": _json_or_null(events, n),
        "dropped_events_count": f.uint(_DROPPED_EVENTS, wire.VARINT, 2**32 - 1)[keep],
        "links": _json_or_null(links, n),
        "dropped_links_count": f.uint(_DROPPED_LINKS, wire.VARINT, 2**32 - 1)[keep],
        "ingested_at_unix_nano": np.full(n, UNSTAMPED, np.int64),  # the store stamps it at load
    }
    for i, name in enumerate(_RESOURCE_COLUMNS):
        per_group = pa.array([g[0][2 + i] for g in groups], SPAN_SCHEMA.field(name).type)
        columns[name] = per_group.take(group_index)
    for i, name in enumerate(_SCOPE_COLUMNS):
        per_group = pa.array([g[1][i] for g in groups], SPAN_SCHEMA.field(name).type)
        columns[name] = per_group.take(group_index)
    table_out = pa.Table.from_arrays([_column(columns[field.name], field.type) for field in SPAN_SCHEMA],
                                     schema=SPAN_SCHEMA)
    return DecodedBatch(table_out, rejected, message)


def _json_or_null(items: dict[int, list[dict[str, Any]]], n: int) -> Any:
    if not items:
        return pa.nulls(n, pa.string())
    return [dumps(items[s]) if items.get(s) else None for s in range(n)]


def _column(values: Any, typ: pa.DataType) -> pa.Array:
    if isinstance(values, pa.Array):
        return values if values.type == typ else values.cast(typ)
    return pa.array(values, typ)
