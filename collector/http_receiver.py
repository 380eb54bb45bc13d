"""OTLP/HTTP receiver: ``POST /v1/traces`` and ``POST /v1/logs`` on port 4318, protobuf or JSON, optionally gzip.

Status codes follow the OTLP specification: 200 with the export response (partial success when some
spans were refused), 400 for malformed data (clients do not retry), 415 for an unsupported media type
or content encoding, 413 for an oversized body, 401 without the API key, 429 with ``Retry-After`` when
overloaded, 503 with ``Retry-After`` when storage fails or the server is stopping. Error bodies are a
``google.rpc.Status`` in the request's encoding.
"""

from __future__ import annotations

import logging
import zlib

import orjson
from google.rpc import code_pb2, status_pb2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trajscope.collector.auth import UNAUTHENTICATED, Access, key_from_headers
from trajscope.collector.grpc_receiver import MAX_MESSAGE_BYTES, PROJECT_METADATA, export_response
from trajscope.collector.logs_ingest import LogsIngest
from trajscope.collector.otlp_logs import logs_response
from trajscope.collector.pipeline import Encoding, IngestPipeline, InvalidRequest, Overloaded, Unavailable
from trajscope.collector.project_access import admit, merge

log = logging.getLogger(__name__)

_MEDIA_TYPES: dict[str, Encoding] = {"application/x-protobuf": "protobuf", "application/json": "json"}
_CONTENT_TYPE = {"protobuf": "application/x-protobuf", "json": "application/json"}


class BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _status_body(encoding: Encoding, code: int, message: str) -> bytes:
    if encoding == "json":
        return orjson.dumps({"code": code, "message": message})
    return status_pb2.Status(code=code, message=message).SerializeToString()


def _error(encoding: Encoding, http_status: int, code: int, message: str,
           headers: dict[str, str] | None = None) -> Response:
    return Response(_status_body(encoding, code, message), status_code=http_status,
                    media_type=_CONTENT_TYPE[encoding], headers=headers)


def inflate(body: bytes, content_encoding: str, limit: int = MAX_MESSAGE_BYTES) -> bytes:
    """Undo ``Content-Encoding``; a bomb that inflates past ``limit`` is refused, not expanded."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise BodyError(413, f"body of {len(body)} bytes exceeds the {limit}-byte limit")
        return body
    if encoding not in ("gzip", "deflate"):
        raise BodyError(415, f"unsupported Content-Encoding {content_encoding!r}; use gzip or none")
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BodyError(400, f"body is not valid {encoding}: {exc}") from exc
    if len(out) > limit:
        raise BodyError(413, f"decompressed body exceeds the {limit}-byte limit")
    if not inflater.eof:
        raise BodyError(400, f"{encoding} body is truncated")
    return out


async def read_body(request: Request, limit: int = MAX_MESSAGE_BYTES) -> bytes:
    """The whole body, chunked or not, refusing to buffer more than ``limit`` bytes."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(413, f"body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def build_http_app(pipeline: IngestPipeline, access: Access, logs: LogsIngest | None = None) -> Starlette:
    """``/v1/traces`` and (with ``logs``) ``/v1/logs``: one request handling, two signals."""

    def route(signal: str, export, response_of, rejected_field: str):
        async def receive(request: Request) -> Response:
            media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            encoding = _MEDIA_TYPES.get(media_type)
            if encoding is None:
                return Response(
                    f"unsupported Content-Type {media_type!r}; use application/x-protobuf or application/json",
                    status_code=415, media_type="text/plain")
            grant = access.check(key_from_headers(request.headers.get("authorization"),
                                                  request.headers.get("x-api-key")), "ingest")
            if isinstance(grant, str):
                if grant == UNAUTHENTICATED:
                    return _error(encoding, 401, code_pb2.UNAUTHENTICATED, grant)
                return _error(encoding, 403, code_pb2.PERMISSION_DENIED, grant)
            try:
                body = inflate(await read_body(request), request.headers.get("content-encoding", ""))
            except BodyError as exc:
                return _error(encoding, exc.status, code_pb2.INVALID_ARGUMENT, str(exc))
            project, restricted = admit(grant, request.headers.get(PROJECT_METADATA), body, encoding, signal)
            try:
                outcome = await export(restricted.body, encoding, project)
            except InvalidRequest as exc:
                return _error(encoding, 400, code_pb2.INVALID_ARGUMENT, str(exc))
            except Overloaded as exc:
                return _error(encoding, 429, code_pb2.RESOURCE_EXHAUSTED, str(exc),
                              headers={"Retry-After": str(exc.retry_after_s)})
            except Unavailable as exc:
                return _error(encoding, 503, code_pb2.UNAVAILABLE, str(exc), headers={"Retry-After": "1"})
            rejected, message = merge(outcome.rejected, outcome.error_message, restricted)
            if encoding == "json":
                payload = {}
                if rejected or message:
                    payload["partialSuccess"] = {rejected_field: str(rejected), "errorMessage": message}
                return Response(orjson.dumps(payload), media_type="application/json")
            return Response(response_of(rejected, message).SerializeToString(), media_type="application/x-protobuf")

        return receive

    routes = [Route("/v1/traces", route("traces", pipeline.export, export_response, "rejectedSpans"), methods=["POST"])]
    if logs is not None:
        routes.append(Route("/v1/logs", route("logs", logs.export, logs_response, "rejectedLogRecords"),
                            methods=["POST"]))
    return Starlette(routes=routes)
