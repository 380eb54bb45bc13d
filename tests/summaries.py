"""Trace summary rows in a form two computations of them can be compared in: rows by trace id, breakdown
lists as sorted lists (they are unordered groups), floats rounded (sums in another order differ in the
last bits)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa


def _plain(value: Any) -> Any:
    return round(value, 9) if isinstance(value, float) else value


def canonical_summaries(table: pa.Table, drop: tuple[str, ...] = ("updated_at_unix_nano",)) -> list[dict]:
    rows = table.drop_columns(list(drop)).to_pylist()
    for row in rows:
        for name in ("critical_breakdown", "usage_breakdown"):
            if row.get(name) is not None:
                row[name] = sorted((tuple((k, _plain(v)) for k, v in item.items()) for item in row[name]), key=repr)
        row["cost_usd"] = _plain(row["cost_usd"])
    return sorted(rows, key=lambda r: (r["project"], r["trace_id"]))
