"""A Python client for the query API: traces and analyst SQL as Polars data frames.

    from trajscope.client import Client
    ts = Client("http://127.0.0.1:8000", api_key=None)
    ts.sql("SELECT model, sum(cost_usd) AS cost FROM llm_calls GROUP BY model")   # polars.DataFrame
    ts.traces(agent="planner", status="error")                                     # polars.DataFrame
    ts.trajectory(trace_id)["steps"]
    ts.retrievals(index_name="kb"); ts.retrieved_documents(trace_id=trace_id)         # polars.DataFrame

SQL results travel as an Arrow IPC stream (no JSON round trip). Errors raise ``TrajscopeError`` carrying
the server's error code (``invalid_sql``, ``forbidden``, ``timeout``, ``too_large``, ``not_found``...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pyarrow as pa

if TYPE_CHECKING:
    import polars


_TRACE_FILTERS = frozenset({"project", "service", "agent", "session_id", "status", "since", "until",
                            "min_duration_ms"})


class TrajscopeError(Exception):
    """An error answer from the server; ``code`` is its error code, ``status`` the HTTP status."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def _view_query(view: str, where: dict[str, str], order: str) -> str:
    """``SELECT *`` from a view with equality conditions; values become quoted SQL literals."""
    conditions = []
    for column, value in where.items():
        if not column.isidentifier():
            raise TypeError(f"not a column name: {column!r}")
        literal = str(value).replace("'", "''")
        conditions.append(f"{column} = '{literal}'")
    return f"SELECT * FROM {view}{' WHERE ' + ' AND '.join(conditions) if conditions else ''} ORDER BY {order}"


def _polars():
    try:
        import polars
    except ImportError:  # the client is optional: say how to get it
        raise ImportError("trajscope.client needs Polars: pip install 'trajscope[client]'") from None
    return polars


class Client:
    def __init__(self, url: str = "http://127.0.0.1:8000", api_key: str | None = None, *,
                 timeout: float = 120.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        response.read()  # a streamed response's error body
        try:
            error = response.json()["error"]
            code, message = error["code"], error["message"]
        except (ValueError, KeyError, TypeError):
            code, message = "http_error", f"HTTP {response.status_code}: {response.text[:200]}"
        raise TrajscopeError(code, message, response.status_code)

    def _get(self, path: str, **params: Any) -> Any:
        params = {k: v for k, v in params.items() if v is not None}
        return self._check(self._http.get(f"/api/v1{path}", params=params)).json()

    # -- SQL ------------------------------------------------------------------------------------------
    def sql_result(self, query: str, *, limit: int = 1_000_000,
                   timeout_s: float | None = None) -> tuple[pa.Table, bool]:
        """The answer as Arrow, and whether ``limit`` cut it short."""
        body: dict[str, Any] = {"sql": query, "format": "arrow", "limit": limit}
        if timeout_s is not None:
            body["timeout_s"] = timeout_s
        response = self._check(self._http.post("/api/v1/sql", json=body))
        return (pa.ipc.open_stream(response.content).read_all(),
                response.headers.get("X-Trajscope-Truncated") == "true")

    def sql_arrow(self, query: str, *, limit: int = 1_000_000, timeout_s: float | None = None) -> pa.Table:
        return self.sql_result(query, limit=limit, timeout_s=timeout_s)[0]

    def sql(self, query: str, *, limit: int = 1_000_000, timeout_s: float | None = None) -> polars.DataFrame:
        """Run one read query over the trace tables and views; see the README for their columns."""
        return _polars().from_arrow(self.sql_arrow(query, limit=limit, timeout_s=timeout_s))

    # -- traces ---------------------------------------------------------------------------------------
    def traces(self, *, limit: int = 1000, **filters: Any) -> polars.DataFrame:
        """Trace summaries, newest first, following cursors up to ``limit`` rows. Filters are the list
        endpoint's: ``project``, ``service``, ``agent``, ``session_id``, ``status="error"``, ``since``,
        ``until`` (Unix ns, RFC 3339 or an age like ``"1h"``), ``min_duration_ms``."""
        unknown = set(filters) - _TRACE_FILTERS
        if unknown:
            raise TypeError(f"unknown trace filter(s) {sorted(unknown)}; use {sorted(_TRACE_FILTERS)}")
        items: list[dict[str, Any]] = []
        cursor = None
        while len(items) < limit:
            page = self._get("/traces", limit=min(1000, limit - len(items)), cursor=cursor, **filters)
            items.extend(page["traces"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return _polars().DataFrame(items)

    def trace(self, trace_id: str) -> dict[str, Any]:
        return self._get(f"/traces/{trace_id}")

    def trajectory(self, trace_id: str) -> dict[str, Any]:
        return self._get(f"/traces/{trace_id}/trajectory")

    def latency(self, trace_id: str) -> dict[str, Any]:
        return self._get(f"/traces/{trace_id}/latency")

    # -- retrieval ------------------------------------------------------------------------------------
    def retrievals(self, *, limit: int = 100_000, **where: str) -> polars.DataFrame:
        """The ``retrievals`` view (one row per retrieval step), newest first; ``where`` matches columns by
        equality, e.g. ``index_name="kb"``, ``trace_id=...``, ``agent_name="qa"``."""
        return self.sql(_view_query("retrievals", where, "start_time DESC, span_id"), limit=limit)

    def retrieved_documents(self, *, limit: int = 100_000, **where: str) -> polars.DataFrame:
        """The ``retrieved_documents`` view (one row per returned document), by step and rank; ``where`` as in
        ``retrievals`` (e.g. ``trace_id=...``, ``document_id=...``)."""
        return self.sql(_view_query("retrieved_documents", where, "start_time DESC, span_id, rank"), limit=limit)

    def retrieval_stats(self, group_by: str = "index", **params: Any) -> dict[str, Any]:
        """``GET /api/v1/stats/retrieval``: per group, and the documents retrieved most often."""
        return self._get("/stats/retrieval", group_by=group_by, **params)

    # -- erasure --------------------------------------------------------------------------------------
    def delete(self, *, trace_id: str | None = None, session_id: str | None = None, user_id: str | None = None,
               project: str | None = None) -> dict[str, int]:
        """``POST /api/v1/delete``: every trace of a trace id, a session or a user (an admin key)."""
        body = {k: v for k, v in (("trace_id", trace_id), ("session_id", session_id), ("user_id", user_id),
                                  ("project", project)) if v is not None}
        return self._check(self._http.post("/api/v1/delete", json=body)).json()

    # -- cost -----------------------------------------------------------------------------------------
    def reprice(self, *, since: str | None = None, until: str | None = None,
                progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Re-cost stored spans with the server's price table; ``progress(done, total)`` as it goes."""
        body = {k: v for k, v in (("since", since), ("until", until)) if v}
        with self._http.stream("POST", "/api/v1/reprice", json=body, timeout=None) as response:
            self._check(response)
            for line in response.iter_lines():
                if not line:
                    continue
                item = orjson.loads(line)
                if "error" in item:
                    raise TrajscopeError(item["error"]["code"], item["error"]["message"], response.status_code)
                if "result" in item:
                    return item["result"]
                if progress:
                    progress(item["done"], item["total"])
        raise TrajscopeError("incomplete", "the server ended the reprice stream without a result", 200)
