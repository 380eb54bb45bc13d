"""Parsing of the API's query parameters: times, ids, cursors. Errors raise ``ApiError``."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime

from trajscope.query.errors import ApiError, ErrorCode

_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$")
_UNIT_NS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9}


def duration_ns(text: str) -> int | None:
    """``15m``, ``2h``, ``0.5s``, ``7d``, ``250ms`` in nanoseconds; None if ``text`` is not a duration."""
    match = _RELATIVE.match(text.strip())
    return int(float(match.group(1)) * _UNIT_NS[match.group(2)]) if match else None


def trace_id_param(value: str) -> str:
    """A trace id as 32 hex digits, returned lowercase."""
    if not _TRACE_ID.match(value):
        raise ApiError(ErrorCode.INVALID_ARGUMENT,
                       f"trace id must be 32 hex digits (16 bytes), got {value[:64]!r}")
    return value.lower()


def time_param(name: str, value: str | None, now_ns: int) -> int | None:
    """A point in time: Unix nanoseconds, RFC 3339 (``2026-11-26T08:00:00Z``), or an age (``15m``, ``2h``)."""
    if value is None or value == "":
        return None
    text = value.strip()
    if text.isdigit():
        return int(text)
    age = duration_ns(text)
    if age is not None:
        return now_ns - age
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(ErrorCode.INVALID_ARGUMENT,
                       f"{name} must be Unix nanoseconds, RFC 3339, or an age like 15m; got {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000) * 1000


def _encode(start_ns: int, key: str) -> str:
    return base64.urlsafe_b64encode(f"{start_ns}:{key}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        start, key = raw.split(":", 1)
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
