"""What a span says, whatever the dialect: input/output text, the tool calls an LLM requested, tool
arguments. Reads the typed-JSON attributes and events of a stored span."""

from __future__ import annotations

import json
import re
from typing import Any

PREVIEW_CHARS = 200

_INPUT_KEYS = ("input.value", "gen_ai.input.messages", "traceloop.entity.input", "gen_ai.tool.call.arguments",
               "tool.parameters", "gen_ai.retrieval.query.text", "gen_ai.prompt")
_OUTPUT_KEYS = ("output.value", "gen_ai.output.messages", "traceloop.entity.output", "gen_ai.tool.call.result",
                "gen_ai.completion")
# Flattened message lists: the last prompt message and the first completion are the interesting ones.
_INPUT_FLAT = (re.compile(r"^gen_ai\.prompt\.(\d+)\.content$"),
               re.compile(r"^llm\.input_messages\.(\d+)\.message\.content$"))
_OUTPUT_FLAT = (re.compile(r"^gen_ai\.completion\.(\d+)\.content$"),
                re.compile(r"^llm\.output_messages\.(\d+)\.message\.content$"))
_INPUT_FIRST = ("gen_ai.prompt.0.content", "llm.input_messages.0.message.content")
_OUTPUT_FIRST = ("gen_ai.completion.0.content", "llm.output_messages.0.message.content")
_ARGUMENT_KEYS = ("gen_ai.tool.call.arguments", "tool.parameters", "tool_call.function.arguments", "input.value",
                  "traceloop.entity.input")
_TOOL_CALL_FLAT = re.compile(
    r"^(?:llm\.output_messages\.(\d+)\.message\.tool_calls\.(\d+)\.tool_call\.(id|function\.name)"
    r"|gen_ai\.completion\.(\d+)\.tool_calls\.(\d+)\.(id|name))$")


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


def _flat(attrs: dict[str, Any], patterns: tuple[re.Pattern[str], ...], first_keys: tuple[str, ...], *,
          last: bool) -> str | None:
    # Flattened lists start at index 0: without a first element there is nothing to scan for.
    if first_keys[0] not in attrs and first_keys[1] not in attrs:
        return None
    found = []
    for key, value in attrs.items():
        for pattern in patterns:
            match = pattern.match(key)
            if match and isinstance(value, str):
                found.append((int(match.group(1)), value))
    if not found:
        return None
    found.sort()
    return found[-1][1] if last else found[0][1]


def _event_text(events: list[dict[str, Any]], names: tuple[str, ...], *, last: bool) -> str | None:
    texts = []
    for event in events:
        if event.get("name") in names:
            attrs = event.get("attributes") or {}
            value = attrs.get("content", attrs.get("message"))
            text = _text(value, last=last) if value is not None else None
            if text:
                texts.append(text)
    if not texts:
        return None
    return texts[-1] if last else texts[0]


def input_text(attrs: dict[str, Any], events: list[dict[str, Any]]) -> str | None:
    for key in _INPUT_KEYS:
        if key in attrs:
            return _text(attrs[key], last=True)
    return _flat(attrs, _INPUT_FLAT, _INPUT_FIRST, last=True) or _event_text(
        events, ("gen_ai.user.message", "gen_ai.system.message"), last=True)


def output_text(attrs: dict[str, Any], events: list[dict[str, Any]]) -> str | None:
    for key in _OUTPUT_KEYS:
        if key in attrs:
            return _text(attrs[key], last=False)
    return _flat(attrs, _OUTPUT_FLAT, _OUTPUT_FIRST, last=False) or _event_text(events, ("gen_ai.choice",), last=False)


# Every attribute key ``input_text`` / ``output_text`` can read a text from (flattened lists start at their
# ``.0.`` key): a span carrying none of them and no events has neither.
TEXT_KEYS = frozenset(_INPUT_KEYS + _OUTPUT_KEYS + _INPUT_FIRST + _OUTPUT_FIRST)


def texts(attrs: dict[str, Any], events: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """(input_text, output_text); most tool and agent spans of a big run carry neither, decided in C."""
    if not events and attrs.keys().isdisjoint(TEXT_KEYS):
        return None, None
    return input_text(attrs, events), output_text(attrs, events)


def preview(text: str | None) -> str | None:
    return None if text is None else text[:PREVIEW_CHARS]


def requested_tool_calls(attrs: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    """(tool call id, tool name) pairs an LLM span's output asked for, in order."""
    calls: list[tuple[str | None, str | None]] = []
    raw = attrs.get("gen_ai.output.messages")
    if isinstance(raw, str):
        try:
            messages = json.loads(raw)
        except ValueError:
            messages = []
        for message in messages if isinstance(messages, list) else []:
            parts = message.get("parts") if isinstance(message, dict) else None
            for part in parts if isinstance(parts, list) else []:
                if isinstance(part, dict) and part.get("type") == "tool_call":
                    calls.append((part.get("id"), part.get("name")))
    flat: dict[tuple[int, int], dict[str, str]] = {}
    for key, value in attrs.items():
        match = _TOOL_CALL_FLAT.match(key)
        if match and isinstance(value, str):
            groups = match.groups()
            i, j, what = (groups[0], groups[1], groups[2]) if groups[0] is not None else groups[3:]
            flat.setdefault((int(i), int(j)), {})["id" if what == "id" else "name"] = value
    calls.extend((flat[k].get("id"), flat[k].get("name")) for k in sorted(flat))
    return calls


def tool_arguments(attrs: dict[str, Any]) -> str | None:
    for key in _ARGUMENT_KEYS:
        if key in attrs:
            value = attrs[key]
            return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return None
