"""Deleting traces: retention (``--retention 30d``, per project ``--retention shop=7d``) on a schedule, and
erasure requests (``trajscope delete --trace/--session/--user``), each written to the audit log.

A trace goes whole — spans, log records, its summary — once it ended longer ago than its project's retention
(``storage.duckdb_store.DuckDBStore.delete_traces``). A project with its own retention follows only that one; the
others follow the default (none: kept for ever).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from trajscope.audit import AuditLog
from trajscope.periodic import Periodic
from trajscope.query.params import duration_ns
from trajscope.storage.duckdb_store import Deleted, DuckDBStore
from trajscope.storage.sql import Where

log = logging.getLogger(__name__)

RETENTION_EVERY_S = 3600.0


class RetentionError(ValueError):
    pass


@dataclass(frozen=True)
class Retention:
    default_ns: int | None = None
    per_project: dict[str, int] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return self.default_ns is not None or bool(self.per_project)


def parse_retention(specs: list[str]) -> Retention:
    """``["30d", "shop=7d"]`` → 30 days by default, 7 for project shop."""
    default, per_project = None, {}
    for spec in specs:
        project, _, age = spec.rpartition("=")
        ns = duration_ns(age)
        if ns is None or ns <= 0:
            raise RetentionError(f"--retention {spec!r}: give an age like 30d, 12h (or PROJECT=AGE)")
        if project:
            per_project[project] = ns
        elif default is not None:
            raise RetentionError("--retention: one default age at most (others as PROJECT=AGE)")
        else:
            default = ns
    return Retention(default, per_project)


def erasure_condition(*, trace_id: str | None = None, session_id: str | None = None, user_id: str | None = None,
                      project: str | None = None) -> Where:
    """The traces an erasure request names: a trace, or every trace a session or a user appears in (on its
    summary or on any of its spans)."""
    if sum(v is not None for v in (trace_id, session_id, user_id)) != 1:
        raise ValueError("name exactly one of a trace, a session or a user")
    where = Where().add_if(project, "t.project = ?")
    if trace_id is not None:
        return where.add("t.trace_id = ?", trace_id.lower())
    column, value = ("session_id", session_id) if session_id is not None else ("user_id", user_id)
    return where.add(f"(t.{column} = ? OR (t.project, t.trace_id) IN (SELECT project, trace_id FROM spans "
                     f"WHERE {column} = ?))", value, value)


def erase(store: DuckDBStore, audit: AuditLog | None, actor: str, project: str | None, **named: str) -> Deleted:
    """An erasure request (``erasure_condition``) carried out, and its audit line."""
    started = time.perf_counter()
    deleted = store.delete_traces(erasure_condition(project=project, **named))
    if audit is not None:
        audit.record(actor, "delete", project=project, **named, traces=deleted.traces, spans=deleted.spans,
                     log_records=deleted.log_records, duration_ms=round((time.perf_counter() - started) * 1e3, 1))
    return deleted


def apply_retention(store: DuckDBStore, retention: Retention, now_ns: int | None = None) -> Deleted:
    """Delete every trace past its project's retention; the counts deleted."""
    now_ns = now_ns or time.time_ns()
    total = Deleted(0, 0, 0)
    for project, age in retention.per_project.items():
        total += store.delete_traces(Where().add("t.project = ?", project).add("t.end_time_unix_nano < ?",
                                                                               now_ns - age))
    if retention.default_ns is not None:
        where = Where().add("t.end_time_unix_nano < ?", now_ns - retention.default_ns)
        for project in retention.per_project:
            where.add("t.project <> ?", project)
        total += store.delete_traces(where)
    return total


class RetentionJob:
    """Applies the retention at start and every ``every_s`` after, on a thread of its own."""

    def __init__(self, store: DuckDBStore, retention: Retention, audit: AuditLog,
                 every_s: float = RETENTION_EVERY_S) -> None:
        self.store, self.retention, self.audit = store, retention, audit
        self._job = Periodic("trajscope-retention", every_s, self.run_once)

    def start(self) -> None:
        self._job.start()

    def stop(self) -> None:
        self._job.stop()

    def run_once(self) -> Deleted:
        started = time.perf_counter()
        deleted = apply_retention(self.store, self.retention)
        default = self.retention.default_ns
        self.audit.record("retention", "retention_run", traces=deleted.traces, spans=deleted.spans,
                          log_records=deleted.log_records, duration_ms=round((time.perf_counter() - started) * 1e3, 1),
                          default_days=None if default is None else default / 86400e9,
                          per_project_days={p: ns / 86400e9 for p, ns in self.retention.per_project.items()})
        if deleted.traces:
            log.warning("retention deleted %d traces (%d spans, %d log records)", deleted.traces, deleted.spans,
                        deleted.log_records)
        return deleted
