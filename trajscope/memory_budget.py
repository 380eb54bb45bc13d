"""One memory budget for the server and its decode workers together (``--memory-limit``).

The budget is measured the way the kernel charges it: the PSS of the server plus its worker processes
(shared pages split between the processes that map them). It is kept three ways:

* **sized parts**: DuckDB's own ``memory_limit`` (its buffers: table blocks, indexes, query operators that
  spill) starts at a share of the budget and grows with the store's indexes, which DuckDB cannot evict while
  inserts touch them (``wanted_limit``); past a larger share the store has outgrown the budget (said, and
  the admission mark moves by the excess); the native allocators hand freed memory back
  to the system soon (``configure_allocators``) instead of keeping every past peak;
* **admission**: a ``MemoryGuard`` samples the measured total a few times a second; above the admission
  mark new exports wait, then are refused as retryable (RESOURCE_EXHAUSTED / 429, like a full backlog) until
  loading brings it down;
* **reporting**: ``/metrics`` shows the total against the budget.

What is left outside the shares — the interpreter and libraries of the server and its workers at rest,
decoded spans waiting to load, the load being written — is what the admission mark leaves room for (figures:
docs/performance.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import psutil

log = logging.getLogger(__name__)

DEFAULT_BUDGET = "1GiB"
# The least budget the server starts with: what it and one decode worker need at rest, and some room.
MIN_BUDGET = 256 << 20
# DuckDB's share of the budget, and the least it gets: a cap too small for a checkpoint to pin its blocks
# invalidates the database until the next start. While loading, DuckDB keeps the blocks it wrote until its cap
# is full, so the share is mostly what a burst's peak holds of it; reads lose little with a smaller cache.
DUCKDB_SHARE = 0.15
DUCKDB_MIN = 160 << 20
# DuckDB's cap grows with what it cannot evict — an ART index (the log records' trace ids), which inserts
# touch all over, and data loaded since the last checkpoint — keeping that under PINNED_SHARE of the cap, up
# to this share of the budget (past it the server says the budget is too small for the store).
DUCKDB_MAX_SHARE = 0.6
PINNED_SHARE = 0.6
# DuckDB's own default cap: what it may grow to even past the budget.
MACHINE_MAX = int(psutil.virtual_memory().total * 0.8)
# Over the mark this long with nothing of ingest's waiting, the mark moves past what is held (MemoryGuard).
STUCK_S = 5.0
STUCK_MARGIN = 32 << 20
# New exports wait (then are refused) while the measured total is above this share of the budget.
ADMIT_BELOW = 0.9
SAMPLE_EVERY_S = 0.25
# Native allocators: how long freed pages may stay mapped before they go back to the kernel (ms).
DECAY_MS = 200

_UNITS = {"": 1, "b": 1, "bytes": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_bytes(text: str | None) -> int | None:
    """``4GB``, ``512MiB``, ``1.5 gb`` → bytes (DuckDB's spellings); None when unset or unreadable."""
    if not text:
        return None
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def memory_pss(pid: int | None = None) -> tuple[int, int]:
    """(PSS of the process — this one by default —, PSS of its child processes together), in bytes: memory as
    the kernel charges it, shared pages split between the processes mapping them, so the two add up to what
    the server and its workers use. Zeros for a process that is gone."""
    own = children = 0
    try:
        proc = psutil.Process(pid)
        own = proc.memory_full_info().pss
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                children += child.memory_full_info().pss
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass
    return own, children


@dataclass(frozen=True)
class MemoryPlan:
    """How a budget is split (bytes)."""

    budget: int
    duckdb: int  # DuckDB's memory_limit at start
    duckdb_max: int  # the most DuckDB's cap grows to
    admit_below: int  # measured total above which exports are refused

    @property
    def duckdb_setting(self) -> str:
        return f"{self.duckdb // 2**20}MiB"


def plan_memory(budget: int, duckdb_limit: int | None = None) -> MemoryPlan:
    """The split of ``budget``; ``duckdb_limit`` overrides DuckDB's share (``--duckdb-memory-limit``)."""
    duckdb = duckdb_limit if duckdb_limit is not None else max(DUCKDB_MIN, int(budget * DUCKDB_SHARE))
    duckdb = duckdb >> 20 << 20  # DuckDB is given whole MiB
    return MemoryPlan(budget, duckdb, max(duckdb, int(budget * DUCKDB_MAX_SHARE) >> 20 << 20),
                      int(budget * ADMIT_BELOW))


def configure_allocators(decay_ms: int = DECAY_MS) -> None:
    """Have DuckDB's and Arrow's allocators return freed pages after ``decay_ms`` rather than keep them: a
    load's or a checkpoint's transient buffers otherwise stay resident at their peak for good. DuckDB's
    jemalloc reads its options once, when the module loads, so this must run before ``import duckdb`` to
    reach it (an explicit ``DUCKDB_JE_MALLOC_CONF`` wins); Arrow's pool is switched at once."""
    os.environ.setdefault("DUCKDB_JE_MALLOC_CONF", f"dirty_decay_ms:{decay_ms},muzzy_decay_ms:0")
    import pyarrow as pa

    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
        pa.jemalloc_set_decay_ms(decay_ms)
    except (NotImplementedError, pa.ArrowException):  # a build without jemalloc keeps its default pool
        log.debug("Arrow has no jemalloc pool; keeping %s", pa.default_memory_pool().backend_name)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


_LIBC = _libc()
_MALLINFO2 = getattr(_LIBC, "mallinfo2", None)  # glibc 2.33+
if _MALLINFO2 is not None:
    _MALLINFO2.restype = _MallInfo2


def heap_bytes() -> int | None:
    """Bytes glibc malloc has handed out and not yet been given back in this process; None where that is
    not glibc."""
    if _MALLINFO2 is None:
        return None
    info = _MALLINFO2()
    return info.uordblks + info.hblkhd


class DuckDBMemory(Protocol):
    def memory_by_tag(self) -> dict[str, int]: ...
    def set_memory_limit(self, limit: int) -> bool: ...


def pinned_bytes(tags: dict[str, int]) -> int:
    """What DuckDB cannot evict of what it holds (``duckdb_memory()`` by tag): everything but its cache of
    table blocks (``BASE_TABLE``)."""
    return sum(used for tag, used in tags.items() if tag != "BASE_TABLE")


def wanted_limit(tags: dict[str, int]) -> int:
    """The cap DuckDB wants for what it holds now: what it cannot evict (``pinned_bytes``) at ``PINNED_SHARE``
    of it, in 16 MiB steps."""
    return -(-int(pinned_bytes(tags) / PINNED_SHARE) // (16 << 20)) * (16 << 20)


class MemoryGuard:
    """Samples the server's and its workers' PSS in a background thread; ``over()`` says whether the last
    sample was above the admission mark."""

    def __init__(self, plan: MemoryPlan, sample_every_s: float = SAMPLE_EVERY_S,
                 measure: Callable[[], tuple[int, int]] = memory_pss, duckdb: DuckDBMemory | None = None) -> None:
        """``duckdb``: the store, whose cap each sample fits to its indexes (``wanted_limit``)."""
        self.plan = plan
        self._duckdb = duckdb
        self.duckdb_limit = plan.duckdb
        self.outgrown = 0  # bytes the store's unevictable memory holds past DuckDB's largest share
        # Memory over the mark that refusing exports did not free (nothing of ingest's was waiting): the mark
        # moves by it until memory drops below the plan's mark again.
        self.held_elsewhere = 0
        self.ingest_idle: Callable[[], bool] = lambda: False  # whether nothing acknowledged waits in ingest
        self._idle_over_since: float | None = None
        self._said_too_small = False
        self._every = sample_every_s
        self._measure = measure
        self.server = self.workers = 0
        self.peak = 0
        self.refusals = 0
        self._over = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trajscope-memory", daemon=True)

    def start(self) -> MemoryGuard:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    @property
    def total(self) -> int:
        return self.server + self.workers

    def over(self) -> bool:
        return self._over

    def refusal(self) -> str:
        """Count an export refused for memory; the reason, for its answer."""
        self.refusals += 1
        return (f"memory in use ({self.total >> 20} MiB) above the admission mark ({self.admission_mark() >> 20} "
                f"MiB of the {self.plan.budget >> 20} MiB budget, --memory-limit)")

    def admission_mark(self) -> int:
        """The measured total above which exports are refused: the plan's mark, raised by what the store's
        indexes hold past DuckDB's largest share (refusing exports cannot free that: the store has outgrown
        the budget, which the server says, and ingestion goes on)."""
        return self.plan.admit_below + max(self.outgrown, self.held_elsewhere)

    def sample(self) -> None:
        if self._duckdb is not None:
            self._fit_duckdb(self._duckdb)
        self.server, self.workers = self._measure()
        self.peak = max(self.peak, self.total)
        self._hold_elsewhere(time.monotonic())
        over = self.total >= self.admission_mark()
        if over and not self._over:
            log.warning("memory %d MiB is above the admission mark %d MiB of the %d MiB budget: refusing new "
                        "exports until it drops", self.total >> 20, self.admission_mark() >> 20,
                        self.plan.budget >> 20)
        self._over = over

    def _hold_elsewhere(self, now: float) -> None:
        """Refusals only help while ingest holds memory. Over the mark for ``STUCK_S`` with nothing of ingest's
        waiting, the excess is held elsewhere (DuckDB's cache, allocators, queries): the mark moves past it, so
        exports are never refused for good; it moves back once memory is under the plan's mark."""
        if self.total < self.plan.admit_below:
            self.held_elsewhere, self._idle_over_since = 0, None
            return
        if self.total < self.admission_mark() or not self.ingest_idle():
            self._idle_over_since = None
            return
        if self._idle_over_since is None:
            self._idle_over_since = now
        elif now - self._idle_over_since >= STUCK_S:
            self.held_elsewhere = self.total - self.plan.admit_below + STUCK_MARGIN
            self._idle_over_since = None
            log.warning("memory stays at %d MiB, over the admission mark, with no export waiting in ingest: "
                        "accepting exports up to %d MiB; raise --memory-limit if this persists",
                        self.total >> 20, self.admission_mark() >> 20)

    def _fit_duckdb(self, store: DuckDBMemory) -> None:
        """DuckDB's cap follows what it cannot evict (``wanted_limit``) up, never down. DuckDB 1.5.5 under memory
        pressure while loading corrupts what it holds in memory (a load failing for memory, or loads after a cap
        was lowered between them: primary-key errors, then a checkpoint that finds a misaligned column and
        invalidates the database — both seen in ``bench/soak.py``), so its cap keeps 40 % headroom over what it
        cannot evict, and only its cache of table blocks fills the rest. Past the plan's most it still follows
        (the alternative is every load failing): the store has outgrown the budget, which the server says
        once."""
        tags = store.memory_by_tag()
        pinned = pinned_bytes(tags)
        limit = min(wanted_limit(tags), MACHINE_MAX)
        if limit > self.duckdb_limit and store.set_memory_limit(limit):
            held = ", ".join(f"{tag.lower()} {used >> 20}" for tag, used in sorted(tags.items(), key=lambda t: -t[1])
                             if tag != "BASE_TABLE" and used >= 1 << 20)
            log.info("DuckDB's memory cap %d → %d MiB (%d MiB of its memory cannot be evicted: %s MiB)",
                     self.duckdb_limit >> 20, limit >> 20, pinned >> 20, held)
            self.duckdb_limit = limit
        self.outgrown = max(0, pinned - int(self.plan.duckdb_max * PINNED_SHARE))
        if self.outgrown and not self._said_too_small:
            self._said_too_small = True
            log.error("the store's indexes and unflushed data hold %d MiB of DuckDB's memory, more than the %d MiB "
                      "budget has room for: memory will exceed it; restart with a larger --memory-limit",
                      pinned >> 20, self.plan.budget >> 20)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self.sample()
            except Exception:  # a failed sample must not stop the guard
                log.exception("memory sample failed")
                time.sleep(self._every)
