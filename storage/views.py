"""The analyst surface: stable views over the stored tables (documented column by column in the README).

``spans`` and ``traces`` are the tables themselves; the views below are derived from them and recreated
on every start of a writable store, so their definitions always match the running version.

Attributes stay reachable as typed JSON: ``attributes->>'$."gen_ai.request.model"'`` (quote the key:
OTel keys contain dots). Bytes are ``{"$bytes": base64}``, NaN/Inf ``{"$double": "nan"}``.
"""

from __future__ import annotations

import duckdb

from trajscope.collector.dialects import MODALITY_TOKENS
from trajscope.storage.schema import RETRIEVAL_OUT

_TIME = "to_timestamp(s.start_time_unix_nano / 1e9) AS start_time"
# A span's own agent/session/user, else its trace's (SDKs often set them on the root span only).
_WHO = """s.project, s.trace_id, s.span_id, s.parent_span_id, s.name, s.service_name,
           coalesce(s.agent_name, t.agent_name) AS agent_name, coalesce(s.session_id, t.session_id) AS session_id,
           coalesce(s.user_id, t.user_id) AS user_id"""
_TRACE_OF_S = "LEFT JOIN traces t ON t.project = s.project AND t.trace_id = s.trace_id"
_FROM = f"FROM spans s {_TRACE_OF_S}"
# The spans that are retrieval steps, each with its step unwrapped (stored as a list of one: schema.RETRIEVAL_IN).
_RETRIEVAL_STEPS = f"(SELECT * REPLACE ({RETRIEVAL_OUT} AS retrieval) FROM spans WHERE retrieval IS NOT NULL)"

_MODALITY_COLUMNS = ",\n           ".join(
    "TRY_CAST(coalesce({}) AS BIGINT) AS {}".format(", ".join(f"s.attributes->>'$.\"{k}\"'" for k in keys), name)
    for name, keys in MODALITY_TOKENS.items())

VIEWS: dict[str, str] = {
    "llm_calls": f"""
    SELECT {_WHO},
           {_TIME}, s.start_time_unix_nano, s.end_time_unix_nano, s.duration_ns / 1e6 AS duration_ms,
           s.operation, s.provider, s.request_model, s.response_model,
           coalesce(s.response_model, s.request_model) AS model,
           s.input_tokens, s.output_tokens, s.cached_input_tokens, s.cache_creation_input_tokens,
           s.reasoning_tokens, s.cost_usd, s.cost_source, s.status_code, s.status_message, s.error_type,
           {_MODALITY_COLUMNS},
           s.attributes
    {_FROM} WHERE s.category = 'llm'""",
    "tool_calls": f"""
    SELECT {_WHO},
           {_TIME}, s.start_time_unix_nano, s.end_time_unix_nano, s.duration_ns / 1e6 AS duration_ms,
           s.tool_name, s.tool_call_id,
           coalesce(s.attributes->>'$."gen_ai.tool.call.arguments"', s.attributes->>'$."tool.parameters"',
                    s.attributes->>'$."input.value"') AS arguments,
           coalesce(s.attributes->>'$."gen_ai.tool.call.result"', s.attributes->>'$."output.value"') AS result,
           s.status_code, s.status_message, s.error_type, s.attributes
    {_FROM} WHERE s.category = 'tool'""",
    # One row per guardrail check, as normalised at ingest (analysis.guardrails: spans, their events and
    # OTLP log records, in every supported style). `triggered` NULL: the check's outcome was not reported.
    "guardrail_events": """
    SELECT s.project, s.trace_id, s.span_id, s.service_name, coalesce(s.agent_name, t.agent_name) AS agent_name,
           coalesce(s.session_id, t.session_id) AS session_id,
           to_timestamp(coalesce(g.time_unix_nano, s.start_time_unix_nano) / 1e9) AS time,
           coalesce(g.time_unix_nano, s.start_time_unix_nano) AS time_unix_nano,
           g.name AS guardrail_name, g.triggered, g.action, g.reason, g.score, g.source
    FROM (SELECT *, unnest(guardrails) AS g FROM spans WHERE guardrails IS NOT NULL) s
    LEFT JOIN traces t ON t.project = s.project AND t.trace_id = s.trace_id
    UNION ALL
    SELECT l.project, l.trace_id, l.span_id, l.service_name, coalesce(s.agent_name, t.agent_name) AS agent_name,
           coalesce(s.session_id, t.session_id) AS session_id,
           to_timestamp(l.g.time_unix_nano / 1e9) AS time, l.g.time_unix_nano AS time_unix_nano,
           l.g.name AS guardrail_name, l.g.triggered, l.g.action, l.g.reason, l.g.score, 'log' AS source
    FROM (SELECT *, unnest(guardrails) AS g FROM log_records WHERE guardrails IS NOT NULL) l
    LEFT JOIN spans s ON s.project = l.project AND s.trace_id = l.trace_id AND s.span_id = l.span_id
    LEFT JOIN traces t ON t.project = l.project AND t.trace_id = l.trace_id""",
    # One row per `gen_ai.evaluation.result`, from span events and from OTLP log records (analysis.evaluations).
    "evaluations": """
    WITH found AS (
        SELECT project, trace_id, span_id, e AS event, 'span' AS source
        FROM (SELECT project, trace_id, span_id, unnest(CAST(events AS JSON[])) AS e FROM spans
              WHERE events IS NOT NULL AND contains(CAST(events AS VARCHAR), 'gen_ai.evaluation.result'))
        WHERE e->>'name' = 'gen_ai.evaluation.result'
        UNION ALL
        SELECT project, trace_id, span_id,
               json_object('time_unix_nano', time_unix_nano, 'attributes', attributes) AS event, 'log' AS source
        FROM log_records WHERE event_name = 'gen_ai.evaluation.result')
    SELECT project, trace_id, span_id,
           to_timestamp(CAST(event->>'time_unix_nano' AS BIGINT) / 1e9) AS time,
           event->'attributes'->>'$."gen_ai.evaluation.name"' AS evaluation_name,
           TRY_CAST(event->'attributes'->>'$."gen_ai.evaluation.score.value"' AS DOUBLE) AS score_value,
           event->'attributes'->>'$."gen_ai.evaluation.score.label"' AS score_label,
           event->'attributes'->>'$."gen_ai.evaluation.explanation"' AS explanation,
           event->'attributes'->>'$."gen_ai.response.id"' AS response_id,
           source
    FROM found""",
    # One row per retrieval step (analysis.retrieval): retrievers and rerankers from every dialect.
    "retrievals": f"""
    SELECT {_WHO},
           {_TIME}, s.start_time_unix_nano, s.end_time_unix_nano, s.duration_ns / 1e6 AS duration_ms,
           s.category, s.retrieval.system AS system, s.retrieval.index_name AS index_name,
           s.retrieval.query AS query, s.retrieval.top_k AS top_k,
           len(s.retrieval.documents) AS documents, len(s.retrieval.documents) = 0 AS empty,
           s.retrieval.documents[1].score AS top_score, s.retrieval.documents[1].distance AS top_distance,
           len(s.retrieval.input_documents) AS input_documents,
           CASE WHEN s.retrieval.input_documents IS NOT NULL AND len(s.retrieval.documents) > 0
                THEN s.retrieval.documents[1].previous_rank IS DISTINCT FROM 1 END AS top_changed,
           s.status_code, s.error_type
    FROM {_RETRIEVAL_STEPS} s {_TRACE_OF_S}""",
    # One row per document a retrieval step returned, in rank order (1 = first); `previous_rank` is the
    # rank a reranked document had in what the reranker was given.
    "retrieved_documents": f"""
    SELECT s.project, s.trace_id, s.span_id, s.category, s.retrieval.index_name AS index_name,
           s.retrieval.query AS query, to_timestamp(s.start_time_unix_nano / 1e9) AS start_time,
           d.rank, d.previous_rank, d.id AS document_id, d.score, d.distance, d.preview, d.chars AS content_chars,
           CAST(d.metadata AS JSON) AS metadata
    FROM (SELECT *, unnest(retrieval.documents) AS d FROM {_RETRIEVAL_STEPS}) s""",
    "sessions": """
    SELECT project, session_id,
           min(user_id) AS user_id, min(agent_name) AS agent_name,
           to_timestamp(min(start_time_unix_nano) / 1e9) AS first_start,
           to_timestamp(max(end_time_unix_nano) / 1e9) AS last_end,
           min(start_time_unix_nano) AS first_start_unix_nano, max(end_time_unix_nano) AS last_end_unix_nano,
           count(*) AS turns, sum(span_count) AS spans, sum(error_count) AS errors,
           sum(llm_calls) AS llm_calls, sum(tool_calls) AS tool_calls,
           sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(cost_usd) AS cost_usd, sum(duration_ns) / 1e6 AS total_duration_ms
    FROM traces WHERE session_id IS NOT NULL
    GROUP BY project, session_id""",
}

TABLES = ("spans", "traces", "log_records")
ANALYST_RELATIONS = (*TABLES, *VIEWS)


def install_views(con: duckdb.DuckDBPyConnection) -> None:
    for name, body in VIEWS.items():
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {body}")
