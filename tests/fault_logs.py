"""Staging logs that misbehave on purpose, handed to a writer or an ack log in place of the real one."""

from __future__ import annotations

import threading
import time

from trajscope.storage.staging_log import StagingLog


class SlowLog(StagingLog):
    """Every append takes ``delay_s`` longer (a slow disk); ``appending`` is set once an append has begun."""

    def __init__(self, directory, delay_s: float = 0.3, **options) -> None:
        super().__init__(directory, **options)
        self.delay_s = delay_s
        self.appending = threading.Event()

    def append(self, payloads):
        self.appending.set()
        time.sleep(self.delay_s)
        return super().append(payloads)


class FullLog(StagingLog):
    """Every append fails as a full disk does."""

    def append(self, payloads):
        raise OSError("No space left on device")
