"""Keep freed memory in the process instead of handing it back to the kernel after every request.

glibc serves allocations above 128 KiB with a fresh ``mmap`` and returns them with ``munmap``; so does the
top of the heap once 128 KiB are free. Decoding a 512-span request allocates many such temporaries (NumPy
arrays over the request's bytes, Arrow buffers), and every one of them is page-faulted in again — on this
kind of sandboxed machine a page fault costs microseconds: copying a fresh 4 MB array took 2.5 ms against
0.27 ms into reused memory, and the columnar decode ran ~2× faster with the thresholds below. The cost is
a few tens of MB of memory the process keeps. The decode workers use it; the server process keeps glibc's
defaults, where a load's temporaries would otherwise stay resident at their peak against the memory budget
(``trajscope.memory_budget``) for no measurable gain.
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


def keep_freed_memory() -> bool:
    """Apply the thresholds to this process's glibc malloc; False where that is not glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, _MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD), (_M_TOP_PAD, _TOP_PAD)))
    if not ok:
        log.debug("mallopt refused the allocator thresholds")
    return ok
