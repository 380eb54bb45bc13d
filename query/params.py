"""The API's parameter types, shared by every route: times, durations, costs, ids, cursors. A value out of
range or in an unexpected form raises ``ApiError`` (400 with a message), never a 500 further down."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query

from trajscope.query.errors import ApiError, ErrorCode

INT64_MAX = 2**63 - 1
_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
_SPAN_ID = re.compile(r"^[0-9a-fA-F]{16}$")
# ASCII digits only: str.isdigit() and int() also take other scripts' digits (`³`, `١`).
_UNIX_NS = re.compile(r"^[0-9]{1,19}$")
_RELATIVE = re.compile(r"^([0-9]{1,12}(?:\.[0-9]{1,9})?)\s*(ms|s|m|h|d)$")

TimeText = Annotated[str | None, Query(max_length=64, description="Unix ns, RFC 3339, or an age like 1h")]
# Milliseconds whose nanoseconds fit int64; costs far above any run's.
DurationMs = Annotated[float | None, Query(ge=0, le=INT64_MAX / 1e6, allow_inf_nan=False)]
CostUsd = Annotated[float | None, Query(ge=0, le=1e12, allow_inf_nan=False)]
Cursor = Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page")]
_UNIT_NS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9}


def duration_ns(text: str) -> int | None:
    """``15m``, ``2h``, ``0.5s``, ``7d``, ``250ms`` in nanoseconds; None if ``text`` is not a duration."""
    match = _RELATIVE.match(text.strip())
    if not match:
        return None
    value = int(float(match.group(1)) * _UNIT_NS[match.group(2)])
    return value if value <= INT64_MAX else None


def trace_id_param(value: str) -> str:
    """A trace id as 32 hex digits, returned lowercase."""
    if not _TRACE_ID.match(value):
        raise ApiError(ErrorCode.INVALID_ARGUMENT,
                       f"trace id must be 32 hex digits (16 bytes), got {value[:64]!r}")
    return value.lower()


def span_id_param(value: str) -> str:
    """A span id as 16 hex digits, returned lowercase."""
    if not _SPAN_ID.match(value):
        raise ApiError(ErrorCode.INVALID_ARGUMENT, f"span id must be 16 hex digits (8 bytes), got {value[:64]!r}")
    return value.lower()


def time_param(name: str, value: str | None, now_ns: int) -> int | None:
    """A point in time: Unix nanoseconds, RFC 3339 (``2026-11-26T08:00:00Z``), or an age (``15m``, ``2h``)."""
    if value is None or value == "":
        return None
    text = value.strip()
    wrong = ApiError(ErrorCode.INVALID_ARGUMENT, f"{name} must be Unix nanoseconds (0 to {INT64_MAX}), RFC 3339 "
                     f"(1970 to 2262), or an age like 15m; got {value[:64]!r}")
    if _UNIX_NS.match(text):
        ns = int(text)
    elif (age := duration_ns(text)) is not None:
        ns = max(now_ns - age, 0)
    else:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise wrong from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        ns = int(moment.timestamp() * 1_000_000) * 1000
    if not 0 <= ns <= INT64_MAX:
        raise wrong
    return ns


def _encode(start_ns: int, key: str) -> str:
    return base64.urlsafe_b64encode(f"{start_ns}:{key}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        start, key = raw.split(":", 1)
        if not _UNIX_NS.match(start) or int(start) > INT64_MAX:
            raise ValueError(start)
        return int(start), key
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(ErrorCode.INVALID_ARGUMENT, "cursor is not one this API returned") from None


def encode_cursor(start_ns: int, trace_id: str) -> str:
    return _encode(start_ns, trace_id)


def decode_cursor(cursor: str | None) -> tuple[int, str] | None:
    """A trace-list cursor: (start_time_unix_nano, trace_id) of the last item returned."""
    if not cursor:
        return None
    start, trace_id = _decode(cursor)
    try:
        return start, trace_id_param(trace_id)
    except ApiError:
        raise ApiError(ErrorCode.INVALID_ARGUMENT, "cursor is not one this API returned") from None


def encode_session_cursor(last_start_ns: int, session_id: str) -> str:
    return _encode(last_start_ns, session_id)


def decode_session_cursor(cursor: str | None) -> tuple[int, str] | None:
    return _decode(cursor) if cursor else None
