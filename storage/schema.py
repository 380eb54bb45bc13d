"""The span record: one column list from which the Arrow schema and the SQL table are both derived.

Ids are lowercase hex strings (what the API returns and what an analyst types in SQL). Times are
nanoseconds since the Unix epoch. ``*_json`` columns hold typed JSON (see ``collector.anyvalue``).
"""

from __future__ import annotations

import pyarrow as pa

from trajscope.storage.load_marks import RANGES as MARK_RANGES

GUARDRAIL_CHECKS = pa.list_(pa.struct([
    ("name", pa.string()), ("triggered", pa.bool_()), ("action", pa.string()), ("reason", pa.string()),
    ("score", pa.float64()), ("source", pa.string()), ("time_unix_nano", pa.int64()),
]))
_SQL_SCALARS = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN"}


# A retrieval step (analysis.retrieval): the query, where it searched, and the documents in the order
# returned; a reranker's also what it was given. Document content is kept as a preview (the whole text stays in
# the span's attributes or events); metadata as JSON text.
RETRIEVED_DOCUMENT = pa.struct([
    ("id", pa.string()), ("rank", pa.int64()), ("score", pa.float64()), ("distance", pa.float64()),
    ("previous_rank", pa.int64()), ("preview", pa.string()), ("chars", pa.int64()), ("metadata", pa.string()),
])
RETRIEVAL = pa.struct([
    ("query", pa.string()), ("index_name", pa.string()), ("top_k", pa.int64()), ("system", pa.string()),
    ("documents", pa.list_(RETRIEVED_DOCUMENT)), ("input_documents", pa.list_(RETRIEVED_DOCUMENT)),
])


def struct_sql(typ: pa.DataType) -> str:
    """The DuckDB type of an Arrow scalar, struct or list of them."""
    if pa.types.is_list(typ):
        return f"{struct_sql(typ.value_type)}[]"
    if pa.types.is_struct(typ):
        return "STRUCT(" + ", ".join(f"{f.name} {struct_sql(f.type)}" for f in typ) + ")"
    return _SQL_SCALARS[typ]


def struct_list_sql(typ: pa.ListType) -> str:
    return struct_sql(typ)


# ``spans.retrieval`` in SQL: the step as a list of one element, not as a top-level STRUCT column. DuckDB 1.5
# (storage format 1.3 and later) reads freed memory when a commit of fewer rows than a row group appends a
# top-level STRUCT with string fields (its dictionary-compressed strings, flattened after their block was let
# go) and the process dies; lists of structs take another path. Writes wrap the step (``RETRIEVAL_IN``), reads
# unwrap it (``RETRIEVAL_OUT``), so Python and the API see the step itself.
RETRIEVAL_IN = "CASE WHEN retrieval IS NULL THEN NULL ELSE [retrieval] END"
RETRIEVAL_OUT = "retrieval[1]"


# Rows per row group of what the store appends (DuckDB's default is 122,880). DuckDB writes an insert of
# whole row groups straight to the database file and merges anything smaller through the WAL (several times
# the CPU); with smaller row groups the loader can insert every ~16k spans that cheaply, so spans
# become queryable sooner and the last load of a burst is small. Not kept in the file: set at each open.
ROW_GROUP_ROWS = 16_384

# (column, Arrow type, SQL type, nullable)
SPAN_COLUMNS: tuple[tuple[str, pa.DataType, str, bool], ...] = (
    ("project", pa.string(), "VARCHAR", False),
    ("trace_id", pa.string(), "VARCHAR", False),
    ("span_id", pa.string(), "VARCHAR", False),
    ("parent_span_id", pa.string(), "VARCHAR", True),
    ("trace_state", pa.string(), "VARCHAR", True),
    ("flags", pa.uint32(), "UINTEGER", False),
    ("name", pa.string(), "VARCHAR", False),
    ("kind", pa.string(), "VARCHAR", False),
    ("service_name", pa.string(), "VARCHAR", True),
    ("start_time_unix_nano", pa.int64(), "BIGINT", False),
    ("end_time_unix_nano", pa.int64(), "BIGINT", False),
    ("duration_ns", pa.int64(), "BIGINT", False),
    ("status_code", pa.string(), "VARCHAR", False),
    ("status_message", pa.string(), "VARCHAR", True),
    # Normalised agent terms (collector.normalise).
    ("category", pa.string(), "VARCHAR", False),
    ("operation", pa.string(), "VARCHAR", True),
    ("provider", pa.string(), "VARCHAR", True),
    ("request_model", pa.string(), "VARCHAR", True),
    ("response_model", pa.string(), "VARCHAR", True),
    ("tool_name", pa.string(), "VARCHAR", True),
    ("tool_call_id", pa.string(), "VARCHAR", True),
    ("agent_name", pa.string(), "VARCHAR", True),
    ("session_id", pa.string(), "VARCHAR", True),
    ("user_id", pa.string(), "VARCHAR", True),
    ("error_type", pa.string(), "VARCHAR", True),
    ("input_tokens", pa.int64(), "BIGINT", True),
    ("output_tokens", pa.int64(), "BIGINT", True),
    ("cached_input_tokens", pa.int64(), "BIGINT", True),
    ("cache_creation_input_tokens", pa.int64(), "BIGINT", True),
    ("reasoning_tokens", pa.int64(), "BIGINT", True),
    ("cost_usd", pa.float64(), "DOUBLE", True),
    # Where cost_usd came from: reported (by the SDK/provider), computed (tokens × price table), unpriced
    # (tokens but no price known: cost_usd NULL); NULL for spans with neither tokens nor a cost.
    ("cost_source", pa.string(), "VARCHAR", True),
    # Guardrail checks the span records (analysis.guardrails), normalised; and how many were hits.
    ("guardrails", GUARDRAIL_CHECKS, struct_list_sql(GUARDRAIL_CHECKS), True),
    ("guardrail_hits", pa.int64(), "BIGINT", True),
    # What a retriever or reranker step returned (analysis.retrieval); NULL on other spans. Arrow carries the
    # step itself; the table holds it as a list of one (``RETRIEVAL_IN`` and ``RETRIEVAL_OUT``).
    ("retrieval", RETRIEVAL, f"{struct_sql(RETRIEVAL)}[]", True),
    # Everything else OTLP carries, kept whole.
    ("attributes", pa.string(), "JSON", False),
    ("dropped_attributes_count", pa.uint32(), "UINTEGER", False),
    ("events", pa.string(), "JSON", True),
    ("dropped_events_count", pa.uint32(), "UINTEGER", False),
    ("links", pa.string(), "JSON", True),
    ("dropped_links_count", pa.uint32(), "UINTEGER", False),
    ("resource_attributes", pa.string(), "JSON", False),
    ("resource_dropped_attributes_count", pa.uint32(), "UINTEGER", False),
    ("resource_schema_url", pa.string(), "VARCHAR", True),
    ("scope_name", pa.string(), "VARCHAR", True),
    ("scope_version", pa.string(), "VARCHAR", True),
    ("scope_attributes", pa.string(), "JSON", True),
    ("scope_dropped_attributes_count", pa.uint32(), "UINTEGER", False),
    ("scope_schema_url", pa.string(), "VARCHAR", True),
    ("ingested_at_unix_nano", pa.int64(), "BIGINT", False),
)

SPAN_COLUMN_NAMES: tuple[str, ...] = tuple(c[0] for c in SPAN_COLUMNS)
SPAN_SCHEMA = pa.schema([pa.field(name, typ, nullable) for name, typ, _, nullable in SPAN_COLUMNS])
JSON_COLUMNS = frozenset(name for name, _, sql, _ in SPAN_COLUMNS if sql == "JSON")

# Per-trace breakdowns for the cross-run stats (analysis.latency.breakdowns), stored as lists of structs.
CRITICAL_BREAKDOWN = pa.list_(pa.struct([
    ("category", pa.string()), ("tool_name", pa.string()), ("model", pa.string()), ("agent_name", pa.string()),
    ("span_name", pa.string()), ("service_name", pa.string()), ("critical_ns", pa.int64()),
]))
USAGE_BREAKDOWN = pa.list_(pa.struct([
    ("model", pa.string()), ("agent_name", pa.string()), ("calls", pa.int64()), ("errors", pa.int64()),
    ("input_tokens", pa.int64()), ("output_tokens", pa.int64()), ("cached_input_tokens", pa.int64()),
    ("reasoning_tokens", pa.int64()), ("cost_usd", pa.float64()),
]))
# One row per trace, recomputed at write time from all the trace's stored spans (storage.trace_summary).
TRACE_COLUMNS: tuple[tuple[str, pa.DataType, str, bool], ...] = (
    ("project", pa.string(), "VARCHAR", False),
    ("trace_id", pa.string(), "VARCHAR", False),
    ("root_span_id", pa.string(), "VARCHAR", True),
    ("root_name", pa.string(), "VARCHAR", True),
    ("service_name", pa.string(), "VARCHAR", True),
    ("agent_name", pa.string(), "VARCHAR", True),
    ("session_id", pa.string(), "VARCHAR", True),
    ("user_id", pa.string(), "VARCHAR", True),
    ("start_time_unix_nano", pa.int64(), "BIGINT", False),
    ("end_time_unix_nano", pa.int64(), "BIGINT", False),
    ("duration_ns", pa.int64(), "BIGINT", False),
    ("span_count", pa.int64(), "BIGINT", False),
    ("error_count", pa.int64(), "BIGINT", False),
    ("llm_calls", pa.int64(), "BIGINT", False),
    ("tool_calls", pa.int64(), "BIGINT", False),
    ("input_tokens", pa.int64(), "BIGINT", False),
    ("output_tokens", pa.int64(), "BIGINT", False),
    ("cached_input_tokens", pa.int64(), "BIGINT", False),
    ("reasoning_tokens", pa.int64(), "BIGINT", False),
    ("cost_usd", pa.float64(), "DOUBLE", True),
    ("guardrail_hits", pa.int64(), "BIGINT", True),
    ("complete", pa.bool_(), "BOOLEAN", False),
    ("updated_at_unix_nano", pa.int64(), "BIGINT", False),
    ("critical_breakdown", CRITICAL_BREAKDOWN, struct_list_sql(CRITICAL_BREAKDOWN), True),
    ("usage_breakdown", USAGE_BREAKDOWN, struct_list_sql(USAGE_BREAKDOWN), True),
    # Where the trace's spans are stored: ranges of their load marks (storage.load_marks), which is how the
    # store reads a trace without an index on spans.trace_id. Not a summary of the spans' content.
    ("mark_ranges", MARK_RANGES, struct_list_sql(MARK_RANGES), True),
    # How a summary is found without an index: ``trace_key_sql``. Not a summary of the spans' content either.
    ("trace_key", pa.uint64(), "UBIGINT", False),
)
TRACE_COLUMN_NAMES: tuple[str, ...] = tuple(c[0] for c in TRACE_COLUMNS)
TRACE_SCHEMA = pa.schema([pa.field(name, typ, nullable) for name, typ, _, nullable in TRACE_COLUMNS])
# What the summarisers (storage.trace_summary, storage.batch_summary) compute from a trace's spans.
SUMMARY_SCHEMA = pa.schema([f for f in TRACE_SCHEMA if f.name not in ("mark_ranges", "trace_key")])
SUMMARY_COLUMN_NAMES: tuple[str, ...] = tuple(SUMMARY_SCHEMA.names)


# ``traces`` has no primary key (schema v8): an index on trace ids keeps a node per stored trace in DuckDB's
# memory, and inserts of random ids touch all of it, so it grows with the store and is never evicted. A
# summary is found instead by ``trace_key`` — the id's last 16 hex digits as a number (random in W3C ids and
# in X-Ray's) — one 8-byte column whose scan is cheap next to the summary's other columns, and then by the id
# itself. Ids that are not hex get key 0: found all the same, just by a longer scan.
def trace_key_sql(trace_id: str) -> str:
    """``trace_key`` of a SQL expression giving a trace id (a column, or a quoted literal)."""
    return f"COALESCE(TRY_CAST('0x' || right({trace_id}, 16) AS UBIGINT), 0)"


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def trace_key(trace_id: str) -> int:
    """``trace_key_sql`` of one id, in Python (for literals)."""
    tail = trace_id[-16:]
    return int(tail, 16) if tail and set(tail) <= _HEX_DIGITS else 0


# OTLP log records (GenAI events arrive as logs): one row each. A record naming a span is read as an event
# of that span (``storage.log_events``), whichever arrived first; the others are listed with their trace.
# ``record_id`` (the export's digest and the record's place in it) makes replays and client retries idempotent.
LOG_COLUMNS: tuple[tuple[str, pa.DataType, str, bool], ...] = (
    ("project", pa.string(), "VARCHAR", False),
    ("record_id", pa.string(), "VARCHAR", False),
    ("trace_id", pa.string(), "VARCHAR", True),
    ("span_id", pa.string(), "VARCHAR", True),
    ("time_unix_nano", pa.int64(), "BIGINT", False),
    ("observed_time_unix_nano", pa.int64(), "BIGINT", True),
    ("severity_number", pa.int32(), "INTEGER", True),
    ("severity_text", pa.string(), "VARCHAR", True),
    ("event_name", pa.string(), "VARCHAR", True),
    ("body", pa.string(), "JSON", True),
    ("attributes", pa.string(), "JSON", False),
    ("dropped_attributes_count", pa.uint32(), "UINTEGER", False),
    ("flags", pa.uint32(), "UINTEGER", False),
    ("service_name", pa.string(), "VARCHAR", True),
    ("resource_attributes", pa.string(), "JSON", False),
    ("scope_name", pa.string(), "VARCHAR", True),
    ("scope_version", pa.string(), "VARCHAR", True),
    # Guardrail checks the record states (a guardrail result event), as on spans.
    ("guardrails", GUARDRAIL_CHECKS, struct_list_sql(GUARDRAIL_CHECKS), True),
    ("ingested_at_unix_nano", pa.int64(), "BIGINT", False),
)
LOG_COLUMN_NAMES: tuple[str, ...] = tuple(c[0] for c in LOG_COLUMNS)
LOG_SCHEMA = pa.schema([pa.field(name, typ, nullable) for name, typ, _, nullable in LOG_COLUMNS])


# Columns added after version 1, with the schema version that added them; migrations create each column in
# its own version, so the lists above always describe the latest schema.
ADDED_IN_VERSION: dict[str, int] = {"critical_breakdown": 2, "usage_breakdown": 2, "cost_source": 3,
                                    "guardrails": 3, "guardrail_hits": 3, "retrieval": 5, "mark_ranges": 6,
                                    "trace_key": 8}


# Long, high-entropy text (prompts, completions, tool results) compresses several times better with ZSTD
# than with DuckDB's default FSST. Needs a database file created at storage version >= 1.2 (DuckDBStore
# creates new files so); older files keep FSST.
ZSTD_COLUMNS = frozenset({"attributes", "events", "links", "body"})


def column_ddl(name: str, sql: str, nullable: bool) -> str:
    compression = " USING COMPRESSION zstd" if name in ZSTD_COLUMNS else ""
    return f"{name} {sql}{'' if nullable else ' NOT NULL'}{compression}"


def columns_ddl(columns: tuple[tuple[str, pa.DataType, str, bool], ...], version: int = 1) -> str:
    """DDL for the columns that existed at ``version``."""
    return ",\n    ".join(
        column_ddl(name, sql, nullable)
        for name, _, sql, nullable in columns
        if ADDED_IN_VERSION.get(name, 1) <= version
    )
