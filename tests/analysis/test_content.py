"""content.texts: the shortcut for spans without any text must answer as input_text / output_text do."""

from __future__ import annotations

import pytest

from trajscope.analysis import content

# Every way a dialect names a span's input or output (written out, not taken from the module's sets).
_KEYS = ("input.value", "output.value", "gen_ai.input.messages", "gen_ai.output.messages",
         "traceloop.entity.input", "traceloop.entity.output", "gen_ai.tool.call.arguments",
         "gen_ai.tool.call.result", "tool.parameters", "gen_ai.retrieval.query.text", "gen_ai.prompt",
         "gen_ai.completion", "gen_ai.prompt.0.content", "gen_ai.completion.0.content",
         "llm.input_messages.0.message.content", "llm.output_messages.0.message.content")


@pytest.mark.parametrize("key", _KEYS)
@pytest.mark.parametrize("events", [[], [{"name": "gen_ai.choice", "attributes": {"content": "from an event"}}]])
def test_texts_answers_as_input_and_output_text(key, events):
    for attrs in ({key: "some text", "gen_ai.tool.name": "search"}, {"gen_ai.tool.name": "search"}, {}):
        expected = (content.input_text(attrs, events), content.output_text(attrs, events))
        assert content.texts(attrs, events) == expected
    assert content.texts({key: "some text"}, events) != (None, None)  # each key does carry a text
