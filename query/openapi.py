"""The OpenAPI document states what the API really answers: each route's 200 body (its top-level shape), and
the error responses it can give — 400 for a bad parameter (never FastAPI's unused 422), 401 without the key,
404 for an unknown trace or session, 408 and 413 for SQL, 503 while starting — all in the one error envelope
(``query.errors``)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from trajscope.query.errors import ErrorCode

_ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string", "enum": [c.value for c in ErrorCode]},
                       "message": {"type": "string"}}}},
}
_OBJECTS = {"type": "array", "items": {"type": "object"}}
_NUMBER_OR_NULL = {"type": ["number", "null"]}
_STRING_OR_NULL = {"type": ["string", "null"]}
# A big run's steps or spans: objects, or with ?layout=table the same values as {fields, rows}.
_LAYOUT = {"oneOf": [_OBJECTS, {"type": "object", "required": ["fields", "rows"]}]}


def _object(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


_PAGE = {"next_cursor": _STRING_OR_NULL}
_GROUPS = {"group_by": {"type": "string"}, "groups": _OBJECTS}
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/api/v1/health"): _object(status={"type": "string"}, schema_version={"type": ["integer", "null"]},
                                       ingest={"type": "object"}),
    ("get", "/api/v1/traces"): _object(traces=_OBJECTS, **_PAGE),
    ("get", "/api/v1/traces/{trace_id}"): _object(trace_id={"type": "string"}, spans=_OBJECTS, logs=_OBJECTS),
    ("get", "/api/v1/traces/{trace_id}/logs"): _object(trace_id={"type": "string"}, logs=_OBJECTS),
    ("get", "/api/v1/traces/{trace_id}/trajectory"): _object(
        trace_id={"type": "string"}, complete={"type": "boolean"}, root_span_id=_STRING_OR_NULL,
        duration_ms=_NUMBER_OR_NULL, steps=_LAYOUT, anomalies=_OBJECTS, totals={"type": "object"}),
    ("get", "/api/v1/traces/{trace_id}/latency"): _object(
        trace_id={"type": "string"}, root_span_id=_STRING_OR_NULL, duration_ms=_NUMBER_OR_NULL,
        critical_path=_OBJECTS, spans=_LAYOUT, by_category={"type": "object"}, by_tool={"type": "object"},
        by_model={"type": "object"}),
    ("get", "/api/v1/sessions"): _object(sessions=_OBJECTS, **_PAGE),
    ("get", "/api/v1/sessions/{session_id}"): _object(session_id={"type": "string"}, traces=_OBJECTS,
                                                      totals={"type": "object"}),
    ("get", "/api/v1/stats/latency"): _object(total_critical_ms={"type": "number"}, **_GROUPS),
    ("get", "/api/v1/stats/usage"): _object(**_GROUPS),
    ("get", "/api/v1/stats/guardrails"): _object(**_GROUPS),
    ("get", "/api/v1/stats/unmapped"): _object(unmapped_spans={"type": "integer"}, span_names=_OBJECTS,
                                               attribute_prefixes=_OBJECTS),
    ("get", "/api/v1/alerts"): _object(configured={"type": "boolean"}, alerts=_OBJECTS),
    ("get", "/api/v1/prices"): _object(extra_file=_STRING_OR_NULL, unit={"type": "string"}, prices=_OBJECTS),
    ("get", "/api/v1/stats/unpriced_models"): _object(models=_OBJECTS),
    ("post", "/api/v1/sql"): _object(columns=_OBJECTS, rows={"type": "array"}, row_count={"type": "integer"},
                                     truncated={"type": "boolean"}, limit={"type": "integer"},
                                     elapsed_ms={"type": "number"}),
}
_SQL_ERRORS = {"408": "the query ran past its deadline", "413": "the result is too large for its format"}


def _errors(method: str, path: str, operation: dict[str, Any]) -> dict[str, str]:
    errors = {}
    if operation.get("parameters") or operation.get("requestBody"):
        errors["400"] = "a parameter or the body is invalid (the message names it)"
    if path.startswith("/api/v1/") and path != "/api/v1/health":
        errors["401"] = "missing or wrong API key (when the server has one)"
    if "{trace_id}" in path or "{session_id}" in path:
        errors["404"] = "no such trace or session"
    if "{trace_id}" in path:
        errors["413"] = "the trace has more spans than a trace read returns (--max-trace-spans): use SQL"
    if (method, path) == ("post", "/api/v1/sql"):
        errors.update(_SQL_ERRORS)
    if path == "/api/v1/health":
        errors["503"] = "starting up"
    return errors


def install_openapi(app: FastAPI) -> None:
    """Replace the app's OpenAPI generator with one that states the real responses (cached once built)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            for path, operations in spec.get("paths", {}).items():
                for method, operation in operations.items():
                    responses = operation.setdefault("responses", {})
                    responses.pop("422", None)
                    body = BODIES.get((method, path))
                    if body is not None:
                        content = responses.setdefault("200", {"description": "OK"}).setdefault("content", {})
                        content.setdefault("application/json", {})["schema"] = body
                    for status, description in _errors(method, path, operation).items():
                        responses[status] = {"description": description,
                                             "content": {"application/json": {"schema": _ERROR}}}
            schemas = spec.get("components", {}).get("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
