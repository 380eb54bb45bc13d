"""API-key check shared by the OTLP receivers and the query API."""

from __future__ import annotations

import hmac


def key_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a client presented: ``Authorization: Bearer <key>`` or ``x-api-key: <key>``."""
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return x_api_key


def is_authorised(expected: str | None, presented: str | None) -> bool:
    """True when no key is configured, or the presented one matches (in constant time)."""
    if not expected:
        return True
    return presented is not None and hmac.compare_digest(expected.encode(), presented.encode())
