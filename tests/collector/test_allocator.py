"""glibc thresholds per process: the server's map large blocks on their own and give them back when freed."""

import subprocess
import sys

import pytest

from trajscope.memory_budget import heap_bytes

PROBE = """
import ctypes, sys
from trajscope.collector import allocator
from trajscope.memory_budget import _MALLINFO2
if sys.argv[1] == "server":
    assert allocator.return_freed_memory()
block = bytearray(4 << 20)  # mapped on its own under any threshold glibc starts with
del block                   # freeing it raises glibc's default threshold past 4 MiB
before = _MALLINFO2().hblks
block = bytearray(4 << 20)
print(_MALLINFO2().hblks - before)  # 1: mapped on its own again; 0: taken from the heap
"""


@pytest.mark.skipif(heap_bytes() is None, reason="not glibc")
@pytest.mark.parametrize(("role", "mapped"), [("default", 0), ("server", 1)])
def test_large_blocks_are_mapped_on_their_own_only_with_the_servers_thresholds(role, mapped):
    out = subprocess.run([sys.executable, "-c", PROBE, role], capture_output=True, text=True, check=True)
    assert int(out.stdout) == mapped
