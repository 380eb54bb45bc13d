"""Seeded mutations of OTLP export bodies, as a hostile or buggy client sends them: byte flips, truncation,
huge varints, deep AnyValue nesting, invalid UTF-8, extreme numbers, and (for OTLP/JSON) wrong types.

``mutated_protobuf(rng)`` and ``mutated_json(rng)`` return one body each; the same seed gives the same bodies.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import orjson
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.otlp_builders import make_request, make_span
from trajscope.collector.otlp_json import encode_json_request

# The answers OTLP exporters understand: anything else from a fuzzed export is a bug.
HTTP_ANSWERS = {200, 400, 413, 415, 429, 503}
GRPC_ANSWERS = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.RESOURCE_EXHAUSTED}

INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1


def base_request(rng: random.Random) -> Any:
    trace_id = rng.randbytes(16)
    root = make_span("agent", trace_id=trace_id, span_id=rng.randbytes(8),
                     attrs={"gen_ai.agent.name": "fuzz", "session.id": "s"})
    spans = [root] + [make_span(f"chat {i}", trace_id=trace_id, span_id=rng.randbytes(8), parent=root,
                                attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                                       "gen_ai.usage.input_tokens": rng.randrange(10_000),
                                       "gen_ai.usage.output_tokens": rng.randrange(10_000),
                                       "gen_ai.prompt": "x" * rng.randrange(200)})
                      for i in range(rng.randint(1, 6))]
    return make_request(spans)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field, written by hand (upb refuses to build messages this deep)."""
    length, size = bytearray(), len(payload)
    while True:
        length.append((size & 0x7F) | (0x80 if size > 0x7F else 0))
        size >>= 7
        if not size:
            break
    return bytes([number << 3 | 2]) + bytes(length) + payload


def deeply_nested_span(rng: random.Random, depth: int, kind: str) -> bytes:
    """A resource_spans entry holding one span whose attribute nests ``depth`` arrays or kvlists."""
    value = _field(1, b"bottom")  # AnyValue.string_value
    for _ in range(depth):
        if kind == "array":  # AnyValue.array_value(5) = ArrayValue.values(1)
            value = _field(5, _field(1, value))
        else:  # AnyValue.kvlist_value(6) = KeyValueList.values(1) = KeyValue{key(1), value(2)}
            value = _field(6, _field(1, _field(1, b"k") + _field(2, value)))
    span = (_field(1, rng.randbytes(16)) + _field(2, rng.randbytes(8)) + _field(5, b"deep")
            + _field(9, _field(1, b"deep") + _field(2, value)))
    return _field(1, _field(2, _field(2, span)))  # request.resource_spans(1).scope_spans(2).spans(2)


def _extreme(request: Any, rng: random.Random) -> None:
    span = request.resource_spans[0].scope_spans[0].spans[rng.randrange(1 if rng.random() < 0.5 else 2)]
    choice = rng.randrange(6)
    if choice == 0:
        span.start_time_unix_nano, span.end_time_unix_nano = 0, rng.choice((INT64_MAX, UINT64_MAX))
    elif choice == 1:
        span.end_time_unix_nano = 1  # ends before it starts
    else:
        key = rng.choice(("gen_ai.usage.input_tokens", "gen_ai.usage.cache_read.input_tokens",
                          "gen_ai.usage.output_tokens", "gen_ai.usage.cost"))
        value = AnyValue()
        extreme = rng.choice((INT64_MAX, -(2**63), float("inf"), float("-inf"), float("nan"), 1e308, -1.0))
        if isinstance(extreme, int):
            value.int_value = extreme
        else:
            value.double_value = extreme
        span.attributes.append(KeyValue(key=key, value=value))


def _structural(request: Any, rng: random.Random) -> bytes:
    choice = rng.randrange(4)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    if choice == 0:  # concatenated messages merge: one more resource_spans entry
        return request.SerializeToString() + deeply_nested_span(rng, rng.choice((30, 64, 500, 3000)),
                                                                 rng.choice(("array", "kvlist")))
    if choice == 1:
        _extreme(request, rng)
    if choice == 2:  # a name of invalid UTF-8: the string field's bytes replaced on the wire
        span.name = "MARKER-NAME"
        return request.SerializeToString().replace(b"MARKER-NAME", b"\xff\xfe\xfd-NAME-\xc0")
    else:  # ids of the wrong length
        span.span_id = rng.randbytes(rng.choice((0, 3, 9)))
    return request.SerializeToString()


def mutated_bytes(body: bytes, rng: random.Random) -> bytes:
    data = bytearray(body)
    choice = rng.randrange(3)
    if choice == 0:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif choice == 1:
        del data[rng.randrange(1, len(data)):]
    else:  # a varint of ten 0xff bytes (past 64 bits) where a tag or length is read
        at = rng.randrange(len(data))
        data[at:at] = b"\xff" * 10 + b"\x01"
    return bytes(data)


def mutated_protobuf(rng: random.Random) -> bytes:
    request = base_request(rng)
    if rng.random() < 0.5:
        return _structural(request, rng)
    return mutated_bytes(request.SerializeToString(), rng)


# Each takes a request's JSON document and returns the mutated document (or the body itself, as bytes).
_JSON_MUTATIONS: list[Callable[[dict, random.Random], Any]] = []


def _json_mutation(fn: Callable[[dict, random.Random], Any]) -> Callable[[dict, random.Random], Any]:
    _JSON_MUTATIONS.append(fn)
    return fn


def _a_span(doc: dict) -> dict:
    return doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]


@_json_mutation
def _wrong_type(doc: dict, rng: random.Random) -> dict:
    span = _a_span(doc)
    key = rng.choice(("startTimeUnixNano", "name", "attributes", "traceId", "kind", "status", "events"))
    span[key] = rng.choice((None, 12, -1, 1.5, "text", [], {}, [1, 2], True, 2**70, "9" * 40))
    return doc


@_json_mutation
def _wrong_container(doc: dict, rng: random.Random) -> Any:
    return rng.choice(([], "text", 5, None, {"resourceSpans": {}}, {"resourceSpans": [1, "x"]},
                       {"resourceSpans": [{"scopeSpans": [{"spans": [[]]}]}]}))


@_json_mutation
def _extreme_values(doc: dict, rng: random.Random) -> dict:
    span = _a_span(doc)
    span["attributes"] = [{"key": "gen_ai.usage.input_tokens",
                           "value": rng.choice(({"intValue": str(2**70)}, {"intValue": "-9223372036854775808"},
                                                {"doubleValue": "Infinity"}, {"doubleValue": "NaN"},
                                                {"doubleValue": 1e308}, {"intValue": "1e5"}, {"intValue": []}))}]
    span["endTimeUnixNano"] = rng.choice(("18446744073709551615", "18446744073709551616", "-1", "0"))
    return doc


@_json_mutation
def _deep(doc: dict, rng: random.Random) -> bytes:
    """An attribute nesting arrays deeper than any encoder writes: the JSON text built by hand."""
    depth = rng.choice((64, 400, 2000))
    value = '{"arrayValue":{"values":[' * depth + '{"stringValue":"bottom"}' + "]}}" * depth
    _a_span(doc)["attributes"] = [{"key": "deep", "value": "DEEP-VALUE"}]
    return orjson.dumps(doc).replace(b'"DEEP-VALUE"', value.encode())


def mutated_json(rng: random.Random) -> bytes:
    doc = encode_json_request(base_request(rng))
    choice = rng.randrange(len(_JSON_MUTATIONS) + 2)
    if choice < len(_JSON_MUTATIONS):
        mutated = _JSON_MUTATIONS[choice](doc, rng)
        if isinstance(mutated, bytes):
            return mutated
        try:
            return orjson.dumps(mutated)
        except orjson.JSONEncodeError:  # an integer past 64 bits, which orjson does not write
            return json.dumps(mutated).encode()
    body = orjson.dumps(doc)
    if choice == len(_JSON_MUTATIONS):
        return body.replace(b'"chat', b'"\xff\xfe chat', 1)  # invalid UTF-8 inside a string
    return mutated_bytes(body, rng)


def send_mutations(server: Any, rng: random.Random, requests: int, *, grpc_method: str, url: str,
                   protobuf: Callable[[random.Random], bytes], json_body: Callable[[random.Random], bytes],
                   encode: Callable[[bytes, random.Random], tuple[bytes, dict[str, str]]] = lambda b, r: (b, {}),
                   ) -> Counter[str]:
    """Send ``requests`` mutated exports to a running server, round-robin over gRPC (``grpc_method``), OTLP/HTTP
    protobuf and OTLP/JSON (``url``), each body through ``encode`` (e.g. gzip) on HTTP; assert every answer is
    one an OTLP exporter understands. Returns how often each (transport, answer) was seen."""
    seen: Counter[str] = Counter()
    channel = grpc.insecure_channel(server.otlp_grpc)
    call = channel.unary_unary(grpc_method)
    try:
        with httpx.Client(timeout=10) as http:
            for number in range(requests):
                transport = ("grpc", "http", "json")[number % 3]
                if transport == "grpc":
                    body = protobuf(rng)
                    try:
                        call(body, timeout=10)
                        code = grpc.StatusCode.OK
                    except grpc.RpcError as exc:
                        code = exc.code()
                    assert code in GRPC_ANSWERS, (number, code, body[:200])
                    seen[f"grpc {code.name}"] += 1
                    continue
                body = protobuf(rng) if transport == "http" else json_body(rng)
                payload, headers = encode(body, rng)
                media = "application/x-protobuf" if transport == "http" else "application/json"
                response = http.post(url, content=payload, headers={"Content-Type": media, **headers})
                assert response.status_code in HTTP_ANSWERS, (number, response.status_code, response.text[:300],
                                                              body[:300])
                seen[f"{transport} {response.status_code}"] += 1
    finally:
        channel.close()
    return seen
