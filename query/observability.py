"""The API's own observability: a request id per request (``X-Request-Id``, taken from the client's or made),
one structured access-log line per request, and request latency per route for ``GET /metrics``."""

from __future__ import annotations

import contextvars
import logging
import secrets
import threading
import time
from collections import defaultdict

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trajscope.metrics import Histogram

# The id of the request being handled, for every log line written while handling it (``log_format``).
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
access_log = logging.getLogger("trajscope.access")


class RouteLatency:
    """Request latency histograms per route template (``/api/v1/traces/{trace_id}``), safe from any thread."""

    def __init__(self) -> None:
        self._by_route: dict[str, Histogram] = defaultdict(Histogram)
        self._lock = threading.Lock()

    def observe(self, route: str, seconds: float) -> None:
        with self._lock:
            histogram = self._by_route[route]
        histogram.observe(seconds)

    def items(self) -> list[tuple[str, Histogram]]:
        with self._lock:
            return sorted(self._by_route.items())


class RequestObservation:
    """ASGI middleware: request id (header in and out), access log line, latency per route."""

    def __init__(self, app: ASGIApp, latency: RouteLatency) -> None:
        self.app = app
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")[:64]
        rid = incoming if incoming and incoming.isprintable() else secrets.token_hex(8)
        token = request_id.set(rid)
        started = time.perf_counter()
        status = [500]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.latency.observe(route, seconds)
            access_log.info("%s %s %d %.1f ms", scope.get("method"), scope.get("path"), status[0], seconds * 1000,
                            extra={"route": route, "status": status[0], "duration_ms": round(seconds * 1000, 2)})
            request_id.reset(token)
