"""A small tmpfs mounted for a test (root only; skipped elsewhere), and filling it."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def mounted(path: Path, size: str = "64m") -> Iterator[Path]:
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path, leave: int) -> None:
    """Write ``path`` until the disk is full, then give back ``leave`` bytes."""
    chunk = b"\0" * (1 << 20)
    with open(path, "wb") as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(chunk)
                f.flush()
        os.ftruncate(f.fileno(), max(0, f.tell() - leave))
