"""One trace's spans as a tree that bad data cannot break.

Real traces arrive with parents missing (the parent span was never exported, or arrives later), no root
at all, several roots, duplicated span ids and even parent cycles. The tree always has every span exactly
once: orphans and cycle members are attached under the primary root, and a virtual root stands in when no
span is a root. Iterative throughout, so a chain 10,000 spans deep does not hit the recursion limit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

# An all-zero span id is invalid in OTLP, so it can never collide with a real span.
VIRTUAL_ROOT_ID = "0000000000000000"


class Interval(NamedTuple):
    """The part of a span the tree needs."""

    span_id: str
    parent_span_id: str | None
    start: int
    end: int

    @property
    def duration(self) -> int:
        return max(self.end - self.start, 0)


@dataclass
class SpanTree:
    nodes: dict[str, Interval]
    root_id: str | None
    """The primary root: the longest real root (ties: earliest start), else the virtual root."""
    roots: list[str]
    """Depth-0 spans in display order: real roots by start time, or the virtual root alone."""
    children: dict[str, list[str]]
    """Effective children, sorted by (start, end, span_id)."""
    parent: dict[str, str | None]
    orphans: list[str] = field(default_factory=list)
    """Spans whose parent never arrived; attached under the primary root."""
    cycle_breaks: list[str] = field(default_factory=list)
    """Spans whose ancestry loops back on itself; attached under the primary root."""
    duplicates: list[str] = field(default_factory=list)
    virtual_root: bool = False
    _order: list[tuple[str, int]] | None = field(default=None, repr=False, compare=False)

    def sort_key(self, span_id: str) -> tuple[int, int, str]:
        node = self.nodes[span_id]
        return node.start, node.end, span_id

    def walk(self) -> list[tuple[str, int]]:
        """(span_id, depth) depth-first from each root, children in order. Computed once."""
        if self._order is None:
            order: list[tuple[str, int]] = []
            children = self.children
            for root in self.roots:
                stack = [(root, 0)]
                while stack:
                    span_id, depth = stack.pop()
                    order.append((span_id, depth))
                    kids = children.get(span_id)
                    if kids:
                        stack.extend((child, depth + 1) for child in reversed(kids))
            self._order = order
        return self._order


def _primary(roots: list[Interval]) -> Interval:
    return min(roots, key=lambda n: (-n.duration, n.start, n.span_id))


def build_tree(spans: Iterable[Interval]) -> SpanTree:
    nodes: dict[str, Interval] = {}
    duplicates: list[str] = []
    for span in spans:
        if span.span_id in nodes:
            duplicates.append(span.span_id)
        else:
            nodes[span.span_id] = span
    if not nodes:
        return SpanTree(nodes, None, [], {}, {})

    real_roots = [n for n in nodes.values() if n.parent_span_id is None]
    orphans = [n.span_id for n in nodes.values() if n.parent_span_id is not None and n.parent_span_id not in nodes]
    if len(orphans) > 1:
        orphans.sort(key=lambda s: (nodes[s].start, nodes[s].end, s))
    virtual = not real_roots
    if virtual:
        nodes[VIRTUAL_ROOT_ID] = Interval(VIRTUAL_ROOT_ID, None, min(n.start for n in nodes.values()),
                                          max(n.end for n in nodes.values()))
        root_id = VIRTUAL_ROOT_ID
        roots = [VIRTUAL_ROOT_ID]
    else:
        root_id = _primary(real_roots).span_id
        roots = [n.span_id for n in sorted(real_roots, key=lambda n: (n.start, n.end, n.span_id))]

    parent: dict[str, str | None] = {}
    children: dict[str, list[str]] = {}
    for span_id, node in nodes.items():
        parent_id = node.parent_span_id
        if span_id == VIRTUAL_ROOT_ID:
            parent_id = None
        elif parent_id is not None and parent_id not in nodes:
            parent_id = root_id
        parent[span_id] = parent_id
        if parent_id is not None:
            kids = children.get(parent_id)
            if kids is None:
                children[parent_id] = [span_id]
            else:
                kids.append(span_id)

    # Whatever the roots cannot reach hangs off a parent cycle: break each cycle at its earliest span.
    reached: set[str] = set()

    def reach(start: str) -> None:
        stack = [start]
        while stack:
            span_id = stack.pop()
            if span_id in reached:
                continue
            reached.add(span_id)
            stack.extend(children.get(span_id, ()))

    for root in roots:
        reach(root)
    cycle_breaks: list[str] = []
    if len(reached) < len(nodes):
        for span_id in sorted(set(nodes) - reached, key=lambda s: (nodes[s].start, nodes[s].end, s)):
            if span_id in reached:
                continue
            old = parent[span_id]
            if old is not None:
                children[old].remove(span_id)
            parent[span_id] = root_id
            children.setdefault(root_id, []).append(span_id)
            cycle_breaks.append(span_id)
            reach(span_id)

    crowded = [kids for kids in children.values() if len(kids) > 1]
    if crowded:
        order = {span_id: (n.start, n.end, span_id) for span_id, n in nodes.items()}
        for kids in crowded:
            kids.sort(key=order.__getitem__)
    return SpanTree(nodes, root_id, roots, children, parent, orphans, cycle_breaks, duplicates, virtual)
