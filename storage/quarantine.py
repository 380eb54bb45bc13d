"""Acknowledged data that could not be decoded or loaded, kept on disk instead of stopping ingestion.

An export whose decode fails after its acknowledgement is kept as it arrived (``<id>.otlp``: the ack-log
record, project and protobuf body); spans whose load fails on their own are kept as decoded (``<id>.arrow``,
an Arrow IPC stream). Beside each, ``<id>.json`` says what it is and why it failed; it is written last, so an
entry without it is unfinished and ignored. Entries are listed, retried and dropped with
``trajscope quarantine`` (``trajscope.quarantine_cli``) and counted in ``/api/v1/health``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from trajscope.storage.staging_log import fsync_dir

log = logging.getLogger(__name__)

QUARANTINE_DIR = "quarantine"


@dataclass(frozen=True)
class Entry:
    id: str
    kind: str  # "export" (a body that failed to decode) or "spans" (decoded spans that failed to load)
    reason: str
    spans: int
    project: str | None
    time_unix_nano: int
    data: Path

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "kind": self.kind, "reason": self.reason, "spans": self.spans,
                "project": self.project, "time_unix_nano": self.time_unix_nano, "file": self.data.name}


class Quarantine:
    """The quarantine folder of a data directory. Adding is durable on return (fsynced)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self.added = 0  # entries added by this process
        self.added_spans = 0
        found = self.entries() if self.directory.exists() else []
        self._found = (len(found), sum(e.spans for e in found))

    def add_export(self, record: bytes, reason: BaseException | str, spans: int, project: str) -> Entry:
        """Keep an acknowledged export (its ack-log record) whose decode failed."""
        return self._add("export", ".otlp", record, reason, spans, project)

    def add_spans(self, spans: pa.Table, reason: BaseException | str) -> Entry:
        """Keep decoded spans whose load failed on their own."""
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, spans.schema) as stream:
            stream.write_table(spans)
        projects = set(spans.column("project").to_pylist()) if "project" in spans.column_names else set()
        return self._add("spans", ".arrow", sink.getvalue().to_pybytes(), reason, spans.num_rows,
                         projects.pop() if len(projects) == 1 else None)

    def _add(self, kind: str, suffix: str, data: bytes, reason: BaseException | str, spans: int,
             project: str | None) -> Entry:
        why = reason if isinstance(reason, str) else f"{type(reason).__name__}: {reason}"
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            now = time.time_ns()
            entry_id = f"{now}-{self.added:04d}"
            entry = Entry(entry_id, kind, why, spans, project, now, self.directory / f"{entry_id}{suffix}")
            _write_durably(entry.data, data)
            _write_durably(self.directory / f"{entry_id}.json", json.dumps(entry.as_dict()).encode())
            fsync_dir(self.directory)
            self.added += 1
            self.added_spans += spans
        log.error("quarantined %s of %d span(s) (project %r): %s — kept in %s; see `trajscope quarantine list`",
                  "an acknowledged export" if kind == "export" else "a load", spans, project, why, entry.data)
        return entry

    def entries(self) -> list[Entry]:
        """Every complete entry, oldest first."""
        out = []
        for meta in sorted(self.directory.glob("*.json")):
            try:
                doc = json.loads(meta.read_text())
                out.append(Entry(doc["id"], doc["kind"], doc["reason"], doc["spans"], doc["project"],
                                 doc["time_unix_nano"], self.directory / doc["file"]))
            except (OSError, ValueError, KeyError) as exc:
                log.warning("quarantine entry %s is unreadable (%s); left as it is", meta.name, exc)
        return out

    def drop(self, entry: Entry) -> None:
        (self.directory / f"{entry.id}.json").unlink(missing_ok=True)  # first: the entry is gone at once
        entry.data.unlink(missing_ok=True)

    def counts(self) -> tuple[int, int]:
        """(entries, spans) in quarantine: those found at start plus those added since (entries are dropped
        or retried with the server stopped)."""
        with self._lock:
            return self._found[0] + self.added, self._found[1] + self.added_spans


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
