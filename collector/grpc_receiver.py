"""OTLP/gRPC receiver: ``TraceService/Export`` and ``LogsService/Export`` on port 4317.

Registered as a generic handler that receives the raw request bytes, so decoding happens once, in the
pipeline, off the event loop. gRPC compression (gzip, deflate) is handled by grpcio itself.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from trajscope.collector.auth import UNAUTHENTICATED, Access, key_from_headers
from trajscope.collector.otlp_logs import logs_response
from trajscope.collector.pipeline import IngestPipeline, InvalidRequest, Overloaded, Unavailable
from trajscope.collector.project_access import admit, merge

if TYPE_CHECKING:
    from trajscope.collector.logs_ingest import LogsIngest

log = logging.getLogger(__name__)

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
PROJECT_METADATA = "x-trajscope-project"


def export_response(rejected: int, error_message: str) -> ExportTraceServiceResponse:
    """The success response; partial success is set only when something was refused."""
    response = ExportTraceServiceResponse()
    if rejected or error_message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = error_message
    return response


def retry_info(code: int, message: str, seconds: int) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata carrying a ``google.rpc.Status`` with a ``RetryInfo``: how long the exporter waits
    (the OTLP specification makes RESOURCE_EXHAUSTED retryable only with one)."""
    status = status_pb2.Status(code=code, message=message)
    status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds)))
    return (("grpc-status-details-bin", status.SerializeToString()),)


def _handler(service: str, signal: str, export_fn, response_of, access: Access) -> grpc.GenericRpcHandler:
    async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        grant = access.check(key_from_headers(metadata.get("authorization"), metadata.get("x-api-key")), "ingest")
        if isinstance(grant, str):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED if grant == UNAUTHENTICATED
                                else grpc.StatusCode.PERMISSION_DENIED, grant)
        project, restricted = admit(grant, metadata.get(PROJECT_METADATA), request, "protobuf", signal)
        try:
            outcome = await export_fn(restricted.body, "protobuf", project)
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Overloaded as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc),
                                retry_info(code_pb2.RESOURCE_EXHAUSTED, str(exc), exc.retry_after_s))
        except Unavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc),
                                retry_info(code_pb2.UNAVAILABLE, str(exc), 1))
        return response_of(*merge(outcome.rejected, outcome.error_message, restricted)).SerializeToString()

    rpc = grpc.unary_unary_rpc_method_handler(export)  # no (de)serializers: raw bytes in and out
    return grpc.method_handlers_generic_handler(service, {"Export": rpc})


def build_grpc_server(pipeline: IngestPipeline, host: str, port: int, access: Access,
                      logs: LogsIngest | None = None) -> grpc.aio.Server:
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 0),
    ])
    handlers = [_handler(SERVICE, "traces", pipeline.export, export_response, access)]
    if logs is not None:
        handlers.append(_handler(LOGS_SERVICE, "logs", logs.export, logs_response, access))
    server.add_generic_rpc_handlers(tuple(handlers))
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as exc:  # grpcio raises this when the bind fails
        raise OSError(f"cannot listen for OTLP/gRPC on {host}:{port} (port in use?)") from exc
    if bound == 0:
        raise OSError(f"cannot listen for OTLP/gRPC on {host}:{port} (port in use?)")
    return server
