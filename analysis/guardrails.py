"""Guardrail checks of one span, in whatever style the sender used, normalised to one record. Pure.

No standard outcome field exists (OpenInference has a GUARDRAIL span kind and nothing more), so
trajscope documents its own convention and maps the other styles onto it (``../shared/SEMCONV.md``):

- trajscope: ``guardrail.name``, ``guardrail.triggered`` (bool), ``guardrail.action`` (block | redact |
  warn | allow), ``guardrail.reason``, ``guardrail.score`` — on a span, or on span events named
  ``guardrail`` (one check per event);
- the ``guard.*`` prefix some SDKs and peers use, with the same suffixes (and ``guard.passed``, inverted);
- NeMo Guardrails-style activated rails: ``rail.name``, ``rail.type``, ``rail.stop`` (a rail that stopped
  the flow blocked it);
- OpenAI Agents SDK guardrail spans (``triggered`` with the guardrail's name as the span name) and any
  OpenInference ``GUARDRAIL`` span, whose outcome is unknown unless one of the above is present.

Without an explicit ``triggered``, ``block`` and ``redact`` count as hits and other actions do not.
"""

from __future__ import annotations

from typing import Any, NamedTuple

ACTIONS = ("block", "redact", "warn", "allow")


class Check(NamedTuple):
    name: str
    triggered: bool | None
    action: str | None
    reason: str | None
    score: float | None
    source: str  # "span" or "event"
    time_unix_nano: int | None = None  # an event's time; a span's check happens at the span's start


# prefix → (name, triggered, passed (inverted triggered), action, reason, score) keys
_STYLES: tuple[tuple[str, ...], ...] = (
    ("guardrail.name", "guardrail.triggered", "guardrail.passed", "guardrail.action", "guardrail.reason",
     "guardrail.score"),
    ("guard.name", "guard.triggered", "guard.passed", "guard.action", "guard.reason", "guard.score"),
)


# Per style, the keys whose presence means the style is used.
_STYLE_SIGNALS = tuple(frozenset(style[:4]) for style in _STYLES)


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _action(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and value.lower() in ACTIONS else None


def _from_attrs(attrs: dict[str, Any], default_name: str, source: str) -> Check | None:
    for (name_key, trig_key, pass_key, action_key, reason_key, score_key), signal in zip(_STYLES, _STYLE_SIGNALS,
                                                                                        strict=True):
        if signal.isdisjoint(attrs):
            continue
        triggered = _bool(attrs.get(trig_key))
        if triggered is None and (passed := _bool(attrs.get(pass_key))) is not None:
            triggered = not passed
        action = _action(attrs.get(action_key))
        if triggered is None and action is not None:
            triggered = action in ("block", "redact")
        name = attrs.get(name_key)
        reason = attrs.get(reason_key)
        return Check(name if isinstance(name, str) and name else default_name, triggered, action,
                     reason if isinstance(reason, str) else None, _float(attrs.get(score_key)), source)
    if "rail.name" in attrs or "rail.stop" in attrs:
        stopped = _bool(attrs.get("rail.stop"))
        name = attrs.get("rail.name")
        return Check(name if isinstance(name, str) and name else default_name, stopped,
                     "block" if stopped else None, None, None, source)
    return None


# Keys whose presence means the span may record a guardrail check (the decoder flags spans by them).
SIGNAL_KEYS = frozenset(k for style in _STYLES for k in style[:4]) | {"rail.name", "rail.stop"}
# Every span attribute ``checks`` reads: the decoder hands it just these.
ATTRIBUTE_KEYS = frozenset(k for style in _STYLES for k in style) | {"rail.name", "rail.stop", "triggered"}


def checks(attrs: dict[str, Any], events: list[dict[str, Any]] | None, span_name: str,
           category: str) -> list[Check]:
    """Every guardrail check the span records: the span's own (if any) then one per ``guardrail`` event."""
    if not events and category != "guardrail" and attrs.keys().isdisjoint(SIGNAL_KEYS):
        return []  # most spans: decided in C, on the ingest hot path
    found: list[Check] = []
    own = _from_attrs(attrs, span_name, "span")
    if own is None and category == "guardrail":
        own = Check(span_name, _bool(attrs.get("triggered")), None, None, None, "span")
    if own is not None:
        found.append(own)
    for event in events or ():
        if event.get("name") == "guardrail":
            check = _from_attrs(event.get("attributes") or {}, span_name, "event") or Check(
                span_name, None, None, None, None, "event")
            when = event.get("time_unix_nano")
            found.append(check._replace(time_unix_nano=when if isinstance(when, int) else None))
    return found


def hits(found: list[Check]) -> int:
    return sum(1 for c in found if c.triggered)


def outcome(found: list[Check]) -> dict[str, Any] | None:
    """``{name, triggered, action}`` of a span's first check: what a trajectory step shows."""
    if not found:
        return None
    first = found[0]
    return {"name": first.name, "triggered": first.triggered, "action": first.action}
