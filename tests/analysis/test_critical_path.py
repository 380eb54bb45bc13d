"""One case per trace shape. Each opens with a drawing of the spans on a time axis (one column = 1 ns)
and lists the expected critical sections."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trajscope.analysis.critical_path import critical_path, critical_time, self_time
from trajscope.analysis.span_tree import VIRTUAL_ROOT_ID, Interval, build_tree


def iv(span_id, parent, start, end):
    return Interval(span_id, parent, start, end)


def sections(spans, root=None):
    return [(s.span_id, s.start, s.end) for s in critical_path(build_tree(spans), root)]


def test_critical_path_sequential_children():
    # root  |0========================20|
    # a       |2====8|
    # b                 |10=====16|
    spans = [iv("root", None, 0, 20), iv("a", "root", 2, 8), iv("b", "root", 10, 16)]
    assert sections(spans) == [("root", 0, 2), ("a", 2, 8), ("root", 8, 10), ("b", 10, 16), ("root", 16, 20)]


def test_critical_path_nested_children():
    # root  |0==================20|
    # a       |2=============16|
    # a1         |5====10|
    spans = [iv("root", None, 0, 20), iv("a", "root", 2, 16), iv("a1", "a", 5, 10)]
    assert sections(spans) == [("root", 0, 2), ("a", 2, 5), ("a1", 5, 10), ("a", 10, 16), ("root", 16, 20)]


def test_critical_path_parallel_tools_last_finisher_blocks():
    # root  |0====================20|
    # t1      |2======10|
    # t2      |2=============15|        <- finishes last: the root waits on t2
    # t3         |4===8|
    spans = [iv("root", None, 0, 20), iv("t1", "root", 2, 10), iv("t2", "root", 2, 15), iv("t3", "root", 4, 8)]
    assert sections(spans) == [("root", 0, 2), ("t2", 2, 15), ("root", 15, 20)]


def test_critical_path_back_to_back_siblings_both_count():
    # root  |0==============12|
    # a     |0====5|
    # b           |5========12|     <- a ends exactly when b starts: a is on the path (Jaeger's `<` bug)
    spans = [iv("root", None, 0, 12), iv("a", "root", 0, 5), iv("b", "root", 5, 12)]
    assert sections(spans) == [("a", 0, 5), ("b", 5, 12)]


def test_critical_path_child_overflowing_parent_is_clipped():
    # root  |0==========10|
    # a             |6=========14|   <- clipped to 6..10
    spans = [iv("root", None, 0, 10), iv("a", "root", 6, 14)]
    assert sections(spans) == [("root", 0, 6), ("a", 6, 10)]


def test_critical_path_child_after_parent_end_is_ignored():
    # root  |0=====6|
    # late           |8===12|
    spans = [iv("root", None, 0, 6), iv("late", "root", 8, 12)]
    assert sections(spans) == [("root", 0, 6)]


def test_critical_path_zero_duration_spans_take_no_time_and_never_hang():
    # root  |0======10|
    # z          |4|            (4..4)
    # zr             |10|       (10..10, zero length at the root's end)
    spans = [iv("root", None, 0, 10), iv("z", "root", 4, 4), iv("zr", "root", 10, 10)]
    assert sections(spans) == [("root", 0, 10)]
    assert sections([iv("only", None, 5, 5)]) == []


def test_critical_path_orphans_attach_under_root():
    # root  |0==========10|
    # orph      |3===7|       parent "gone" never arrived
    spans = [iv("root", None, 0, 10), iv("orph", "gone", 3, 7)]
    tree = build_tree(spans)
    assert tree.orphans == ["orph"]
    assert sections(spans) == [("root", 0, 3), ("orph", 3, 7), ("root", 7, 10)]


def test_critical_path_two_roots_attributes_the_longest():
    # r1    |0===5|
    # r2        |3==========15|     <- longest root
    # c2            |6==9|
    spans = [iv("r1", None, 0, 5), iv("r2", None, 3, 15), iv("c2", "r2", 6, 9)]
    tree = build_tree(spans)
    assert tree.root_id == "r2" and tree.roots == ["r1", "r2"]
    assert sections(spans) == [("r2", 3, 6), ("c2", 6, 9), ("r2", 9, 15)]


def test_critical_path_missing_root_uses_a_virtual_root():
    # (virtual) |2=============14|
    # a         |2====6|            parent "p" missing
    # b                 |8=====14|  parent "p" missing
    spans = [iv("a", "p", 2, 6), iv("b", "p", 8, 14)]
    tree = build_tree(spans)
    assert tree.virtual_root and tree.root_id == VIRTUAL_ROOT_ID
    assert sections(spans) == [("a", 2, 6), (VIRTUAL_ROOT_ID, 6, 8), ("b", 8, 14)]


def test_critical_path_deep_chain_of_10000():
    # s0 |0=========================20000|
    # s1  |1=======================19999|
    # ...  each child one ns inside its parent on both sides
    depth = 10_000
    spans = [iv("s0", None, 0, 2 * depth)] + [iv(f"s{i}", f"s{i - 1}", i, 2 * depth - i) for i in range(1, depth)]
    result = critical_path(build_tree(spans))
    assert sum(s.duration for s in result) == 2 * depth
    assert len(result) == 2 * depth - 1  # each span: one ns before its child, one after (the last: 2)


def test_critical_path_cycle_and_duplicates_do_not_hang():
    # root |0======10|; a and b each name the other as parent; "a" is sent twice
    spans = [iv("root", None, 0, 10), iv("a", "b", 1, 4), iv("b", "a", 5, 8), iv("a", "b", 1, 4)]
    tree = build_tree(spans)
    assert tree.duplicates == ["a"] and tree.cycle_breaks == ["a"]
    assert sum(s.duration for s in critical_path(tree)) == 10


def test_self_time_subtracts_the_union_of_children():
    # root |0============12|
    # a      |2====6|
    # b         |4======9|       a ∪ b = 2..9 → root self = 12 - 7 = 5
    spans = [iv("root", None, 0, 12), iv("a", "root", 2, 6), iv("b", "root", 4, 9)]
    assert self_time(build_tree(spans)) == {"root": 5, "a": 4, "b": 5}


@st.composite
def random_traces(draw):
    n = draw(st.integers(1, 40))
    spans = []
    for i in range(n):
        start = draw(st.integers(0, 1000))
        end = start + draw(st.integers(0, 300))
        parent = None if i == 0 else draw(st.one_of(st.none(), st.sampled_from([f"s{j}" for j in range(n)]),
                                                    st.just("missing")))
        spans.append(iv(f"s{i}", parent, start, end))
    return spans


@settings(max_examples=300, deadline=None)
@given(random_traces())
def test_property_contributions_are_non_negative_and_sum_to_the_root_duration(spans):
    tree = build_tree(spans)
    result = critical_path(tree)
    root = tree.nodes[tree.root_id]
    assert all(s.duration > 0 for s in result)
    assert sum(critical_time(result).values()) == root.duration
    # sections tile the root's interval without gaps or overlaps
    cursor = root.start
    for s in result:
        assert s.start == cursor
        cursor = s.end
    assert cursor == max(root.end, root.start) or not result


@settings(max_examples=300, deadline=None)
@given(random_traces())
def test_property_every_span_appears_once_in_the_tree_walk(spans):
    tree = build_tree(spans)
    walked = [span_id for span_id, _ in tree.walk() if span_id != VIRTUAL_ROOT_ID]
    assert sorted(walked) == sorted({s.span_id for s in spans})
