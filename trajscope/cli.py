"""The ``trajscope`` command."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from trajscope import __version__
from trajscope.config import ServerSettings, env, env_int


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    d = ServerSettings()
    p = sub.add_parser("serve", help="run the OTLP receivers and the query API",
                       description="Each flag can also be set as TRAJSCOPE_<FLAG>, e.g. TRAJSCOPE_API_PORT.")
    p.add_argument("--data", type=Path, default=Path(env("data", str(d.data))),
                   help="data directory (DuckDB file inside); default ./data")
    p.add_argument("--host", default=env("host", d.host), help="address to bind; default 127.0.0.1")
    p.add_argument("--grpc-port", type=int, default=env_int("grpc_port", d.grpc_port))
    p.add_argument("--http-port", type=int, default=env_int("http_port", d.http_port))
    p.add_argument("--api-port", type=int, default=env_int("api_port", d.api_port))
    p.add_argument("--api-key", default=env("api_key", None),
                   help="require this key (Authorization: Bearer) on OTLP and the API")
    p.add_argument("--decode-workers", type=int, default=env_int("decode_workers", d.decode_workers))
    p.add_argument("--max-pending-spans", type=int,
                   default=env_int("max_pending_spans", d.max_pending_spans),
                   help="backlog above which exports are refused as retryable (UNAVAILABLE / 503)")


def _demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="send a realistic synthetic agent workload to a running server")
    p.add_argument("--endpoint", default=env("demo_endpoint", "http://127.0.0.1:4318"),
                   help="OTLP/HTTP endpoint; default http://127.0.0.1:4318")
    p.add_argument("--sessions", type=int, default=30, help="sessions to send (1-4 runs each)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--project", default=None, help="send as this project (resource trajscope.project)")
    p.add_argument("--api-key", default=env("api_key", None))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trajscope", description="Observability backend for AI agents.")
    parser.add_argument("--version", action="version", version=f"trajscope {__version__}")
    parser.add_argument("--log-level", default=env("log_level", "WARNING"))
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _demo_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.command == "serve":
        from trajscope.server import run

        return run(ServerSettings(
            data=args.data, host=args.host, grpc_port=args.grpc_port, http_port=args.http_port,
            api_port=args.api_port, api_key=args.api_key or None, decode_workers=args.decode_workers,
            max_pending_spans=args.max_pending_spans,
        ))
    if args.command == "demo":
        from trajscope.demo import run_demo

        return run_demo(args.endpoint, args.sessions, args.seed, args.api_key, args.project)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
