"""Critical path and latency attribution over a ``SpanTree``.

Definition (after Jaeger's, with its off-by-one fixed): walk back from the root's end. A span is waiting
on its last-finishing child; before that child started, on the last child that finished at or before
that start (a child ending exactly when the next begins counts — Jaeger used a strict ``<``); time covered
by no such child is the span's own. Children are first clipped to their parent's (clipped) interval;
children that start at or after the parent's end are ignored. Every nanosecond of the root's duration is
attributed to exactly one span.
"""

from __future__ import annotations

from typing import NamedTuple

from trajscope.analysis.span_tree import SpanTree


class Section(NamedTuple):
    """A stretch of the root's wall time spent in ``span_id``'s own work. A tuple, not a frozen dataclass:
    a 10k-span run has thousands of sections, and a frozen dataclass's constructor is ~5× dearer."""

    span_id: str
    start: int
    end: int

    @property
    def duration(self) -> int:
        return self.end - self.start


def _clipped_children(tree: SpanTree, span_id: str, lo: int, hi: int) -> list[tuple[int, int, str]]:
    """(-end, start, id) of the children overlapping [lo, hi], clipped to it, sorted: latest end first, and
    among equal ends the earliest start (the longer child covers the most waiting). The negated end lets the
    sort compare plain tuples in C instead of calling a key function per child."""
    out = []
    nodes = tree.nodes
    for child in tree.children.get(span_id, ()):
        node = nodes[child]
        start = node.start if node.start > lo else lo
        end = node.end if node.end < hi else hi
        if start < end:
            out.append((-end, start, child))
    out.sort()
    return out


def critical_path(tree: SpanTree, root_id: str | None = None) -> list[Section]:
    """The critical path of ``root_id`` (default: the tree's primary root), in time order."""
    root_id = root_id or tree.root_id
    if root_id is None:
        return []
    root = tree.nodes[root_id]
    children = tree.children
    sections: list[tuple[str, int, int]] = []  # built backwards in time, reversed at the end
    add = sections.append
    # Frame: [span_id, window start, current time t, clipped children, index of next candidate]
    stack = [[root_id, root.start, max(root.end, root.start),
              _clipped_children(tree, root_id, root.start, root.end), 0]]
    while stack:
        frame = stack[-1]
        span_id, lo, t, kids, i = frame
        # Children ending after t overlap the one already chosen: they never block, and since t only
        # decreases they never will.
        n = len(kids)
        while i < n and -kids[i][0] > t:
            i += 1
        if i < n:
            neg_end, start, child = kids[i]
            end = -neg_end
            frame[4] = i + 1
            if end < t:
                add((span_id, end, t))
            frame[2] = start
            if child in children:
                stack.append([child, start, end, _clipped_children(tree, child, start, end), 0])
            else:  # a leaf owns its whole (clipped) interval; most spans are leaves
                add((child, start, end))
        else:
            if t > lo:
                add((span_id, lo, t))
            stack.pop()
    sections.reverse()
    merged: list[Section] = []
    for span_id, start, end in sections:
        if merged and merged[-1].span_id == span_id and merged[-1].end == start:
            merged[-1] = Section(span_id, merged[-1].start, end)
        else:
            merged.append(Section(span_id, start, end))
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
            out[span_id] = node.end - node.start if node.end > node.start else 0
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
