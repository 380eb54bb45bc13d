"""A model call's messages, whatever shape they were sent in, as the GenAI conventions' message lists. Pure.

Four lists are read — ``system`` (instructions), ``input`` (the chat history sent), ``output`` (the
choices returned), ``tools`` (definitions offered) — each from the first of these sources that has it:

1. the span's own attributes ``gen_ai.system_instructions`` / ``gen_ai.input.messages`` /
   ``gen_ai.output.messages`` / ``gen_ai.tool.definitions`` (JSON strings or structured values);
2. the same attributes on a ``gen_ai.client.inference.operation.details`` event — a span event, or an OTLP log
   record naming the span (``storage.log_events`` makes those events of the span);
3. OpenInference's flattened ``llm.input_messages.{i}.message.*`` / ``llm.output_messages.{i}.message.*`` and
   ``llm.tools.{i}.tool.json_schema``;
4. OpenLLMetry's flattened ``gen_ai.prompt.{i}.*`` / ``gen_ai.completion.{i}.*``;
5. the older per-message events ``gen_ai.{system,user,assistant,tool}.message`` and ``gen_ai.choice``.

So what a span says about itself wins over what an event says of it, and the newest shape over older ones.
Messages come back as ``{"role", "parts": [{"type": "text", "content"} | {"type": "tool_call", "id", "name",
"arguments"} | {"type": "tool_call_response", "id", "result"} | ...], "finish_reason"?}``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from trajscope.collector.anyvalue import untag

DETAILS_EVENT = "gen_ai.client.inference.operation.details"
ATTRIBUTE_KEYS = {"system": "gen_ai.system_instructions", "input": "gen_ai.input.messages",
                  "output": "gen_ai.output.messages", "tools": "gen_ai.tool.definitions"}
# Older per-message events: event name → (list, role).
MESSAGE_EVENTS = {"gen_ai.system.message": ("input", "system"), "gen_ai.user.message": ("input", "user"),
                  "gen_ai.assistant.message": ("input", "assistant"), "gen_ai.tool.message": ("input", "tool"),
                  "gen_ai.choice": ("output", "assistant")}
_FLAT = (
    ("openinference", re.compile(r"^llm\.(input|output)_messages\.(\d+)\.message\.(.+)$")),
    ("openllmetry", re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(.+)$")),
)
# The keys a flattened message list is recognised by (its first message's role or content).
FLAT_FIRST_KEYS = frozenset(f"{prefix}.0.{suffix}" for prefix, sep in (
    ("llm.input_messages", "message."), ("llm.output_messages", "message."), ("gen_ai.prompt", ""),
    ("gen_ai.completion", "")) for suffix in (f"{sep}role", f"{sep}content"))
_FLAT_LIST = {"input": "input", "prompt": "input", "output": "output", "completion": "output"}
_FLAT_TOOL = re.compile(r"^tool_calls\.(\d+)\.(?:tool_call\.)?(id|name|arguments|function\.name|function\.arguments)$")


def _parsed(value: Any) -> Any:
    """A structured value, from a JSON string where one was sent."""
    if isinstance(value, str):
        stripped = value.lstrip()
        if stripped[:1] in ("[", "{"):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value
    return untag(value)


def _as_list(value: Any, role: str | None = None) -> list[dict[str, Any]] | None:
    value = _parsed(value)
    if isinstance(value, str):
        return [{"role": role or "user", "parts": [{"type": "text", "content": value}]}]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value:
        return None
    return [_message(item, role) for item in value]


def _message(item: Any, role: str | None) -> dict[str, Any]:
    if not isinstance(item, dict):
        return {"role": role or "user", "parts": [{"type": "text", "content": item if isinstance(item, str)
                                                    else json.dumps(item)}]}
    if "parts" in item or "role" in item:
        msg = dict(item)
        parts = msg.get("parts")
        if parts is None and "content" in msg:
            content = msg.pop("content")
            parts = ([{"type": "text", "content": content}] if isinstance(content, str)
                     else content if isinstance(content, list) else [{"type": "text", "content": json.dumps(content)}])
        msg["parts"] = parts or []
        msg.setdefault("role", role)
        return msg
    # A bare part (system instructions are a list of parts) or a tool definition.
    if role == "tools":
        return item
    return {"role": role, "parts": [item]}


def _flat(attrs: dict[str, Any]) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    found: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for source, pattern in _FLAT:
        rows: dict[tuple[str, int], dict[str, Any]] = {}
        for key, value in attrs.items():
            match = pattern.match(key)
            if match:
                which, index, field = _FLAT_LIST[match.group(1)], int(match.group(2)), match.group(3)
                rows.setdefault((which, index), {})[field] = untag(value)
        for which in ("input", "output"):
            if which in found:
                continue
            indexed = sorted((i, fields) for (w, i), fields in rows.items() if w == which)
            # A flattened list starts with a role or content at index 0 (``FLAT_FIRST_KEYS``).
            if indexed and indexed[0][0] == 0 and ("role" in indexed[0][1] or "content" in indexed[0][1]):
                found[which] = (source, [_flat_message(fields, which) for _, fields in indexed])
    return found


def _flat_message(fields: dict[str, Any], which: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    content = fields.get("content")
    if content is not None:
        parts.append({"type": "text", "content": content if isinstance(content, str) else json.dumps(content)})
    calls: dict[int, dict[str, Any]] = {}
    for key, value in fields.items():
        match = _FLAT_TOOL.match(key)
        if match:
            name = match.group(2).split(".")[-1]
            calls.setdefault(int(match.group(1)), {"type": "tool_call"})[name] = value
    parts.extend(calls[i] for i in sorted(calls))
    msg: dict[str, Any] = {"role": fields.get("role") or ("assistant" if which == "output" else "user"),
                           "parts": parts}
    if "finish_reason" in fields:
        msg["finish_reason"] = fields["finish_reason"]
    return msg


def _from_message_events(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    lists: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        kind = MESSAGE_EVENTS.get(event.get("name"))
        if kind is None:
            continue
        which, role = kind
        attrs = event.get("attributes") or {}
        payload = untag(attrs.get("message", attrs))
        if which == "output" and isinstance(payload, dict) and "message" in payload:
            payload = payload["message"]
        content = payload.get("content") if isinstance(payload, dict) else payload
        parts: list[dict[str, Any]] = []
        if isinstance(content, str):
            parts.append({"type": "text", "content": content})
        elif content is not None:
            parts.append({"type": "text", "content": json.dumps(content)})
        for call in (payload.get("tool_calls") or []) if isinstance(payload, dict) else []:
            if isinstance(call, dict):
                function = call.get("function") or {}
                parts.append({"type": "tool_call", "id": call.get("id"), "name": function.get("name"),
                              "arguments": function.get("arguments")})
        if role == "tool" and isinstance(payload, dict) and payload.get("id"):
            parts = [{"type": "tool_call_response", "id": payload.get("id"), "result": content}]
        lists.setdefault(which, []).append({"role": (payload.get("role") if isinstance(payload, dict) else None)
                                            or role, "parts": parts})
    return lists


def messages(attrs: dict[str, Any], events: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """``{"system", "input", "output", "tools", "sources"}`` — each list or None, and per list the source it
    was read from (``span``, ``event``, ``openinference``, ``openllmetry``, ``message_events``). None when the
    span carries no messages in any shape."""
    events = events or []
    out: dict[str, Any] = {name: None for name in ATTRIBUTE_KEYS}
    sources: dict[str, str] = {}
    details = [e.get("attributes") or {} for e in events if e.get("name") == DETAILS_EVENT]
    for name, key in ATTRIBUTE_KEYS.items():
        role = "system" if name == "system" else "tools" if name == "tools" else None
        if key in attrs and (found := _as_list(attrs[key], role)):
            out[name], sources[name] = found, "span"
            continue
        for event_attrs in details:
            if key in event_attrs and (found := _as_list(event_attrs[key], role)):
                out[name], sources[name] = found, "event"
                break
    if (out["input"] is None or out["output"] is None) and not FLAT_FIRST_KEYS.isdisjoint(attrs):
        for which, (source, found) in _flat(attrs).items():
            if out[which] is None:
                out[which], sources[which] = found, source
    if events and (out["input"] is None or out["output"] is None):
        for which, found in _from_message_events(events).items():
            if out[which] is None:
                out[which], sources[which] = found, "message_events"
    if not sources:
        return None
    out["sources"] = sources
    return out


def _part_text(part: Any) -> str | None:
    if not isinstance(part, dict):
        return part if isinstance(part, str) else None
    kind = part.get("type")
    if kind in ("text", "reasoning", None):
        content = part.get("content", part.get("text"))
        return content if isinstance(content, str) else None if content is None else json.dumps(content)
    if kind == "tool_call":
        arguments = part.get("arguments")
        shown = arguments if isinstance(arguments, str) else json.dumps(arguments) if arguments is not None else ""
        return f"→ {part.get('name') or 'tool'}({shown})"
    if kind == "tool_call_response":
        result = part.get("result", part.get("response"))
        return result if isinstance(result, str) else json.dumps(result)
    return f"[{kind}]"


def text_of(message: dict[str, Any]) -> str | None:
    """What a message says, for a preview: its text, its tool calls as ``→ name(arguments)``, tool results."""
    texts = [t for t in (_part_text(p) for p in message.get("parts") or ()) if t]
    return "\n".join(texts) if texts else None


def tool_calls(output: list[dict[str, Any]] | None) -> list[tuple[str | None, str | None]]:
    """(id, name) of every tool call in output messages, in order."""
    calls = []
    for message in output or ():
        for part in message.get("parts") or ():
            if isinstance(part, dict) and part.get("type") == "tool_call":
                calls.append((part.get("id"), part.get("name")))
    return calls
