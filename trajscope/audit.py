"""The audit log: one JSON line per admin action and per analyst query, appended to ``DIR/audit.jsonl``.

Who (the key's name, never the key), when, what: keys added or revoked (seen when the server re-reads the
keys file), deletions and retention runs, repricing, and every SQL query — its SHA-256, not its text,
with its duration, rows and outcome. Lines are appended and flushed to the kernel one by one; the file is
never rewritten by trajscope (rotate it with the usual tools: a rename makes the next line start a new file).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

AUDIT_FILE = "audit.jsonl"


def statement_hash(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()


class AuditLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def record(self, actor: str, action: str, **fields: Any) -> None:
        """Append one line; a failure to write is logged, never raised into the action it records."""
        line = orjson.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                             "time_unix_nano": time.time_ns(), "actor": actor, "action": action, **fields})
        try:
            with self._lock:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line + b"\n")
                finally:
                    os.close(fd)
        except OSError as exc:
            log.error("audit log %s not written (%s): %s", self.path, exc, line.decode())

    def read(self) -> list[dict[str, Any]]:
        """Every line so far (tests, tools)."""
        if not self.path.exists():
            return []
        return [orjson.loads(line) for line in self.path.read_bytes().splitlines() if line.strip()]
