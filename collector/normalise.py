"""Map one span's attributes, in whatever dialect, onto trajscope's agent terms.

Pure and table-driven: the tables live in ``dialects``; this module only applies them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from trajscope.collector import dialects


class Normalised(NamedTuple):
    category: str
    operation: str | None
    provider: str | None
    request_model: str | None
    response_model: str | None
    tool_name: str | None
    tool_call_id: str | None
    agent_name: str | None
    session_id: str | None
    user_id: str | None
    error_type: str | None
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int | None
    cache_creation_input_tokens: int | None
    reasoning_tokens: int | None
    cost_usd: float | None


NORMALISED_FIELDS = Normalised._fields


def category_of(attrs: dict[str, Any], name: str = "") -> str:
    """The span's category: an explicit kind attribute first (the operation before the others), then a GenAI
    span name, then telling attributes, else ``other``."""
    for key, mapping in dialects.CATEGORY_BY_KIND:
        value = attrs.get(key)
        if isinstance(value, str):
            category = mapping.get(value.lower())
            if category:
                return category
    for prefix, category in dialects.CATEGORY_BY_NAME_PREFIX:
        if name.startswith(prefix):
            return category
    for key, category in dialects.CATEGORY_BY_PRESENCE:
        if key in attrs:
            return category
    return "other"


def _first_str(attrs: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = attrs.get(key)
        if value is None or isinstance(value, dict | list):
            continue
        text = value if isinstance(value, str) else str(value)
        if text:
            return text
    return None


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def saturated(value: int) -> int:
    """A total made whole from its sub-counts, kept within int64; ``collector.ranges`` bounds it further."""
    return min(value, _INT64_MAX)


def _as_int(value: Any) -> int | None:
    """An integer count, or None (also for numbers that do not fit the int64 columns)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = int(value) if value.is_integer() else None
    elif isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            try:
                f = float(value)
            except ValueError:
                return None
            value = int(f) if f.is_integer() else None
    if isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX:
        return value
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _first(attrs: dict[str, Any], keys: tuple[str, ...], convert: Any) -> Any:
    for key in keys:
        if key in attrs:
            value = convert(attrs[key])
            if value is not None:
                return value
    return None


def _exception_type(events: list[dict[str, Any]] | None) -> str | None:
    for event in events or ():
        if event.get("name") == "exception":
            exc_type = (event.get("attributes") or {}).get("exception.type")
            if isinstance(exc_type, str) and exc_type:
                return exc_type
    return None


def normalise(name: str, attrs: dict[str, Any], events: list[dict[str, Any]] | None = None) -> Normalised:
    """Normalise one span. ``attrs`` are its attributes in typed-JSON form (see ``anyvalue``)."""
    category = category_of(attrs, name)
    strings = {field: _first_str(attrs, keys) for field, keys in dialects.STRING_FIELDS.items()}
    ints = {field: _first(attrs, keys, _as_int) for field, keys in dialects.INT_FIELDS.items()}
    cost = _first(attrs, dialects.FLOAT_FIELDS["cost_usd"], _as_float)

    entity_field = dialects.ENTITY_NAME_BY_KIND.get(str(attrs.get("traceloop.span.kind", "")).lower())
    if entity_field and strings[entity_field] is None:
        strings[entity_field] = _first_str(attrs, ("traceloop.entity.name",))
    for prefix, field in dialects.NAME_PREFIX_FIELDS:
        if strings[field] is None and name.startswith(prefix):
            strings[field] = name[len(prefix):].strip() or None
    if strings["error_type"] is None:
        strings["error_type"] = _exception_type(events)

    # Totals include their sub-counts. A sub-count larger than its total means the sender reported the
    # total without it (Anthropic's raw usage does), so the total is made whole rather than double-counted.
    inp, cached, created = ints["input_tokens"], ints["cached_input_tokens"], ints["cache_creation_input_tokens"]
    if inp is not None and (cached or 0) + (created or 0) > inp:
        ints["input_tokens"] = saturated(inp + (cached or 0) + (created or 0))
    out, reasoning = ints["output_tokens"], ints["reasoning_tokens"]
    if out is not None and reasoning is not None and reasoning > out:
        ints["output_tokens"] = saturated(out + reasoning)

    return Normalised(
        category=category,
        cost_usd=cost,
        **strings,
        **ints,
    )
