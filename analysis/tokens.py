"""Which spans' token counts to add up, so that each model call counts once."""

from __future__ import annotations

from collections.abc import Iterable


def token_counting_spans(spans: Iterable[tuple[str, str | None, bool]]) -> set[str]:
    """Span ids whose tokens count, from (span_id, parent_span_id, carries_tokens) triples: those carrying
    tokens with no descendant carrying tokens.

    A framework's wrapper span (a LangChain LLM span) and the client span nested in it (the OpenAI call)
    often both report the same call's usage; only the innermost counts. Cycles in bad data are tolerated.
    """
    parent_of: dict[str, str | None] = {}
    carriers: set[str] = set()
    for span_id, parent_id, carries in spans:
        parent_of[span_id] = parent_id
        if carries:
            carriers.add(span_id)
    shadowed: set[str] = set()
    for span_id in carriers:
        seen = {span_id}
        parent = parent_of.get(span_id)
        while parent is not None and parent not in seen and parent not in shadowed:
            shadowed.add(parent)
            seen.add(parent)
            parent = parent_of.get(parent)
    return carriers - shadowed
