"""Messages in every shape they are sent in, and the one precedence rule when several are present."""

import json

import pytest

from trajscope.analysis.content import input_text, output_text, requested_tool_calls
from trajscope.analysis.messages import DETAILS_EVENT, messages

CURRENT_IN = [{"role": "user", "parts": [{"type": "text", "content": "from the span"}]}]
CURRENT_OUT = [{"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "search",
                                                "arguments": {"q": "x"}}], "finish_reason": "tool_call"}]
SPAN_ATTRS = {"gen_ai.input.messages": json.dumps(CURRENT_IN), "gen_ai.output.messages": CURRENT_OUT,
              "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
              "gen_ai.tool.definitions": [{"type": "function", "name": "search"}]}
DETAILS = {"name": DETAILS_EVENT, "attributes": {
    "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "from the event"}]}],
    "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "ok"}]}])}}
OPENINFERENCE = {"llm.input_messages.0.message.role": "system", "llm.input_messages.0.message.content": "sys",
                 "llm.input_messages.1.message.role": "user", "llm.input_messages.1.message.content": "oi question",
                 "llm.output_messages.0.message.role": "assistant",
                 "llm.output_messages.0.message.tool_calls.0.tool_call.id": "c9",
                 "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup"}
OPENLLMETRY = {"gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "ol question",
               "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "ol answer",
               "gen_ai.completion.0.tool_calls.0.id": "c7", "gen_ai.completion.0.tool_calls.0.name": "fetch"}
OLD_EVENTS = [{"name": "gen_ai.user.message", "attributes": {"content": "old question"}},
              {"name": "gen_ai.choice", "attributes": {"index": 0, "message": {"role": "assistant",
                                                                             "content": "old answer"}}}]


def _first_text(found, which):
    return found[which][0]["parts"][0].get("content")


def test_current_attributes_json_strings_or_structured():
    found = messages(SPAN_ATTRS, [])
    assert found["input"] == CURRENT_IN and found["output"] == CURRENT_OUT
    assert found["system"] == [{"role": "system", "parts": [{"type": "text", "content": "Be brief."}]}]
    assert found["tools"] == [{"type": "function", "name": "search"}]
    assert found["sources"] == {"system": "span", "input": "span", "output": "span", "tools": "span"}


@pytest.mark.parametrize(("attrs", "events", "expected_in", "expected_out", "sources"), [
    # The span's own attributes win over the same facts from an event.
    (SPAN_ATTRS, [DETAILS], "from the span", None, {"input": "span", "output": "span"}),
    # An event fills what the span lacks, per list.
    ({"gen_ai.input.messages": json.dumps(CURRENT_IN)}, [DETAILS], "from the span", "ok",
     {"input": "span", "output": "event"}),
    # The operation-details event wins over every older shape.
    ({**OPENINFERENCE, **OPENLLMETRY}, [DETAILS, *OLD_EVENTS], "from the event", "ok",
     {"input": "event", "output": "event"}),
    # OpenInference before OpenLLMetry before the per-message events.
    ({**OPENINFERENCE, **OPENLLMETRY}, OLD_EVENTS, "sys", None, {"input": "openinference", "output": "openinference"}),
    (OPENLLMETRY, OLD_EVENTS, "ol question", "ol answer", {"input": "openllmetry", "output": "openllmetry"}),
    ({}, OLD_EVENTS, "old question", "old answer", {"input": "message_events", "output": "message_events"}),
])
def test_precedence(attrs, events, expected_in, expected_out, sources):
    found = messages(attrs, events)
    assert _first_text(found, "input") == expected_in
    if expected_out is not None:
        assert _first_text(found, "output") == expected_out
    assert {k: v for k, v in found["sources"].items() if k in ("input", "output")} == sources


def test_tool_calls_from_each_shape():
    assert requested_tool_calls(SPAN_ATTRS) == [("c1", "search")]
    assert requested_tool_calls({}, [{**DETAILS, "attributes": {"gen_ai.output.messages": CURRENT_OUT}}]) == [
        ("c1", "search")]
    assert requested_tool_calls(OPENINFERENCE) == [("c9", "lookup")]
    assert requested_tool_calls(OPENLLMETRY) == [("c7", "fetch")]


def test_previews_follow_the_same_rule():
    assert input_text({}, [DETAILS]) == "from the event"
    assert output_text({}, [DETAILS]) == "ok"
    assert input_text(OPENINFERENCE, []) == "oi question"  # the last input message
    assert output_text({}, OLD_EVENTS) == "old answer"


def test_no_messages_and_unusable_values():
    assert messages({"http.method": "GET"}, []) is None
    assert messages({"gen_ai.input.messages": "[not json"}, [])["input"][0]["parts"][0]["content"] == "[not json"
    assert messages({"gen_ai.input.messages": []}, []) is None
