"""A job that runs on a thread of its own, at once and then every ``every_s`` until stopped (alert rules,
retention)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    def __init__(self, name: str, every_s: float, work: Callable[[], object]) -> None:
        self.every_s = every_s
        self._work = work
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._work()
            except Exception:  # the next run tries again; the thread never dies of one failure
                log.exception("%s failed; trying again in %g s", self._thread.name, self.every_s)
            self._stop.wait(self.every_s)
