"""``trajscope reprice``: re-cost stored spans after the price table changed, with a progress bar."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import orjson

from trajscope.analyst_cli import CliError, Progress


class _Bar:
    def __init__(self) -> None:
        self.progress = Progress(0, "repricing")

    def __call__(self, done: int, total: int) -> None:
        self.progress.show(done, total, "spans")


def _report(result: dict) -> int:
    print(f"repriced: {result['spans_changed']} of {result['spans_examined']} costed spans changed, "
          f"{result['traces_refreshed']} traces refreshed", file=sys.stderr)
    return 0


def run_reprice(*, since: str | None, until: str | None, url: str, data: Path | None, prices: Path | None,
                api_key: str | None) -> int:
    if data is not None:
        from trajscope.analysis.pricing import PriceError, PriceTable
        from trajscope.query.errors import ApiError
        from trajscope.query.params import time_param
        from trajscope.storage.duckdb_store import DuckDBStore
        from trajscope.storage.repricing import reprice

        try:
            table = PriceTable.load(prices)
        except PriceError as exc:
            raise CliError(str(exc)) from None
        import time

        now = time.time_ns()
        try:
            store = DuckDBStore(data)
        except Exception as exc:
            raise CliError(f"cannot open {data} for writing ({exc}); if a server runs on it, use --url") from None
        try:
            window = time_param("since", since, now), time_param("until", until, now)
            result = reprice(store, table, since_unix_nano=window[0], until_unix_nano=window[1], progress=_Bar())
        except ApiError as exc:
            raise CliError(exc.message) from None
        finally:
            store.close()
        return _report(result.__dict__)
    if prices is not None:
        raise CliError("--prices applies with --data; a running server uses the file it was started with")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    body = {k: v for k, v in (("since", since), ("until", until)) if v}
    bar = _Bar()
    try:
        with httpx.stream("POST", f"{url.rstrip('/')}/api/v1/reprice", json=body, headers=headers,
                          timeout=None) as response:
            if response.status_code != 200:
                response.read()
                try:
                    error = response.json()["error"]
                    raise CliError(f"{error['code']}: {error['message']}")
                except (ValueError, KeyError):
                    raise CliError(f"HTTP {response.status_code}") from None
            for line in response.iter_lines():
                if not line:
                    continue
                item = orjson.loads(line)
                if "error" in item:
                    raise CliError(f"{item['error']['code']}: {item['error']['message']}")
                if "result" in item:
                    return _report(item["result"])
                bar(item["done"], item["total"])
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach {url}: {exc}; is `trajscope serve` running?") from None
    raise CliError("the server ended the reprice stream without a result")
