"""Redaction rules: what each detector masks and leaves, drops by key glob, per-project rules, and a decoded span
table redacted end to end (attributes, events, normalised columns, retrieval previews, the flag)."""

from __future__ import annotations

import json
import os

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.otlp_builders import kvs, make_request, make_span
from trajscope.collector.otlp_decode import decode_request
from trajscope.collector.redaction import (
    REDACTED_KEY,
    RedactionError,
    TableRedactor,
    default_rules,
    load_rules,
    make_rule,
    mask,
)


def _masked(detector: str, text: str) -> str | None:
    return make_rule(detector, detector=detector).masked(text)


@pytest.mark.parametrize(("detector", "text", "expected"), [
    ("email", "write to jane.doe+x@mail.example.co.uk today", "write to xxxx.xxx+x@xxxx.xxxxxxx.xx.xx today"),
    ("card", "paid with 4111 1111 1111 1111.", "paid with 0000 0000 0000 0000."),
    ("card", "order 4111-1111-1111-1112 (fails Luhn)", None),
    ("secret", "key=sk-proj-abcdefghijklmnopQRST", "key=xx-xxxx-xxxxxxxxxxxxxxxxxxxx"),
    ("secret", "AKIAIOSFODNN7EXAMPLE in the logs", "xxxxxxxxxxxx0xxxxxxx in the logs"),
    ("phone", "call +44 20 7946 0958", "call +00 00 0000 0000"),
    ("phone", "or (415) 555-0100", "or (000) 000-0000"),
    ("phone", "version 1.2.3, order 12345, 2024-05-01", None),
])
def test_detectors_mask_what_they_name_and_keep_the_shape(detector, text, expected):
    got = _masked(detector, text)
    assert got == expected
    if got is not None:
        assert len(got) == len(text)


def test_mask_keeps_length_and_character_classes():
    assert mask("Ab-9 é") == "xx-0 x"


def test_rules_files(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('use_defaults = true\n[[rule]]\nname = "prompts"\ndrop = ["gen_ai.*.messages"]\n'
                    'projects = ["support"]\n[[rule]]\nname = "orders"\npattern = "ORD-[0-9]{6}"\n')
    rules = load_rules(path)
    assert [r.name for r in rules] == ["email", "card", "secret", "phone", "prompts", "orders"]
    assert rules[4].drops("gen_ai.input.messages") and not rules[4].drops("gen_ai.input.tokens")
    assert rules[4].applies_to("support") and not rules[4].applies_to("lab")
    assert [r.name for r in load_rules("default")] == ["email", "card", "secret", "phone"]
    path.write_text('[[rule]]\nname = "bad"\npattern = "("\n')
    with pytest.raises(RedactionError, match="bad pattern"):
        load_rules(path)
    path.write_text('[[rule]]\nname = "x"\ndetector = "passport"\n')
    with pytest.raises(RedactionError, match="no detector"):
        load_rules(path)


def test_a_decoded_table_is_redacted_before_storage():
    tid = os.urandom(16)
    chat = make_span("chat", trace_id=tid, attrs={
        "gen_ai.input.messages": json.dumps([{"role": "user",
                                              "parts": [{"type": "text", "content": "I am jane@x.io"}]}]),
        "user.id": "jane@x.io", "note": "token sk-abcdefghijklmnop1234", "tokens": 12})
    event = Span.Event(name="gen_ai.user.message", time_unix_nano=5)
    event.attributes.extend(kvs({"content": "reach me on +1 415 555 0100"}))
    chat.events.append(event)
    clean = make_span("clean", trace_id=tid, attrs={"x": "nothing to see, order 12345"})
    retrieve = make_span("retrieve", trace_id=tid, attrs={
        "gen_ai.operation.name": "retrieval",
        "gen_ai.retrieval.documents": json.dumps([{"id": "d1", "content": "ask bob@corp.example for access"}])})
    other = make_span("chat", trace_id=tid, attrs={"gen_ai.input.messages": "[]", "x": "lab@x.io"})
    table = decode_request(make_request([chat, clean, retrieve]).SerializeToString()).table
    lab = decode_request(make_request([other], resource={"service.name": "s", "trajscope.project": "lab"})
                         .SerializeToString()).table
    import pyarrow as pa
    table = pa.concat_tables([table, lab])
    redactor = TableRedactor([*default_rules(), make_rule("prompts", drop=["gen_ai.input.*"], projects=["default"])])
    out, hits = redactor.table(table)
    rows = out.to_pylist()
    attrs = [json.loads(r["attributes"]) for r in rows]
    assert "gen_ai.input.messages" not in attrs[0] and attrs[0]["user.id"] == "xxxx@x.xx"
    assert attrs[0]["note"] == "token xx-xxxxxxxxxxxxxxxx0000" and attrs[0]["tokens"] == 12
    assert attrs[0][REDACTED_KEY] == ["email", "phone", "prompts", "secret"]
    assert rows[0]["user_id"] == "xxxx@x.xx"
    assert "+0 000 000 0000" in rows[0]["events"]
    assert rows[1]["attributes"] == table.column("attributes")[1].as_py()  # untouched
    assert REDACTED_KEY not in attrs[1]
    assert rows[2]["retrieval"]["documents"][0]["preview"] == "ask xxx@xxxx.xxxxxxx for access"
    # The prompts rule is for project default only; lab keeps its messages key but not its email.
    assert "gen_ai.input.messages" in attrs[3] and attrs[3]["x"] == "xxx@x.xx"
    assert hits == {"email": 3, "phone": 1, "prompts": 1, "secret": 1}
