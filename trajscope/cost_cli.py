"""``trajscope reprice``: re-cost stored spans after the price table changed, with a progress bar."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import httpx

from trajscope.analyst_cli import CliError, Progress


def _report(result: dict) -> int:
    print(f"repriced: {result['spans_changed']} of {result['spans_examined']} costed spans changed, "
          f"{result['traces_refreshed']} traces refreshed", file=sys.stderr)
    return 0


def run_reprice(*, since: str | None, until: str | None, url: str, data: Path | None, prices: Path | None,
                api_key: str | None) -> int:
    bar = Progress(0, "repricing")

    def progress(done: int, total: int) -> None:
        bar.show(done, total, "spans")

    if data is not None:
        return _reprice_directory(data, prices, since, until, progress)
    if prices is not None:
        raise CliError("--prices applies with --data; a running server uses the file it was started with")
    from trajscope.client import Client, TrajscopeError

    try:
        with Client(url, api_key) as client:
            return _report(client.reprice(since=since, until=until, progress=progress))
    except TrajscopeError as exc:
        raise CliError(f"{exc.code}: {exc.message}") from None
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach {url}: {exc}; is `trajscope serve` running?") from None


def _reprice_directory(data: Path, prices: Path | None, since: str | None, until: str | None,
                       progress: Callable[[int, int], None]) -> int:
    from trajscope.analysis.pricing import PriceError, PriceTable
    from trajscope.query.errors import ApiError
    from trajscope.query.params import time_param
    from trajscope.storage.duckdb_store import DuckDBStore
    from trajscope.storage.repricing import reprice

    try:
        table = PriceTable.load(prices)
    except PriceError as exc:
        raise CliError(str(exc)) from None
    try:
        store = DuckDBStore(data)
    except duckdb.IOException as exc:
        raise CliError(f"cannot open {data} for writing ({exc}); if a server runs on it, use --url") from None
    try:
        now = time.time_ns()
        result = reprice(store, table, since_unix_nano=time_param("since", since, now),
                         until_unix_nano=time_param("until", until, now), progress=progress)
    except ApiError as exc:
        raise CliError(exc.message) from None
    finally:
        store.close()
    return _report(result.__dict__)
