"""A span in a dialect trajscope does not know keeps everything, is category ``other``, and is listed by
``/api/v1/stats/unmapped`` so a user can tell what to map."""

from __future__ import annotations

from tests.e2e.conftest import wait_for
from tests.otlp_builders import make_span


def test_unknown_dialect_is_kept_and_listed(server):
    attrs = {"acme.step.kind": "think", "acme.step.tokens": 12, "acme.model": "m-1", "http.method": "POST"}
    spans = [make_span("acme.think", attrs=attrs), make_span("acme.think", attrs={"acme.step.kind": "act"}),
             make_span("acme.act", attrs={"acme.step.kind": "act", "acme.tool": "search"}),
             make_span("chat gpt-4o", attrs={"gen_ai.operation.name": "chat"})]
    assert server.export(spans).status_code == 200
    trace_id = spans[0].trace_id.hex()
    stored = wait_for(lambda: server.get(f"/api/v1/traces/{trace_id}").json().get("spans"))
    (span,) = stored
    assert span["category"] == "other"
    assert span["attributes"] == attrs  # every attribute kept, typed

    report = wait_for(lambda: (r := server.get("/api/v1/stats/unmapped").json())["unmapped_spans"] >= 3 and r)
    names = {row["name"]: row["spans"] for row in report["span_names"]}
    assert names["acme.think"] == 2 and names["acme.act"] == 1
    assert "chat gpt-4o" not in names  # mapped: an LLM call
    prefixes = {row["prefix"]: row for row in report["attribute_prefixes"]}
    assert prefixes["acme.step"]["spans"] == 3
    assert prefixes["acme.step"]["example_keys"] == ["acme.step.kind", "acme.step.tokens"]
    assert prefixes["acme.model"]["spans"] == 1
    only_late = server.get("/api/v1/stats/unmapped", since="2099-01-01T00:00:00Z").json()
    assert only_late == {"unmapped_spans": 0, "span_names": [], "attribute_prefixes": []}
    assert server.get("/api/v1/stats/unmapped", limit=0).status_code == 400
