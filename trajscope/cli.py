"""The ``trajscope`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from trajscope import __version__, delete_cli, keys_cli, log_format
from trajscope.config import ServerSettings, env, env_int


def _stopped_store_flags(p: argparse.ArgumentParser) -> None:
    """What the commands working on a stopped server's data directory take."""
    p.add_argument("--data", type=Path, default=Path(env("data", "./data")), help="data directory (./data)")
    p.add_argument("--prices", type=Path, default=env("prices", None),
                   help="the server's --prices file, to cost the exports it acknowledged but had not loaded")
    p.add_argument("--redact", default=env("redact", None),
                   help="the server's --redact rules, applied to the exports it acknowledged but had not loaded")


def _logging_flags(p: argparse.ArgumentParser, *, defaults: bool) -> None:
    """``--log-level`` / ``--log-format``: global, and again after ``serve`` (where they are usually typed;
    unset there, the global ones stand)."""
    p.add_argument("--log-level", default=env("log_level", "WARNING") if defaults else argparse.SUPPRESS,
                   help="WARNING (default), INFO (adds one access line per API request), DEBUG")
    p.add_argument("--log-format", choices=("text", "json"),
                   default=env("log_format", "text") if defaults else argparse.SUPPRESS,
                   help="text (default) or JSON lines with the request id of the request being handled")


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    d = ServerSettings()
    p = sub.add_parser("serve", help="run the OTLP receivers and the query API",
                       description="Each flag can also be set as TRAJSCOPE_<FLAG>, e.g. TRAJSCOPE_API_PORT.")
    _logging_flags(p, defaults=False)
    p.add_argument("--data", type=Path, default=Path(env("data", str(d.data))),
                   help="data directory (DuckDB file inside); default ./data")
    p.add_argument("--host", default=env("host", d.host), help="address to bind; default 127.0.0.1")
    p.add_argument("--grpc-port", type=int, default=env_int("grpc_port", d.grpc_port))
    p.add_argument("--http-port", type=int, default=env_int("http_port", d.http_port))
    p.add_argument("--api-port", type=int, default=env_int("api_port", d.api_port))
    p.add_argument("--api-key", default=env("api_key", None),
                   help="require this key (Authorization: Bearer) on OTLP and the API; it may do everything")
    p.add_argument("--keys-file", type=Path, default=env("keys_file", None),
                   help="TOML file of API keys with scopes and projects (trajscope keys add ...); re-read when "
                        "it changes")
    p.add_argument("--redact", default=env("redact", None),
                   help="redaction rules applied before anything is stored: a TOML file, or 'default' (emails, "
                        "cards, secrets, phone numbers)")
    p.add_argument("--retention", action="append",
                   default=[s for s in env("retention", "").split(",") if s.strip()],
                   help="delete whole traces older than this (e.g. 30d); PROJECT=AGE for one project; repeatable")
    p.add_argument("--retention-every", default=env("retention_every", "1h"),
                   help="how often retention runs (default 1h; also at start)")
    p.add_argument("--insecure", action="store_true", default=env("insecure", "") not in ("", "0", "false"),
                   help="allow binding a non-loopback --host without any key")
    p.add_argument("--decode-workers", type=int, default=env_int("decode_workers", d.decode_workers),
                   help="OTLP decode processes (default: one per two cores beyond the first, at least one)")
    p.add_argument("--decoder", choices=("columnar", "reference"), default=env("decoder", d.decoder),
                   help="OTLP/protobuf decoder: columnar (default, fast) or the span-by-span reference walker")
    p.add_argument("--max-pending-spans", type=int,
                   default=env_int("max_pending_spans", d.max_pending_spans),
                   help="decoded spans waiting to load above which exports are refused as retryable "
                        "(RESOURCE_EXHAUSTED / 429 with a retry delay; default 65536)")
    p.add_argument("--admission-wait", type=float,
                   default=float(env("admission_wait", str(d.admission_wait_s))),
                   help="seconds an export waits for room in the decode backlog before it is refused the same "
                        "way (default 2)")
    p.add_argument("--max-trace-spans", type=int, default=env_int("max_trace_spans", d.max_trace_spans),
                   help="traces with more spans are answered 413 by the trace routes, pointing to SQL "
                        "(default 250000)")
    p.add_argument("--read-wait", type=float, default=float(env("read_wait", str(d.read_wait_s))),
                   help="seconds a read waits for spans acknowledged before it to be queryable; then it answers "
                        "from what is loaded, with X-Trajscope-Behind: N (default 0.5)")
    p.add_argument("--decode-backlog", type=int, default=env_int("decode_backlog", d.decode_backlog),
                   help="spans of protobuf exports acknowledged on the raw log before they are decoded "
                        "(default 8192); 0 = decode every export before acknowledging it")
    p.add_argument("--sql-timeout", type=float, default=float(env("sql_timeout", str(d.sql_timeout_s))),
                   help="deadline of a query on /api/v1/sql in seconds (a request may ask for less)")
    p.add_argument("--prices", type=Path, default=env("prices", None),
                   help="TOML file of model prices adding to / overriding the built-in table")
    p.add_argument("--alerts", type=Path, default=env("alerts", None),
                   help="TOML file of alert rules (cost, error rate, tool latency, guardrail blocks)")
    p.add_argument("--memory-limit", default=env("memory_limit", d.memory_limit),
                   help="memory budget of the server and its decode workers together, e.g. 2GiB (default 1GiB): "
                        "DuckDB gets 15%% (at least 160MiB); above 90%% of it new exports are refused as retryable")
    p.add_argument("--duckdb-memory-limit", default=env("duckdb_memory_limit", None),
                   help="DuckDB's cap inside the budget (default: 15%% of --memory-limit, at least 160MiB)")
    p.add_argument("--ingest-db-threads", type=int, default=env_int("ingest_db_threads", d.ingest_db_threads),
                   help="DuckDB threads while input outruns the loader: 0 = cores minus decode workers (default), "
                        "-1 = never switch (keeps DuckDB's configuration locked)")


def _demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="send a realistic synthetic agent workload to a running server")
    p.add_argument("--endpoint", default=env("demo_endpoint", "http://127.0.0.1:4318"),
                   help="OTLP/HTTP endpoint; default http://127.0.0.1:4318")
    p.add_argument("--sessions", type=int, default=30, help="sessions to send (1-4 runs each)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--project", default=None, help="send as this project (resource trajscope.project)")
    p.add_argument("--api-key", default=env("api_key", None))


def _analyst_parsers(sub: argparse._SubParsersAction) -> None:
    def source(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", default=env("url", "http://127.0.0.1:8000"),
                       help="a running server's API (default http://127.0.0.1:8000)")
        p.add_argument("--data", type=Path, default=None,
                       help="read this data directory directly, read-only (no server may be running on it)")
        p.add_argument("--api-key", default=env("api_key", None))

    p = sub.add_parser("sql", help="run one read-only SQL query over the trace tables and views")
    p.add_argument("query", help='e.g. "SELECT model, sum(cost_usd) FROM llm_calls GROUP BY model"')
    source(p)
    p.add_argument("--format", choices=("table", "csv", "json", "parquet"), default="table")
    p.add_argument("-o", "--output", type=Path, default=None, help="write the result to this file")
    p.add_argument("--limit", type=int, default=10_000, help="rows at most (default 10,000)")

    p = sub.add_parser("reprice", help="recompute stored costs after the price table changed")
    p.add_argument("--since", default=None, help="only spans that started at or after (date, RFC 3339 or age)")
    p.add_argument("--until", default=None, help="only spans that started before")
    p.add_argument("--prices", type=Path, default=None,
                   help="with --data: the price file to use (a running server uses its own --prices)")
    source(p)

    _stopped_store_flags(sub.add_parser("compact", help="rewrite a stopped server's database file compactly"))

    _stopped_store_flags(sub.add_parser(
        "recover", help="rebuild a stopped server's store from what is intact after damage",
        description="Sets aside DuckDB's leftover WAL and, if the database file is damaged, the file itself "
                    "(kept in DATA/set-aside/), salvages every readable span into a fresh file and re-applies "
                    "the acknowledgement and staging logs."))

    p = sub.add_parser("quarantine", help="list, retry or drop what ingestion could not decode or load",
                       description="Acknowledged exports whose decode failed and spans whose load failed are "
                                   "kept in DATA/quarantine/ instead of stopping ingestion. retry and drop "
                                   "need the server stopped.")
    p.add_argument("action", choices=("list", "retry", "drop"))
    p.add_argument("ids", nargs="*", help="entry ids (from `list`) for retry and drop")
    p.add_argument("--all", action="store_true", help="every entry, for retry and drop")
    p.add_argument("--json", action="store_true", help="list as JSON")
    p.add_argument("--data", type=Path, default=Path(env("data", "./data")), help="data directory (./data)")
    p.add_argument("--prices", type=Path, default=env("prices", None),
                   help="the server's --prices file, to cost retried exports")

    p = sub.add_parser("export", help="export spans as Parquet, one file per UTC day")
    p.add_argument("--since", required=True, help="first day, YYYY-MM-DD (UTC)")
    p.add_argument("--until", default=None, help="day after the last one, YYYY-MM-DD (default: tomorrow)")
    p.add_argument("-o", "--output", type=Path, required=True, help="directory for the Parquet files")
    source(p)


def _say(message: str) -> None:
    print(f"trajscope: {message}", file=sys.stderr, flush=True)


def _configure_prices(prices: Path | None, redact: str | None = None) -> bool:
    """The price table and redaction rules for the exports a stopped server's logs still hold."""
    from trajscope.analysis.pricing import PriceError
    from trajscope.collector import costing, redaction

    try:
        costing.configure(Path(prices) if prices else None)
        redaction.configure(redact)
    except PriceError as exc:
        _say(f"bad price file: {exc}")
        return False
    except redaction.RedactionError as exc:
        _say(f"bad redaction rules: {exc}")
        return False
    return True


def _recover(args: argparse.Namespace) -> int:
    from trajscope.collector.ack_log import ACK_LOG_DIR
    from trajscope.collector.ack_replay import load_acknowledged, load_acknowledged_logs
    from trajscope.collector.logs_ingest import LOGS_ACK_DIR
    from trajscope.storage.recovery import RecoveryError, recover

    if not _configure_prices(args.prices, getattr(args, 'redact', None)):
        return 1
    _say(f"recovering {args.data} …")
    try:
        report = recover(args.data, lambda store: (load_acknowledged(Path(args.data) / ACK_LOG_DIR, store, _say),
                                                   load_acknowledged_logs(Path(args.data) / LOGS_ACK_DIR, store, _say)),
                         progress=_say)
    except RecoveryError as exc:
        _say(str(exc))
        return 1
    for line in report.lines():
        _say(line)
    return 0 if report.row_ranges_lost == 0 else 3


def _quarantine(args: argparse.Namespace) -> int:
    from trajscope import quarantine_cli
    from trajscope.storage.clean_start import DirectoryInUse
    from trajscope.storage.duckdb_store import StoreError

    if args.action == "list":
        return quarantine_cli.list_entries(args.data, args.json)
    if args.action == "drop":
        return quarantine_cli.drop(args.data, args.ids, args.all)
    if not _configure_prices(args.prices, getattr(args, 'redact', None)):
        return 1
    try:
        return quarantine_cli.retry(args.data, args.ids, args.all)
    except (DirectoryInUse, StoreError) as exc:
        _say(f"{exc}")
        return 1


def _seconds(parser: argparse.ArgumentParser, flag: str, text: str) -> float:
    from trajscope.query.params import duration_ns

    ns = duration_ns(text)
    if not ns:
        parser.error(f"{flag}: give a duration like 1h, 10m, 30s; got {text!r}")
    return ns / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trajscope", description="Observability backend for AI agents.")
    parser.add_argument("--version", action="version", version=f"trajscope {__version__}")
    _logging_flags(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _demo_parser(sub)
    _analyst_parsers(sub)
    keys_cli.add_parser(sub)
    delete_cli.add_parser(sub)
    args = parser.parse_args(argv)
    log_format.configure(args.log_level, args.log_format)

    if args.command == "serve":
        from trajscope.memory_budget import configure_allocators, parse_bytes

        for flag, value in (("--memory-limit", args.memory_limit), ("--duckdb-memory-limit", args.duckdb_memory_limit)):
            if value and parse_bytes(value) is None:
                parser.error(f"{flag}: cannot read {value!r} as a size (e.g. 1GiB, 512MiB, 2GB)")
        configure_allocators()  # before DuckDB is imported: its allocator reads its options once
        from trajscope.collector.allocator import return_freed_memory

        return_freed_memory()
        from trajscope.server import run

        return run(ServerSettings(
            data=args.data, host=args.host, grpc_port=args.grpc_port, http_port=args.http_port,
            api_port=args.api_port, api_key=args.api_key or None, decode_workers=args.decode_workers,
            keys_file=Path(args.keys_file) if args.keys_file else None, insecure=args.insecure,
            redact=args.redact or None, retention=tuple(args.retention),
            retention_every_s=_seconds(parser, "--retention-every", args.retention_every),
            decoder=args.decoder,
            max_pending_spans=args.max_pending_spans, decode_backlog=args.decode_backlog,
            admission_wait_s=args.admission_wait, read_wait_s=args.read_wait, sql_timeout_s=args.sql_timeout,
            max_trace_spans=args.max_trace_spans,
            memory_limit=args.memory_limit, duckdb_memory_limit=args.duckdb_memory_limit or None,
            ingest_db_threads=args.ingest_db_threads,
            prices=Path(args.prices) if args.prices else None,
            alerts=Path(args.alerts) if args.alerts else None,
        ))
    if args.command == "keys":
        return keys_cli.run(args)
    if args.command == "delete":
        return delete_cli.run(args)
    if args.command == "demo":
        from trajscope.demo import run_demo

        return run_demo(args.endpoint, args.sessions, args.seed, args.api_key, args.project)
    if args.command == "recover":
        return _recover(args)
    if args.command == "quarantine":
        return _quarantine(args)
    if args.command == "compact":
        from trajscope.collector.ack_log import ACK_LOG_DIR
        from trajscope.collector.ack_replay import load_acknowledged, load_acknowledged_logs
        from trajscope.collector.logs_ingest import LOGS_ACK_DIR
        from trajscope.storage.compaction import CompactionError, compact

        if not _configure_prices(args.prices, getattr(args, 'redact', None)):
            return 1
        print(f"trajscope: compacting {args.data} …", file=sys.stderr, flush=True)

        def fold_in(store: Any) -> None:
            def say(msg: str) -> None:
                print(f"trajscope: {msg}", file=sys.stderr, flush=True)

            load_acknowledged(Path(args.data) / ACK_LOG_DIR, store, progress=say)
            load_acknowledged_logs(Path(args.data) / LOGS_ACK_DIR, store, progress=say)

        try:
            done = compact(args.data, fold_in)
        except CompactionError as exc:
            print(f"trajscope: {exc}", file=sys.stderr)
            return 1
        per_span = (lambda n: f" ({n / done.spans:.0f} B/span)") if done.spans else (lambda n: "")
        print(f"trajscope: {done.bytes_before:,} → {done.bytes_after:,} bytes{per_span(done.bytes_after)}, "
              f"{done.spans:,} spans, {done.seconds:.1f} s", file=sys.stderr)
        return 0
    if args.command in ("sql", "export", "reprice"):
        from trajscope.analyst_cli import CliError, run_export, run_sql_command
        from trajscope.cost_cli import run_reprice

        try:
            if args.command == "reprice":
                return run_reprice(since=args.since, until=args.until, url=args.url, data=args.data,
                                   prices=args.prices, api_key=args.api_key)
            if args.command == "sql":
                return run_sql_command(args.query, url=args.url, data=args.data, api_key=args.api_key,
                                       fmt=args.format, output=args.output, limit=args.limit)
            return run_export(since=args.since, until=args.until, output=args.output, url=args.url,
                              data=args.data, api_key=args.api_key)
        except CliError as exc:
            print(f"trajscope: {exc}", file=sys.stderr)
            return 1
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
