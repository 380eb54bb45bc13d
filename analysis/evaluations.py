"""Evaluation results recorded on a span, as structured data. Pure.

The GenAI conventions' ``gen_ai.evaluation.result`` event (a span event, or an OTLP log record naming the
span): ``gen_ai.evaluation.name``, ``gen_ai.evaluation.score.value``, ``gen_ai.evaluation.score.label``,
``gen_ai.evaluation.explanation``, and ``gen_ai.response.id`` for the response it judged.
"""

from __future__ import annotations

from typing import Any

from trajscope.collector.normalise import _as_float

EVENT_NAME = "gen_ai.evaluation.result"
FIELDS = {"name": "gen_ai.evaluation.name", "score_value": "gen_ai.evaluation.score.value",
          "score_label": "gen_ai.evaluation.score.label", "explanation": "gen_ai.evaluation.explanation",
          "response_id": "gen_ai.response.id"}


def of_events(events: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """One record per evaluation event, in event order; ``source`` says span event or log record."""
    found = []
    for event in events or ():
        if event.get("name") != EVENT_NAME:
            continue
        attrs = event.get("attributes") or {}
        item: dict[str, Any] = {}
        for field, key in FIELDS.items():
            value = attrs.get(key)
            item[field] = _as_float(value) if field == "score_value" else value if isinstance(value, str) else None
        item["time_unix_nano"] = event.get("time_unix_nano")
        item["source"] = event.get("source", "span")
        found.append(item)
    return found
