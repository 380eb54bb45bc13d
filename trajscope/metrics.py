"""Self-metrics in the Prometheus text exposition format (``GET /metrics``): a histogram type and the renderer.

Counters and gauges come from the components' own stats at scrape time; histograms are kept by the code that
times something (loads, API requests). Nothing here reads the store.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable

# Seconds: from a fast indexed read to a stalled load.
DEFAULT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """A cumulative histogram of observations (seconds), safe from any thread."""

    def __init__(self, buckets: Iterable[float] = DEFAULT_BUCKETS) -> None:
        self.buckets = tuple(sorted(buckets))
        self._counts = [0] * (len(self.buckets) + 1)  # the last is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.buckets, value)] += 1
            self._sum += value

    def snapshot(self) -> tuple[list[tuple[float, int]], int, float]:
        """(cumulative count per upper bound, +Inf last; total count; sum)."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, running = [], 0
        for bound, count in zip((*self.buckets, math.inf), counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return cumulative, running, total


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    escaped = (f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
               for k, v in sorted(labels.items()))
    return "{" + ",".join(escaped) + "}"


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    return repr(float(value)) if isinstance(value, float) and not float(value).is_integer() else str(int(value))


class Exposition:
    """Builds one scrape's text: each metric family once, with its HELP and TYPE."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._declared: set[str] = set()

    def _declare(self, name: str, kind: str, help_text: str) -> None:
        if name not in self._declared:
            self._declared.add(name)
            self._lines.append(f"# HELP {name} {help_text}")
            self._lines.append(f"# TYPE {name} {kind}")

    def counter(self, name: str, value: float, help_text: str, **labels: str) -> None:
        self._declare(name, "counter", help_text)
        self._lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def gauge(self, name: str, value: float, help_text: str, **labels: str) -> None:
        self._declare(name, "gauge", help_text)
        self._lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def histogram(self, name: str, histogram: Histogram, help_text: str, **labels: str) -> None:
        self._declare(name, "histogram", help_text)
        cumulative, count, total = histogram.snapshot()
        for bound, running in cumulative:
            self._lines.append(f"{name}_bucket{_labels({**labels, 'le': _number(bound)})} {running}")
        self._lines.append(f"{name}_sum{_labels(labels)} {_number(total)}")
        self._lines.append(f"{name}_count{_labels(labels)} {count}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"
