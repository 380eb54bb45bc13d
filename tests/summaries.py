"""Trace summary rows in a form two computations of them can be compared in: rows by trace id, breakdown
lists as sorted lists (they are unordered groups), floats compared with a relative tolerance (sums in
another order differ in the last bits)."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa


class _Close:
    """A float equal to any float within 1e-9 relative; sorts and prints by its first significant digits."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Close):
            return NotImplemented
        a, b = self.value, other.value
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{self.value:.6g}"


def _plain(value: Any) -> Any:
    return _Close(value) if isinstance(value, float) else value


def canonical_summaries(table: pa.Table, drop: tuple[str, ...] = ("updated_at_unix_nano",)) -> list[dict]:
    rows = table.drop_columns(list(drop)).to_pylist()
    for row in rows:
        for name in ("critical_breakdown", "usage_breakdown"):
            if row.get(name) is not None:
                row[name] = sorted((tuple((k, _plain(v)) for k, v in item.items()) for item in row[name]), key=repr)
        row["cost_usd"] = _plain(row["cost_usd"])
    return sorted(rows, key=lambda r: (r["project"], r["trace_id"]))
