"""What happens to a data directory before DuckDB opens its file: take the directory's lock, and set aside
any write-ahead log DuckDB left.

trajscope never lets DuckDB replay its own WAL. Everything acknowledged stays in trajscope's logs (the
acknowledgement log and the staging log) until it is in a *checkpointed* database file, so the last
checkpoint plus those logs hold all of it; every other change (a migration, a repricing) is checkpointed
before it is reported done. A WAL at open means the previous process died between checkpoints: it is moved
to ``set-aside/`` (kept for inspection, named in the log), the file opens at its last checkpoint, and the
logs are re-applied (writes are idempotent). This way no engine version's WAL-replay defects can keep the
store from opening (DuckDB 1.5.5 replays some WALs into a corrupt index: docs/durability.md).
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path
from typing import ClassVar

from trajscope.storage.staging_log import fsync_dir

log = logging.getLogger(__name__)

LOCK_FILE = "trajscope.lock"
SET_ASIDE_DIR = "set-aside"
# DuckDB's own files beside a database file: the WAL, and the WALs it writes during a checkpoint and a replay.
WAL_SUFFIXES = (".wal", ".wal.checkpoint", ".wal.recovery")


class DirectoryInUse(RuntimeError):
    """Another process holds the data directory."""


class DirectoryLock:
    """An exclusive lock on a data directory (``flock``, released by the kernel when the process dies, so a
    crash never leaves a stale lock). Re-entrant within a process: compaction holds it around the store it
    opens."""

    _held: ClassVar[dict[Path, list[int]]] = {}  # directory -> [fd, holders]

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self._released = False
        held = self._held.get(self.directory)
        if held is not None:
            held[1] += 1
            return
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DirectoryInUse(f"data directory {directory} is in use by another process (is another "
                                 "`trajscope serve`, `compact` or `recover` running on it?)") from None
        self._held[self.directory] = [fd, 1]

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        held = self._held[self.directory]
        held[1] -= 1
        if held[1] == 0:
            del self._held[self.directory]
            os.close(held[0])


def leftover_wals(db_path: Path) -> list[Path]:
    """DuckDB's WAL files beside ``db_path`` (present only if the last process using it did not close it)."""
    return [p for p in (Path(f"{db_path}{suffix}") for suffix in WAL_SUFFIXES) if p.exists()]


def set_aside_wals(db_path: Path) -> Path | None:
    """Move DuckDB's leftover WAL files into ``set-aside/wal-<time>/`` beside the database; returns that
    folder, or None when there were none. The caller holds the directory lock."""
    wals = leftover_wals(db_path)
    for empty in [w for w in wals if w.stat().st_size == 0]:  # holds nothing: an open that failed, say
        empty.unlink()
        wals.remove(empty)
    if not wals:
        return None
    folder = set_aside_folder(db_path.parent, "wal")
    size = 0
    for wal in wals:
        size += wal.stat().st_size
        os.replace(wal, folder / wal.name)
    fsync_dir(folder)
    fsync_dir(db_path.parent)
    log.warning("%s was not closed cleanly: DuckDB's write-ahead log (%d bytes) is set aside in %s; the store "
                "opens at its last checkpoint and trajscope's own logs re-apply everything acknowledged since",
                db_path.name, size, folder)
    return folder


def set_aside_folder(data: Path, kind: str) -> Path:
    """A new folder ``set-aside/<kind>-<time>`` in the data directory, for files kept for inspection."""
    folder = data / SET_ASIDE_DIR / f"{kind}-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9:09d}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def remove_unfinished_copies(db_path: Path) -> None:
    """Delete what a compaction killed before its rename left (``<db>.compacting`` and its WALs): the
    original is intact, and the next compaction starts its copy afresh."""
    for leftover in db_path.parent.glob(f"{db_path.name}.compacting*"):
        leftover.unlink(missing_ok=True)
        log.warning("removed %s, left by a compaction that did not finish (the original is intact)", leftover.name)
