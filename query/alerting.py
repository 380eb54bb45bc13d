"""Budgets and alerts: rules from a TOML file (``--alerts FILE``), evaluated periodically on stored data,
with firing/resolved state (``GET /api/v1/alerts``) and an optional webhook called on every change.

    interval = "30s"                              # how often rules are evaluated (default 30s)
    webhook = "http://127.0.0.1:9000/alerts"      # optional: POSTed on every firing / resolved change

    [[rule]]
    name = "expensive run"
    kind = "trace_cost"          # any run in the window costing more than threshold_usd
    threshold_usd = 0.50
    window = "1h"

    [[rule]]
    name = "daily budget"
    kind = "cost_budget"         # total cost of the runs in the window above threshold_usd
    threshold_usd = 20
    window = "24h"

    [[rule]]
    name = "support agent failing"
    kind = "error_rate"          # share of runs with an error, for one agent (or all)
    agent = "support-agent"
    threshold = 0.2
    window = "15m"
    min_runs = 5

    [[rule]]
    name = "slow search"
    kind = "tool_latency_p95"    # p95 duration of a tool's calls (each tool if `tool` is omitted)
    tool = "search_docs"
    threshold_ms = 2000
    window = "1h"
    min_calls = 10

    [[rule]]
    name = "blocked users"
    kind = "guardrail_blocks"    # guardrail checks that blocked, above threshold per window
    threshold = 10
    window = "1h"
    guardrail = "pii"            # optional
"""

from __future__ import annotations

import logging
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from trajscope.periodic import Periodic
from trajscope.query.filters import RunFilter
from trajscope.query.params import duration_ns
from trajscope.storage.duckdb_store import DuckDBStore

log = logging.getLogger(__name__)

KINDS = {
    "trace_cost": ("threshold_usd",),
    "cost_budget": ("threshold_usd",),
    "error_rate": ("threshold",),
    "tool_latency_p95": ("threshold_ms",),
    "guardrail_blocks": ("threshold",),
}
_OPTIONAL = {"agent", "tool", "guardrail", "project", "min_runs", "min_calls", "window", "name", "kind"}


class AlertConfigError(ValueError):
    """A rules file that cannot be used; the message names the file and the rule."""


def parse_duration(text: str, where: str) -> float:
    ns = duration_ns(str(text))
    if ns is None:
        raise AlertConfigError(f"{where}: {text!r} is not a duration like 30s, 15m, 1h or 1d")
    return ns / 1e9


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    threshold: float
    window_s: float
    agent: str | None = None
    tool: str | None = None
    guardrail: str | None = None
    project: str | None = None
    min_count: int = 1


@dataclass(frozen=True)
class AlertConfig:
    rules: tuple[Rule, ...]
    interval_s: float = 30.0
    webhook: str | None = None


def load_rules(path: str | Path) -> AlertConfig:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as exc:
        raise AlertConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AlertConfigError(f"{path}: not valid TOML: {exc}") from None
    rules = []
    names: set[str] = set()
    for i, r in enumerate(doc.get("rule", [])):
        where = f"{path}: [[rule]] #{i + 1}"
        kind = r.get("kind")
        if kind not in KINDS:
            raise AlertConfigError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        (threshold_key,) = KINDS[kind]
        unknown = set(r) - _OPTIONAL - {threshold_key}
        if unknown:
            raise AlertConfigError(f"{where}: unknown field(s) {sorted(unknown)} for kind {kind}")
        if threshold_key not in r or isinstance(r[threshold_key], bool) or not isinstance(r[threshold_key],
                                                                                           int | float):
            raise AlertConfigError(f"{where}: {threshold_key} (a number) is required for kind {kind}")
        name = str(r.get("name") or f"{kind} #{i + 1}")
        if name in names:
            raise AlertConfigError(f"{where}: two rules are named {name!r}")
        names.add(name)
        rules.append(Rule(name=name, kind=kind, threshold=float(r[threshold_key]),
                          window_s=parse_duration(r.get("window", "1h"), f"{where} window"),
                          agent=r.get("agent"), tool=r.get("tool"), guardrail=r.get("guardrail"),
                          project=r.get("project"), min_count=int(r.get("min_runs", r.get("min_calls", 1)))))
    if not rules:
        raise AlertConfigError(f"{path}: no [[rule]] entries")
    return AlertConfig(tuple(rules), parse_duration(doc.get("interval", "30s"), f"{path}: interval"),
                       doc.get("webhook"))


def evaluate(store: DuckDBStore, rule: Rule, now_ns: int) -> tuple[bool, float | None, dict[str, Any]]:
    """(firing, observed value, details) of one rule at ``now_ns``."""
    window = RunFilter(project=rule.project, agent=rule.agent, since=now_ns - int(rule.window_s * 1e9))
    if rule.kind in ("trace_cost", "cost_budget", "error_rate"):
        where = window.traces("t")
        row = store.query(f"""
            SELECT count(*) AS runs, count(*) FILTER (WHERE t.error_count > 0) AS failed,
                   sum(t.cost_usd) AS total_cost, max(t.cost_usd) AS max_cost,
                   count(*) FILTER (WHERE t.cost_usd > ?) AS over,
                   list(t.trace_id ORDER BY t.cost_usd DESC) FILTER (WHERE t.cost_usd > ?) AS over_ids
            FROM traces t WHERE {where.sql()}""", [rule.threshold, rule.threshold, *where.params]).to_pylist()[0]
        if rule.kind == "trace_cost":
            return bool(row["over"]), row["max_cost"], {"runs_over": row["over"],
                                                        "trace_ids": (row["over_ids"] or [])[:10]}
        if rule.kind == "cost_budget":
            total = row["total_cost"] or 0.0
            return total > rule.threshold, total, {"runs": row["runs"]}
        rate = row["failed"] / row["runs"] if row["runs"] else None
        firing = rate is not None and row["runs"] >= rule.min_count and rate > rule.threshold
        return firing, rate, {"runs": row["runs"], "failed": row["failed"]}
    if rule.kind == "tool_latency_p95":
        where = window.traces("s").add("s.category = 'tool'").add_if(rule.tool, "s.tool_name = ?")
        rows = store.query(f"""
            SELECT s.tool_name AS tool, count(*) AS calls, quantile_cont(s.duration_ns, 0.95) / 1e6 AS p95_ms
            FROM spans s WHERE {where.sql()} GROUP BY 1 ORDER BY p95_ms DESC""", where.params).to_pylist()
        rows = [r for r in rows if r["calls"] >= rule.min_count]
        over = [r for r in rows if r["p95_ms"] > rule.threshold]
        worst = rows[0]["p95_ms"] if rows else None
        return bool(over), worst, {"tools_over": [{"tool": r["tool"], "p95_ms": round(r["p95_ms"], 1),
                                                   "calls": r["calls"]} for r in over]}
    where = (window.traces("e", time_column="time_unix_nano").add("e.triggered AND e.action = 'block'")
             .add_if(rule.guardrail, "e.guardrail_name = ?"))
    blocks = store.query(f"SELECT count(*) AS n FROM guardrail_events e WHERE {where.sql()}",
                         where.params).column("n")[0].as_py()
    return blocks > rule.threshold, float(blocks), {}


@dataclass
class RuleState:
    rule: Rule
    status: str = "pending"  # pending (not evaluated yet) | ok | firing | error
    value: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    since_unix_nano: int | None = None
    last_evaluated_unix_nano: int | None = None
    error: str | None = None
    webhook_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        r = self.rule
        return {"name": r.name, "kind": r.kind, "status": self.status, "value": self.value,
                "threshold": r.threshold, "window_s": r.window_s, "agent": r.agent, "tool": r.tool,
                "guardrail": r.guardrail, "project": r.project, "details": self.details,
                "since_unix_nano": self.since_unix_nano, "last_evaluated_unix_nano": self.last_evaluated_unix_nano,
                "error": self.error, "webhook_error": self.webhook_error}


class AlertMonitor:
    """Evaluates every rule each ``interval`` on a background thread; ``states()`` is the current view."""

    def __init__(self, store: DuckDBStore, config: AlertConfig) -> None:
        self.store = store
        self.config = config
        self._states = {r.name: RuleState(r) for r in config.rules}
        self._lock = threading.Lock()
        self._job = Periodic("trajscope-alerts", config.interval_s, self.evaluate_all)

    def start(self) -> None:
        self._job.start()

    def stop(self) -> None:
        self._job.stop(10)

    def states(self) -> list[dict[str, Any]]:
        with self._lock:
            return [s.as_dict() for s in self._states.values()]

    def evaluate_all(self, now_ns: int | None = None) -> None:
        now_ns = now_ns or time.time_ns()
        for state in self._states.values():
            try:
                firing, value, details = evaluate(self.store, state.rule, now_ns)
            except Exception as exc:  # a broken rule must not stop the others
                log.exception("alert rule %r failed", state.rule.name)
                with self._lock:
                    state.status, state.error, state.last_evaluated_unix_nano = "error", str(exc), now_ns
                continue
            new = "firing" if firing else "ok"
            with self._lock:
                was_firing = state.status == "firing"
                if new != state.status:
                    state.since_unix_nano = now_ns
                state.status, state.value, state.details = new, value, details
                state.error, state.last_evaluated_unix_nano = None, now_ns
            if firing != was_firing:
                self._notify(state, "firing" if firing else "resolved", now_ns)

    def _notify(self, state: RuleState, event: str, now_ns: int) -> None:
        log.warning("alert %s: %s (value %s, threshold %s)", event, state.rule.name, state.value,
                    state.rule.threshold)
        if not self.config.webhook:
            return
        payload = {"event": event, "at_unix_nano": now_ns, "alert": state.as_dict()}
        try:
            httpx.post(self.config.webhook, json=payload, timeout=5).raise_for_status()
            state.webhook_error = None
        except httpx.HTTPError as exc:
            state.webhook_error = f"{type(exc).__name__}: {exc}"
            log.warning("alert webhook %s failed: %s", self.config.webhook, exc)
