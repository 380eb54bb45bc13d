"""The price table the decoder costs spans with: the built-in one plus the server's ``--prices`` file.

Set once per process (the server and each decode worker, see ``decode_pool``); loaded lazily so a decode
without configuration uses the built-in table.
"""

from __future__ import annotations

from pathlib import Path

from trajscope.analysis.pricing import PriceTable

_table: PriceTable | None = None
_extra: str | None = None


def configure(extra: str | Path | None) -> PriceTable:
    """Load the table (raising ``PriceError`` with a clear message on a bad file) and use it from now on."""
    global _table, _extra
    _extra = None if extra is None else str(extra)
    _table = PriceTable.load(_extra)
    return _table


def prices() -> PriceTable:
    global _table
    if _table is None:
        _table = PriceTable.load(_extra)
    return _table


def extra_file() -> str | None:
    return _extra
