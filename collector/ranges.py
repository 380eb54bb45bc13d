"""Numbers out of range are decided at the door: a decoded batch's counts and costs are clamped to ranges
no real span leaves, and every clamped span says so in its attributes (``trajscope.clamped``: the fields).

With every token count in [0, ``TOKEN_MAX``] and every cost in [0, ``COST_MAX_USD``], no per-trace, per-group
or per-route sum of them can overflow int64 or reach infinity, so one hostile or buggy export cannot stop the
loader or break a stats route. Timestamps past int64 are refused per span (``span_parts.span_problem``);
durations are never negative. The ranges are documented in docs/limits.md.
"""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.compute as pc

# No call has four billion tokens; 2**31 spans of a trace at this bound still sum within int64.
TOKEN_MAX = 2**32 - 1
# No call costs a million dollars; a trace of a million such spans still sums far from float infinity.
COST_MAX_USD = 1e6
TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_creation_input_tokens",
                 "reasoning_tokens")
CLAMPED = "trajscope.clamped"


def bounded(table: pa.Table) -> pa.Table:
    """``table`` (``SPAN_SCHEMA``) with out-of-range counts and costs clamped and their spans flagged. A batch
    with nothing out of range is returned as it is (one min/max per column)."""
    flagged: dict[int, list[str]] = {}
    for name in TOKEN_COLUMNS:
        column = table.column(name)
        low, high = pc.min_max(column).values()
        if low.as_py() is None or (low.as_py() >= 0 and high.as_py() <= TOKEN_MAX):
            continue
        outside = pc.or_(pc.less(column, 0), pc.greater(column, TOKEN_MAX))
        _flag(flagged, outside, name)
        table = table.set_column(table.schema.get_field_index(name), table.schema.field(name),
                                 _clamp(column, 0, TOKEN_MAX))
    table = _bounded_cost(table, flagged)
    return _with_flags(table, flagged) if flagged else table


def _bounded_cost(table: pa.Table, flagged: dict[int, list[str]]) -> pa.Table:
    """Costs in [0, COST_MAX_USD] (infinities included; the decoders read NaN as no cost)."""
    column = table.column("cost_usd")
    low, high = (value.as_py() for value in pc.min_max(column).values())
    if low is None or (low >= 0 and high <= COST_MAX_USD):
        return table
    _flag(flagged, pc.or_(pc.less(column, 0), pc.greater(column, COST_MAX_USD)), "cost_usd")
    return table.set_column(table.schema.get_field_index("cost_usd"), table.schema.field("cost_usd"),
                            _clamp(column, 0.0, COST_MAX_USD))


def _clamp(column: pa.ChunkedArray, low: float, high: float) -> pa.ChunkedArray:
    """Values clamped to [low, high]; nulls stay null (unknown is not zero)."""
    return pc.min_element_wise(pc.max_element_wise(column, low, skip_nulls=False), high, skip_nulls=False)


def _flag(flagged: dict[int, list[str]], outside: pa.ChunkedArray | pa.Array, name: str) -> None:
    for row in pc.indices_nonzero(pc.fill_null(outside, False)).to_pylist():
        flagged.setdefault(row, []).append(name)


def _with_flags(table: pa.Table, flagged: dict[int, list[str]]) -> pa.Table:
    """The flagged rows' attributes with ``trajscope.clamped`` (the clamped fields) added."""
    attributes = table.column("attributes").to_pylist()
    for row, fields in flagged.items():
        attrs = orjson.loads(attributes[row]) if attributes[row] else {}
        attrs[CLAMPED] = fields
        attributes[row] = orjson.dumps(attrs).decode()
    field = table.schema.field("attributes")
    return table.set_column(table.schema.get_field_index("attributes"), field, pa.array(attributes, field.type))
