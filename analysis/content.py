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


def _plain(attrs: dict[str, Any], keys: tuple[str, ...], *, last: bool) -> str | None:
    for key in keys:
        if key in attrs:
            return _text(attrs[key], last=last)
    return None


def _texts_of(attrs: dict[str, Any], found: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """Messages first (``messages``' rule: the last input message, the first output message), else the
    dialects' plain input and output values."""
    text_in = messages.text_of(found["input"][-1]) if found and found["input"] else None
    text_out = messages.text_of(found["output"][0]) if found and found["output"] else None
    return (text_in if text_in is not None else _plain(attrs, _INPUT_KEYS, last=True),
            text_out if text_out is not None else _plain(attrs, _OUTPUT_KEYS, last=False))


def _texts(attrs: dict[str, Any], events: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    return _texts_of(attrs, messages.messages(attrs, events))


def input_text(attrs: dict[str, Any], events: list[dict[str, Any]]) -> str | None:
    return _texts(attrs, events)[0]


def output_text(attrs: dict[str, Any], events: list[dict[str, Any]]) -> str | None:
    return _texts(attrs, events)[1]


# Every attribute key ``input_text`` / ``output_text`` can read a text from (flattened lists start at their
# ``.0.`` key): a span carrying none of them and no events has neither.
TEXT_KEYS = (frozenset(_INPUT_KEYS + _OUTPUT_KEYS + _INPUT_FIRST + _OUTPUT_FIRST
                       + ("gen_ai.input.messages", "gen_ai.output.messages")) | messages.FLAT_FIRST_KEYS)


def texts(attrs: dict[str, Any], events: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """(input_text, output_text); most tool and agent spans of a big run carry neither, decided in C."""
    if not events and attrs.keys().isdisjoint(TEXT_KEYS):
        return None, None
    return _texts(attrs, events)


def texts_and_calls(attrs: dict[str, Any], events: list[dict[str, Any]]
                    ) -> tuple[str | None, str | None, list[tuple[str | None, str | None]]]:
    """``texts`` and ``requested_tool_calls`` of a model call from one reading of its messages."""
    if not events and attrs.keys().isdisjoint(TEXT_KEYS):
        return None, None, []
    found = messages.messages(attrs, events)
    return (*_texts_of(attrs, found), messages.tool_calls(found["output"]) if found else [])


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
