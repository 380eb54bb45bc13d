"""Finished analysis responses of big traces, kept by the trace's version.

A trajectory or latency report of a 10k-span trace costs 100–250 ms to build and an engineer opens the
same run again and again (back, forward, a shared link). The key includes the trace's summary version
(`updated_at_unix_nano`, `span_count`), which every write that touches the trace — a late span, a
re-price — changes, so a cached answer is never stale. Bounded by bytes, least recently used first out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

DEFAULT_MAX_BYTES = 256 * 2**20
# Small traces are cheap to rebuild; caching them would only churn the big ones out.
MIN_SPANS = 500


class ResponseCache:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            body = self._entries.get(key)
            if body is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return body

    def put(self, key: Hashable, body: bytes) -> None:
        if len(body) > self.max_bytes // 4:  # one huge answer must not flush everything else
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._entries[key] = body
            self._bytes += len(body)
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= len(evicted)

    @property
    def size_bytes(self) -> int:
        return self._bytes
