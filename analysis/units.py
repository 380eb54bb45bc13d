"""The one conversion every response makes: nanoseconds (storage) to milliseconds (API)."""

from __future__ import annotations


def ns_to_ms(ns: float) -> float:
    """Milliseconds, rounded to the nanosecond so responses do not carry float noise."""
    return round(ns / 1e6, 6)
