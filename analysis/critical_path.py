"""Critical path and latency attribution over a ``SpanTree``.

Definition (after Jaeger's, with its off-by-one fixed): walk back from the root's end. A span is waiting
on its last-finishing child; before that child started, on the last child that finished at or before
that start (a child ending exactly when the next begins counts — Jaeger used a strict ``<``); time covered
by no such child is the span's own. Children are first clipped to their parent's (clipped) interval;
children that start at or after the parent's end are ignored. Every nanosecond of the root's duration is
attributed to exactly one span.
"""

from __future__ import annotations

from dataclasses import dataclass

from trajscope.analysis.span_tree import SpanTree


@dataclass(frozen=True)
class Section:
    """A stretch of the root's wall time spent in ``span_id``'s own work."""

    span_id: str
    start: int
    end: int

    @property
    def duration(self) -> int:
        return self.end - self.start


def _clipped_children(tree: SpanTree, span_id: str, lo: int, hi: int) -> list[tuple[int, int, str]]:
    """(start, end, id) of the children overlapping [lo, hi], clipped to it; latest end first, and among
    equal ends the earliest start (the longer child covers the most waiting)."""
    out = []
    for child in tree.children.get(span_id, ()):
        node = tree.nodes[child]
        start, end = max(node.start, lo), min(node.end, hi)
        if start < end:
            out.append((start, end, child))
    out.sort(key=lambda c: (-c[1], c[0], c[2]))
    return out


def critical_path(tree: SpanTree, root_id: str | None = None) -> list[Section]:
    """The critical path of ``root_id`` (default: the tree's primary root), in time order."""
    root_id = root_id or tree.root_id
    if root_id is None:
        return []
    root = tree.nodes[root_id]
    sections: list[Section] = []  # built backwards in time, reversed at the end
    # Frame: [span_id, window start, current time t, clipped children, index of next candidate]
    stack = [[root_id, root.start, max(root.end, root.start),
              _clipped_children(tree, root_id, root.start, root.end), 0]]
    while stack:
        frame = stack[-1]
        span_id, lo, t, kids, i = frame
        # Children ending after t overlap the one already chosen: they never block, and since t only
        # decreases they never will.
        while i < len(kids) and kids[i][1] > t:
            i += 1
        if i < len(kids):
            start, end, child = kids[i]
            frame[4] = i + 1
            if end < t:
                sections.append(Section(span_id, end, t))
            frame[2] = start
            if child in tree.children:
                stack.append([child, start, end, _clipped_children(tree, child, start, end), 0])
            else:  # a leaf owns its whole (clipped) interval; most spans are leaves
                sections.append(Section(child, start, end))
        else:
            if t > lo:
                sections.append(Section(span_id, lo, t))
            stack.pop()
    sections.reverse()
    merged: list[Section] = []
    for s in sections:
        if merged and merged[-1].span_id == s.span_id and merged[-1].end == s.start:
            merged[-1] = Section(s.span_id, merged[-1].start, s.end)
        else:
            merged.append(s)
    return merged


def critical_time(sections: list[Section]) -> dict[str, int]:
    """Nanoseconds of critical-path time per span id."""
    out: dict[str, int] = {}
    for s in sections:
        out[s.span_id] = out.get(s.span_id, 0) + s.duration
    return out


def self_time(tree: SpanTree) -> dict[str, int]:
    """Each span's own time: its duration minus the union of its children's (clipped) intervals."""
    out: dict[str, int] = {}
    children = tree.children
    for span_id, node in tree.nodes.items():
        kids = children.get(span_id)
        if not kids:  # most spans are leaves: all their time is their own
            out[span_id] = node.duration
            continue
        covered, cursor = 0, node.start
        intervals = sorted((max(tree.nodes[c].start, node.start), min(tree.nodes[c].end, node.end))
                           for c in kids)
        for start, end in intervals:
            start = max(start, cursor)
            if end > start:
                covered += end - start
                cursor = end
        out[span_id] = max(node.duration - covered, 0)
    return out
