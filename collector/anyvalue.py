"""OTLP ``AnyValue`` ↔ typed JSON values.

Attributes are stored as JSON so analysts can reach them with DuckDB's JSON functions, but JSON alone
cannot tell bytes from strings, 1 from 1.0 once a parser has had it, or carry NaN. The encoding keeps
every OTLP value type recoverable:

==============  =====================================================
OTLP type       JSON
==============  =====================================================
string          string
bool            true / false
int             integer (always written without a decimal point)
double          number with a decimal point or exponent; NaN/±Inf as ``{"$double": "nan"}``
bytes           ``{"$bytes": "<base64>"}``
array           array
kvlist          object; wrapped as ``{"$kvlist": {...}}`` only when it would look like a tag
empty           null
==============  =====================================================
"""

from __future__ import annotations

import base64
import math
from typing import Any

TAGS = ("$bytes", "$double", "$kvlist")


def any_value(value: Any) -> Any:
    """Convert an ``AnyValue`` protobuf message to its typed-JSON Python form."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        d = value.double_value
        return d if math.isfinite(d) else {"$double": repr(d)}
    if kind == "bytes_value":
        return {"$bytes": base64.b64encode(value.bytes_value).decode("ascii")}
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _wrap_kvlist(key_values(value.kvlist_value.values))
    return None


def key_values(kvs: Any) -> dict[str, Any]:
    """Convert repeated ``KeyValue`` to a dict. OTLP forbids duplicate keys; if sent, the last one wins."""
    return {kv.key: any_value(kv.value) for kv in kvs}


def _wrap_kvlist(d: dict[str, Any]) -> dict[str, Any]:
    if len(d) == 1 and next(iter(d)) in TAGS:
        return {"$kvlist": d}
    return d


def untag(value: Any) -> Any:
    """Inverse of the encoding: typed JSON → plain Python (bytes as ``bytes``, NaN as ``float``).

    A kvlist comes back as a ``dict``; an int stays an ``int`` and a double a ``float`` provided the JSON
    parser keeps the distinction (``json`` and ``orjson`` both do).
    """
    if isinstance(value, list):
        return [untag(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            (tag, inner), = value.items()
            if tag == "$bytes":
                return base64.b64decode(inner)
            if tag == "$double":
                return float(inner)
            if tag == "$kvlist":
                return {k: untag(v) for k, v in inner.items()}
        return {k: untag(v) for k, v in value.items()}
    return value
