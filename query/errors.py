"""One error envelope for the whole API: ``{"error": {"code": <ErrorCode>, "message": "..."}}``."""

from __future__ import annotations

import logging
from enum import StrEnum

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorCode(StrEnum):
    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    UNAUTHORIZED = "unauthorized"
    NOT_READY = "not_ready"
    INTERNAL = "internal"
    # The SQL endpoint's (query.analyst_sql.SqlErrorCode has the same values).
    INVALID_SQL = "invalid_sql"
    FORBIDDEN = "forbidden"
    TIMEOUT = "timeout"
    TOO_LARGE = "too_large"
    PERMISSION_DENIED = "permission_denied"


log = logging.getLogger(__name__)

_STATUS = {
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.NOT_READY: 503,
    ErrorCode.INTERNAL: 500,
    ErrorCode.INVALID_SQL: 400,
    ErrorCode.FORBIDDEN: 400,
    ErrorCode.TIMEOUT: 408,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.PERMISSION_DENIED: 403,
}


class ApiError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_response(code: ErrorCode, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code.value, "message": message}}, status_code=_STATUS[code])


def install_error_handlers(app) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p not in ('query', 'path'))}: {e.get('msg')}"
            for e in exc.errors()
        )
        return error_response(ErrorCode.INVALID_ARGUMENT, problems or "invalid request")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in the API")
        return error_response(ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: ErrorCode.NOT_FOUND, 401: ErrorCode.UNAUTHORIZED}.get(exc.status_code,
                                                                         ErrorCode.INVALID_ARGUMENT)
        response = error_response(code, str(exc.detail))
        response.status_code = exc.status_code
        return response
