"""The span dialects agents send, as data: which attribute means what.

Each table is ordered: the first key present on a span wins. Adding a dialect means adding rows here, not
code in ``normalise``. Sources: OTel GenAI semantic conventions (current and deprecated names),
OpenInference, OpenLLMetry/Traceloop — see ../shared/SEMCONV.md.
"""

from __future__ import annotations

# ``other`` stays last: the columnar normaliser uses its position for spans that map to nothing.
CATEGORIES = (
    "agent", "llm", "tool", "retriever", "embedding", "reranker", "guardrail", "evaluator", "plan", "memory",
    "chain", "other",
)

# Category by operation first: the span-kind attributes below are tried in this order and the first whose
# (lower-cased) value is listed decides. ``gen_ai.operation.name`` leads because it names what the span
# does, while agent names and models now also ride on the spans inside an agent.
CATEGORY_BY_KIND: tuple[tuple[str, dict[str, str]], ...] = (
    ("gen_ai.operation.name", {
        "chat": "llm", "text_completion": "llm", "generate_content": "llm", "completion": "llm",
        "embeddings": "embedding", "embedding": "embedding", "retrieval": "retriever",
        "execute_tool": "tool", "create_agent": "agent", "invoke_agent": "agent",
        # The current conventions fold workflows into (internal) agent invocations.
        "invoke_workflow": "agent",
        "plan": "plan",
        "search_memory": "memory", "create_memory": "memory", "update_memory": "memory",
        "upsert_memory": "memory", "delete_memory": "memory", "create_memory_store": "memory",
        "delete_memory_store": "memory",
        "apply_guardrail": "guardrail",
        # OpenLLMetry's guardrail module (traceloop.sdk.guardrail): the run and each guard in it.
        "guardrail.run": "guardrail", "guard": "guardrail",
        # Strands Agents: one reasoning cycle of its event loop (model call, then tools).
        "execute_event_loop_cycle": "chain",
    }),
    ("openinference.span.kind", {
        "llm": "llm", "embedding": "embedding", "chain": "chain", "retriever": "retriever",
        "reranker": "reranker", "tool": "tool", "agent": "agent", "guardrail": "guardrail",
        "evaluator": "evaluator", "prompt": "chain",
    }),
    # A Traceloop workflow is the run of an agent (what the current conventions call invoke_workflow).
    ("traceloop.span.kind", {"workflow": "agent", "task": "chain", "agent": "agent", "tool": "tool"}),
    ("llm.request.type", {
        "chat": "llm", "completion": "llm", "embedding": "embedding", "rerank": "reranker",
    }),
)

# Without a kind attribute, a GenAI span name that starts with an operation decides ("invoke_agent Planner").
CATEGORY_BY_NAME_PREFIX: tuple[tuple[str, str], ...] = (
    ("invoke_agent ", "agent"),
    ("create_agent ", "agent"),
    ("invoke_workflow ", "agent"),
    ("execute_tool ", "tool"),
    ("apply_guardrail", "guardrail"),
)

# Then the presence of a telling attribute decides. Agent names are not telling: they ride on every
# span inside an agent (tools, model calls), so they never make a span an agent step by themselves.
CATEGORY_BY_PRESENCE: tuple[tuple[str, str], ...] = (
    ("guardrail.name", "guardrail"),
    ("guardrail.triggered", "guardrail"),
    ("gen_ai.guardrail.name", "guardrail"),
    ("gen_ai.security.decision.type", "guardrail"),
    ("gen_ai.tool.name", "tool"),
    ("tool.name", "tool"),
    ("gen_ai.request.model", "llm"),
    ("gen_ai.response.model", "llm"),
    ("llm.model_name", "llm"),
    ("gen_ai.usage.input_tokens", "llm"),
    ("gen_ai.usage.prompt_tokens", "llm"),
    ("retrieval.documents", "retriever"),
    ("gen_ai.data_source.id", "retriever"),
    ("gen_ai.retrieval.query.text", "retriever"),
    # OpenLLMetry's vector-store queries (analysis.retrieval.TOP_K_KEYS).
    ("db.vector.query.top_k", "retriever"),
    ("db.chroma.query.n_results", "retriever"),
    ("pinecone.query.top_k", "retriever"),
    ("db.pinecone.query.top_k", "retriever"),
    ("db.qdrant.search.limit", "retriever"),
    ("db.lancedb.search.limit", "retriever"),
    ("db.milvus.search.limit", "retriever"),
    ("gen_ai.memory.store.id", "memory"),
)

# Normalised field → candidate attribute keys.
STRING_FIELDS: dict[str, tuple[str, ...]] = {
    "operation": ("gen_ai.operation.name", "llm.request.type"),
    "provider": ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"),
    "request_model": ("gen_ai.request.model", "llm.request.model", "llm.model_name", "embedding.model_name"),
    "response_model": ("gen_ai.response.model", "llm.response.model", "llm.model_name", "embedding.model_name"),
    "tool_name": ("gen_ai.tool.name", "tool.name", "tool_call.function.name"),
    "tool_call_id": ("gen_ai.tool.call.id", "tool_call.id"),
    "agent_name": ("gen_ai.agent.name", "agent.name", "gen_ai.workflow.name", "traceloop.workflow.name"),
    "session_id": (
        "session.id", "gen_ai.conversation.id", "traceloop.association.properties.session_id",
        "langfuse.session.id",
    ),
    "user_id": ("user.id", "enduser.id", "traceloop.association.properties.user_id", "langfuse.user.id"),
    "error_type": ("error.type",),
}

INT_FIELDS: dict[str, tuple[str, ...]] = {
    # Totals: input INCLUDES cached input, output INCLUDES reasoning (GenAI conventions and OpenInference).
    "input_tokens": (
        "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
        "llm.usage.prompt_tokens",
    ),
    "output_tokens": (
        "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion",
        "llm.usage.completion_tokens",
    ),
    # Sub-counts of the totals above, never added on top.
    "cached_input_tokens": (
        "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
        "llm.token_count.prompt_details.cache_read",
    ),
    # Cache writes: "cache_write" in the newest names, "cache_creation" before.
    "cache_creation_input_tokens": (
        "gen_ai.usage.cache_write.input_tokens", "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens", "llm.token_count.prompt_details.cache_write",
    ),
    "reasoning_tokens": (
        "gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
        "llm.token_count.completion_details.reasoning",
    ),
}

FLOAT_FIELDS: dict[str, tuple[str, ...]] = {
    # Provider- or SDK-reported cost in USD.
    "cost_usd": ("gen_ai.usage.cost", "llm.cost.total"),
}

# Traceloop names the tool or agent in `traceloop.entity.name`, qualified by its span kind.
ENTITY_NAME_BY_KIND: dict[str, str] = {"tool": "tool_name", "agent": "agent_name", "workflow": "agent_name"}

# GenAI span names carry the subject after the operation: "execute_tool get_weather".
NAME_PREFIX_FIELDS: tuple[tuple[str, str], ...] = (
    ("execute_tool ", "tool_name"),
    ("invoke_agent ", "agent_name"),
    ("create_agent ", "agent_name"),
    ("invoke_workflow ", "agent_name"),
)

# Per-modality token counts (subsets of the totals) → candidate keys, GenAI conventions first. Kept as sent in
# the span's attributes; the ``llm_calls`` view reads them into columns. Cost is computed from the totals.
MODALITY_TOKENS: dict[str, tuple[str, ...]] = {
    "text_input_tokens": ("gen_ai.usage.text.input_tokens",),
    "image_input_tokens": ("gen_ai.usage.image.input_tokens",),
    "audio_input_tokens": ("gen_ai.usage.audio.input_tokens", "llm.token_count.prompt_details.audio"),
    "video_input_tokens": ("gen_ai.usage.video.input_tokens",),
    "text_output_tokens": ("gen_ai.usage.text.output_tokens",),
    "audio_output_tokens": ("gen_ai.usage.audio.output_tokens", "llm.token_count.completion_details.audio"),
}

# Where the project a span belongs to can be named on the resource.
PROJECT_RESOURCE_KEYS: tuple[str, ...] = ("trajscope.project", "openinference.project.name")
