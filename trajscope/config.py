"""Server settings: command-line flags, each also settable as ``TRAJSCOPE_<NAME>``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from trajscope.memory_budget import DEFAULT_BUDGET


def env(name: str, default: str | None) -> str | None:
    return os.environ.get(f"TRAJSCOPE_{name.upper()}", default)


def env_int(name: str, default: int | None) -> int | None:
    raw = env(name, None)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"TRAJSCOPE_{name.upper()} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class ServerSettings:
    data: Path = Path("./data")
    host: str = "127.0.0.1"
    grpc_port: int = 4317
    http_port: int = 4318
    api_port: int = 8000
    api_key: str | None = None
    # API keys with scopes and projects (collector.keyring); with neither this nor api_key the server is open,
    # which it refuses on a non-loopback address unless ``insecure``.
    keys_file: Path | None = None
    insecure: bool = False
    # Retention: ages like "30d" (the default) and "PROJECT=AGE" (trajscope.retention); applied every
    # ``retention_every_s`` and at start.
    # Redaction rules applied before storage (collector.redaction): a TOML file, or "default".
    redact: str | None = None
    retention: tuple[str, ...] = ()
    retention_every_s: float = 3600.0
    # Decode worker processes; None = one per two cores beyond the first, at least one (``decode_workers``).
    decode_workers: int | None = None
    # "columnar" (the fast path, falling back to the reference per request) or "reference" only.
    decoder: str = "columnar"
    # Decoded spans waiting to load past which exports are refused (RESOURCE_EXHAUSTED / 429, retried by the
    # exporters): bounds the loader's memory and how far a reader can be behind.
    max_pending_spans: int = 65_536
    # How long an export waits for room in the decode backlog before it is refused the same way.
    admission_wait_s: float = 2.0
    # How long a read waits for spans acknowledged before it to become queryable (then answers, saying how
    # many it could not see yet in X-Trajscope-Behind).
    read_wait_s: float = 0.5
    # Traces with more spans are not read whole by /api/v1/traces/{id} and its analyses (413, use SQL).
    max_trace_spans: int = 250_000
    # Spans of protobuf exports acknowledged on the raw-body log and not yet decoded (collector.ack_log); a
    # full backlog delays the next acknowledgement. 0 = decode before acknowledging.
    decode_backlog: int = 8192
    sql_timeout_s: float = 30.0
    # The memory budget of the server and its decode workers together (trajscope.memory_budget).
    memory_limit: str = DEFAULT_BUDGET
    # DuckDB's own cap inside it; None = its share of the budget.
    duckdb_memory_limit: str | None = None
    # DuckDB's threads while input outruns the loader: 0 = the cores the decode workers leave (at least 1),
    # -1 = DuckDB's own count throughout (and its configuration locked); see DuckDBStore.set_ingest_mode.
    ingest_db_threads: int = 0
    # A TOML price file adding to / overriding the built-in table (analysis/prices.toml).
    prices: Path | None = None
    # A TOML file of alert rules (query.alerting); none = no alerting.
    alerts: Path | None = None


def decode_workers(settings: ServerSettings, cores: int | None = None) -> int:
    """Decode processes for these settings: as given, or one per two cores beyond the first (at least one).
    One worker keeps up with what the loader stores on two cores, and every worker costs its own interpreter
    and heap against the memory budget (docs/performance.md)."""
    if settings.decode_workers is not None:
        return settings.decode_workers
    return max(1, ((cores or os.cpu_count() or 1) - 1) // 2)


def ingest_threads(settings: ServerSettings, cores: int | None = None) -> int | None:
    """DuckDB's thread count during loads for these settings (None: never switched)."""
    if settings.ingest_db_threads < 0:
        return None
    if settings.ingest_db_threads > 0:
        return settings.ingest_db_threads
    cores = cores or os.cpu_count() or 1
    return max(1, cores - max(0, decode_workers(settings, cores)))
