"""Analysis: pure functions over a trace's spans (tree, trajectory, critical path). No I/O."""
