"""``trajscope delete --trace ID | --session ID | --user ID``: an erasure request, through a running server's
API (an ``admin`` key) or on a stopped server's data directory (``--data``); either way an audit line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx

from trajscope.config import env


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("delete", help="delete every trace of a trace id, a session or a user (erasure requests)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--trace", help="a trace id (32 hex digits)")
    which.add_argument("--session", help="every trace of this session")
    which.add_argument("--user", help="every trace of this user")
    p.add_argument("--project", default=None, help="only in this project")
    p.add_argument("--url", default=env("url", "http://127.0.0.1:8000"), help="a running server's API")
    p.add_argument("--api-key", default=env("api_key", None), help="a key with the admin scope")
    p.add_argument("--data", type=Path, default=None, help="a stopped server's data directory instead")


def run(args: argparse.Namespace) -> int:
    named = {k: v for k, v in (("trace_id", args.trace), ("session_id", args.session), ("user_id", args.user))
             if v is not None}
    if args.data is not None:
        return _directory(args.data, named, args.project)
    from trajscope.client import Client, TrajscopeError

    try:
        with Client(args.url, args.api_key) as client:
            return _report(client.delete(project=args.project, **named))
    except TrajscopeError as exc:
        print(f"trajscope: {exc.code}: {exc.message}", file=sys.stderr)
    except httpx.HTTPError as exc:
        print(f"trajscope: cannot reach {args.url}: {exc}; is `trajscope serve` running? (or use --data)",
              file=sys.stderr)
    return 1


def _directory(data: Path, named: dict[str, str], project: str | None) -> int:
    from trajscope.audit import AUDIT_FILE, AuditLog
    from trajscope.retention import erase
    from trajscope.storage.duckdb_store import DuckDBStore, StoreError

    try:
        store = DuckDBStore(data)
    except StoreError as exc:
        print(f"trajscope: {exc}", file=sys.stderr)
        return 1
    try:
        deleted = erase(store, AuditLog(Path(data) / AUDIT_FILE), "cli", project, **named)
        store.checkpoint()
    finally:
        store.close()
    return _report(deleted.__dict__)


def _report(counts: dict[str, int]) -> int:
    print(f"trajscope: deleted {counts['traces']} traces ({counts['spans']} spans, {counts['log_records']} log "
          "records)")
    return 0
