"""Schemathesis over the API's own OpenAPI document, in-process: for inputs generated from every route's
parameters (seeded, bounded), no 500, every status code documented, every body matching its schema.

A longer run: ``TRAJSCOPE_FUZZ_EXAMPLES=2000 .venv/bin/python -m pytest tests/query/test_api_fuzz.py``.
"""

from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.otlp_builders import make_request, make_span
from trajscope.collector.otlp_decode import decode_request
from trajscope.query.api import AppState, create_app
from trajscope.storage.duckdb_store import DuckDBStore

INT64_MAX = 2**63 - 1
EXAMPLES = int(os.environ.get("TRAJSCOPE_FUZZ_EXAMPLES", "100"))


def _app():
    store = DuckDBStore(":memory:")
    trace_id = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    root = make_span("agent", trace_id=trace_id, attrs={"gen_ai.agent.name": "planner", "session.id": "s-1"})
    spans = [root,
             make_span("chat", trace_id=trace_id, parent=root, attrs={
                 "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 5}),
             # The widest values a client can send, so that aggregates meet them too.
             make_span("widest", start=0, end=INT64_MAX, attrs={"gen_ai.usage.input_tokens": INT64_MAX})]
    store.write(decode_request(make_request(spans).SerializeToString()).table)
    state = AppState(store)
    state.ready = True
    return create_app(state)


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_answers_every_generated_request_as_documented(case):
    case.call_and_validate(checks=[not_a_server_error, status_code_conformance, response_schema_conformance])
