"""What a span says, whatever the dialect: input/output text, the tool calls an LLM requested, tool
arguments. Reads the typed-JSON attributes and events of a stored span."""

from __future__ import annotations

import json
from typing import Any

from trajscope.analysis import messages

PREVIEW_CHARS = 200

_INPUT_KEYS = ("input.value", "traceloop.entity.input", "gen_ai.tool.call.arguments",
               "tool.parameters", "gen_ai.retrieval.query.text", "gen_ai.prompt")
_OUTPUT_KEYS = ("output.value", "traceloop.entity.output", "gen_ai.tool.call.result",
                "gen_ai.completion")
_INPUT_FIRST = ("gen_ai.prompt.0.content", "llm.input_messages.0.message.content")
_OUTPUT_FIRST = ("gen_ai.completion.0.content", "llm.output_messages.0.message.content")
_ARGUMENT_KEYS = ("gen_ai.tool.call.arguments", "tool.parameters", "tool_call.function.arguments", "input.value",
                  "traceloop.entity.input")


def _message_text(message: Any) -> str | None:
    if isinstance(message, str):
        return message
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts = message.get("parts", content if isinstance(content, list) else None)
    if isinstance(parts, list):
        texts = [p.get("content") or p.get("text") for p in parts if isinstance(p, dict)]
        texts = [t for t in texts if isinstance(t, str)]
        if texts:
            return "\n".join(texts)
    return None


def _text(value: Any, *, last: bool) -> str | None:
    """A displayable text for an attribute value; message lists (JSON) give one message's text."""
    if isinstance(value, str):
        stripped = value.lstrip()
        if stripped.startswith("["):
            try:
                messages = json.loads(value)
            except ValueError:
                return value
            if isinstance(messages, list) and messages:
                text = _message_text(messages[-1] if last else messages[0])
                if text is not None:
                    return text
        return value
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False)


def _from_messages(attrs: dict[str, Any], events: list[dict[str, Any]], which: str) -> str | None:
    """The last input or first output message's text, read by ``messages`` (its precedence rule)."""
    found = messages.messages(attrs, events)
    listed = found and found[which]
    if not listed:
        return None
    return messages.text_of(listed[-1] if which == "input" else listed[0])


def input_text(attrs: dict[str, Any], events: list[dict[str, Any]]) -> str | None:
    if "gen_ai.input.messages" in attrs:
        return _from_messages(attrs, events, "input")
    for key in _INPUT_KEYS:
        if key in attrs:
            return _text(attrs[key], last=True)
    return _from_messages(attrs, events, "input")


def output_text(attrs: dict[str, Any], events: list[dict[str, Any]]) -> str | None:
    if "gen_ai.output.messages" in attrs:
        return _from_messages(attrs, events, "output")
    for key in _OUTPUT_KEYS:
        if key in attrs:
            return _text(attrs[key], last=False)
    return _from_messages(attrs, events, "output")


# Every attribute key ``input_text`` / ``output_text`` can read a text from (flattened lists start at their
# ``.0.`` key): a span carrying none of them and no events has neither.
TEXT_KEYS = (frozenset(_INPUT_KEYS + _OUTPUT_KEYS + _INPUT_FIRST + _OUTPUT_FIRST
                       + ("gen_ai.input.messages", "gen_ai.output.messages")) | messages.FLAT_FIRST_KEYS)


def texts(attrs: dict[str, Any], events: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """(input_text, output_text); most tool and agent spans of a big run carry neither, decided in C."""
    if not events and attrs.keys().isdisjoint(TEXT_KEYS):
        return None, None
    return input_text(attrs, events), output_text(attrs, events)


def preview(text: str | None) -> str | None:
    return None if text is None else text[:PREVIEW_CHARS]


def requested_tool_calls(attrs: dict[str, Any], events: list[dict[str, Any]] | None = None
                         ) -> list[tuple[str | None, str | None]]:
    """(tool call id, tool name) pairs an LLM span's output asked for, in order (``messages``' sources)."""
    found = messages.messages(attrs, events)
    return messages.tool_calls(found["output"]) if found else []


def tool_arguments(attrs: dict[str, Any]) -> str | None:
    for key in _ARGUMENT_KEYS:
        if key in attrs:
            value = attrs[key]
            return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return None
