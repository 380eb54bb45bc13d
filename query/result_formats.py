"""An Arrow result as JSON, CSV, Arrow IPC stream or Parquet bytes (what the SQL endpoint, the CLI and the
exporter share). Arrow and Parquet go straight from the Arrow table: no per-value Python objects."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import io
import uuid
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

FORMATS = ("json", "csv", "arrow", "parquet")
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
}


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def _csv_safe(table: pa.Table) -> pa.Table:
    """CSV cannot hold nested values: lists, structs and maps become their JSON text."""
    columns = []
    for column, field in zip(table.columns, table.schema, strict=True):
        if pa.types.is_nested(field.type):
            column = pa.array([None if v is None else orjson.dumps(v, default=_json_default).decode()
                               for v in column.to_pylist()], pa.string())
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def json_document(table: pa.Table, **meta: Any) -> bytes:
    columns = [{"name": f.name, "type": str(f.type)} for f in table.schema]
    return orjson.dumps({"columns": columns, "rows": table.to_pylist(), "row_count": table.num_rows, **meta},
                        default=_json_default, option=orjson.OPT_NAIVE_UTC)


def encode(table: pa.Table, fmt: str, **meta: Any) -> bytes:
    if fmt == "json":
        return json_document(table, **meta)
    sink = io.BytesIO()
    if fmt == "csv":
        pacsv.write_csv(_csv_safe(table), sink)
    elif fmt == "arrow":
        with pa.ipc.new_stream(sink, table.schema) as stream:
            stream.write_table(table)
    elif fmt == "parquet":
        pq.write_table(table, sink, compression="zstd")
    else:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    return sink.getvalue()
