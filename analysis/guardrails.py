"""Guardrail checks of one span, in whatever style the sender used, normalised to one record. Pure.

No standard outcome field exists (OpenInference has a GUARDRAIL span kind and nothing more), so
trajscope documents its own convention and maps the other styles onto it (``../shared/SEMCONV.md``):

- trajscope: ``guardrail.name``, ``guardrail.triggered`` (bool), ``guardrail.action`` (block | redact |
  warn | allow), ``guardrail.reason``, ``guardrail.score`` — on a span, or on span events named
  ``guardrail`` (one check per event);
- the ``guard.*`` prefix some SDKs and peers use, with the same suffixes (and ``guard.passed``, inverted);
- the GenAI conventions' ``apply_guardrail`` spans and ``gen_ai.guardrail.result`` / ``gen_ai.security.finding``
  events (``gen_ai.security.decision.type`` allow | deny | modify | warn | audit, ``...decision.reason``), and
  OpenLLMetry's guardrail module (``gen_ai.guardrail.name``, ``gen_ai.guardrail.status`` PASSED | FAILED);
- NeMo Guardrails-style activated rails: ``rail.name``, ``rail.type``, ``rail.stop`` (a rail that stopped
  the flow blocked it);
- OpenAI Agents SDK guardrail spans (``triggered`` with the guardrail's name as the span name) and any
  OpenInference ``GUARDRAIL`` span, whose outcome is unknown unless one of the above is present.

Without an explicit ``triggered``, ``block`` and ``redact`` count as hits and other actions do not.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from trajscope.collector.normalise import _as_float

ACTIONS = ("block", "redact", "warn", "allow")


class Check(NamedTuple):
    name: str
    triggered: bool | None
    action: str | None
    reason: str | None
    score: float | None
    source: str  # "span" or "event"
    time_unix_nano: int | None = None  # an event's time; a span's check happens at the span's start


class Style(NamedTuple):
    """Where one style keeps a check's fields; a style applies when any of its ``signals`` keys is present."""
    names: tuple[str, ...]
    triggered: tuple[str, ...] = ()          # booleans: true means the check hit
    passed: tuple[str, ...] = ()             # booleans, inverted
    status: tuple[str, ...] = ()             # strings looked up (lower-cased) in STATUS_HIT
    action: tuple[str, ...] = ()             # strings looked up (lower-cased) in ACTION_OF
    reason: tuple[str, ...] = ()
    score: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()               # booleans: true means the check stopped the flow (a block)

    @property
    def signals(self) -> frozenset[str]:
        return frozenset(self.names + self.triggered + self.passed + self.status + self.action + self.stop)

    @property
    def keys(self) -> frozenset[str]:
        return self.signals | frozenset(self.reason + self.score)


# Tried in order; the first style with a signal key present reads the check.
STYLES: tuple[Style, ...] = (
    Style(names=("guardrail.name",), triggered=("guardrail.triggered",), passed=("guardrail.passed",),
          action=("guardrail.action",), reason=("guardrail.reason",), score=("guardrail.score",)),
    Style(names=("guard.name",), triggered=("guard.triggered",), passed=("guard.passed",),
          action=("guard.action",), reason=("guard.reason",), score=("guard.score",)),
    # GenAI conventions (``apply_guardrail`` spans, ``gen_ai.guardrail.result`` / security finding events)
    # and OpenLLMetry's guardrail module (``gen_ai.guardrail.status`` PASSED | FAILED).
    Style(names=("gen_ai.guardrail.name", "gen_ai.guardian.name", "gen_ai.security.policy.name"),
          status=("gen_ai.guardrail.status",), action=("gen_ai.security.decision.type",),
          reason=("gen_ai.security.decision.reason", "gen_ai.guardrail.error_message",
                  "gen_ai.guardrail.error_type"),
          score=("gen_ai.security.risk.score",)),
    # NeMo Guardrails-style activated rails.
    Style(names=("rail.name",), stop=("rail.stop",)),
)

# Normalised action of each value a style may send (lower-cased).
ACTION_OF: dict[str, str] = {
    "block": "block", "redact": "redact", "warn": "warn", "allow": "allow",
    "deny": "block", "modify": "redact", "audit": "allow",
}
# Whether a status string means the check hit (lower-cased).
STATUS_HIT: dict[str, bool] = {"failed": True, "fail": True, "passed": False, "pass": False}
# Span events that each record one check.
EVENT_NAMES = frozenset({"guardrail", "gen_ai.guardrail.result", "gen_ai.security.finding"})


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _action(value: Any) -> str | None:
    return ACTION_OF.get(value.lower()) if isinstance(value, str) else None


def _first(attrs: dict[str, Any], keys: tuple[str, ...], read: Any) -> Any:
    for key in keys:
        if key in attrs:
            value = read(attrs[key])
            if value is not None:
                return value
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _from_attrs(attrs: dict[str, Any], default_name: str, source: str) -> Check | None:
    for style, signals in _STYLE_SIGNALS:
        if signals.isdisjoint(attrs):
            continue
        triggered = _first(attrs, style.triggered, _bool)
        if triggered is None and (passed := _first(attrs, style.passed, _bool)) is not None:
            triggered = not passed
        if triggered is None:
            triggered = _first(attrs, style.status, lambda v: STATUS_HIT.get(v.lower()) if isinstance(v, str)
                               else None)
        action = _first(attrs, style.action, _action)
        if (stopped := _first(attrs, style.stop, _bool)) is not None:
            triggered, action = stopped, "block" if stopped else action
        if triggered is None and action is not None:
            triggered = action in ("block", "redact")
        return Check(_first(attrs, style.names, _text) or default_name, triggered, action,
                     _first(attrs, style.reason, _text), _first(attrs, style.score, _as_float), source)
    return None


_STYLE_SIGNALS = tuple((style, style.signals) for style in STYLES)
# Keys whose presence means the span may record a guardrail check (the decoder flags spans by them).
SIGNAL_KEYS = frozenset().union(*(style.signals for style in STYLES))
# Every span attribute ``checks`` reads: the decoder hands it just these.
ATTRIBUTE_KEYS = frozenset().union(*(style.keys for style in STYLES)) | {"triggered"}


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
        if event.get("name") in EVENT_NAMES:
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
