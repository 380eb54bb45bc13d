"""How glibc malloc keeps or returns freed memory, per process.

glibc serves allocations above 128 KiB with a fresh ``mmap`` and returns them with ``munmap``; so does the
top of the heap once 128 KiB are free. Decoding a 512-span request allocates many such temporaries (NumPy
arrays over the request's bytes, Arrow buffers), and every one of them is page-faulted in again — on a
sandboxed machine a page fault costs microseconds, so copying into fresh memory is many times slower than into
reused memory, and the columnar decode is much faster with the thresholds below (docs/performance.md). The cost
is a few tens of MB of memory the process keeps. The decode workers use it (``keep_freed_memory``).

The server process does the opposite (``return_freed_memory``). Decoded spans reach it as pickled Arrow
tables, whose buffers are Python bytes from glibc malloc, several MB per decode job, freed once loaded.
glibc's default raises its mmap threshold to the largest block freed (up to 32 MiB), after which those
blocks come from its arenas and what they leave free stays resident, against the memory budget
(``trajscope.memory_budget``). Fixed thresholds map large blocks on their own and unmap them when freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MMAP_THRESHOLD = 256 << 20  # allocations below this come from the heap and are reused
_TRIM_THRESHOLD = 512 << 20  # free heap kept before any is returned
_TOP_PAD = 64 << 20  # heap grown in large steps
# The server's: blocks from 1 MiB mapped on their own; free memory over 1 MiB at the heap's top returned.
_SERVER_MMAP_THRESHOLD = 1 << 20
_SERVER_TRIM_THRESHOLD = 1 << 20


def keep_freed_memory() -> bool:
    """The decode workers' thresholds for this process's glibc malloc; False where that is not glibc."""
    return _mallopt(((_M_MMAP_THRESHOLD, _MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD),
                     (_M_TOP_PAD, _TOP_PAD)))


def return_freed_memory() -> bool:
    """The server's thresholds (fixed, so glibc does not raise them); False where that is not glibc."""
    return _mallopt(((_M_MMAP_THRESHOLD, _SERVER_MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, _SERVER_TRIM_THRESHOLD)))


def _mallopt(settings: tuple[tuple[int, int], ...]) -> bool:
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = all(mallopt(param, value) == 1 for param, value in settings)
    if not ok:
        log.debug("mallopt refused the allocator thresholds")
    return ok
