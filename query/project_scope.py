"""A key limited to some projects reads only those: its requests are scoped before they reach a route.

Every data route takes ``project``: a scoped key's request gets its one project filled in, or must name one
of its projects (400 when it names none and the key has several; 403 when it names another). Analyst SQL
runs over the key's projects' rows only (``query.scoped_sql``), the alert rules listed are those of the key's
projects; the routes that read across projects (server metrics, repricing) are refused to scoped keys. Keys
for all projects (and the single ``--api-key``) pass unchanged.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Receive, Scope, Send

from trajscope.collector.auth import Access, Grant, key_from_headers
from trajscope.query.errors import ErrorCode, error_response

# Routes that read across projects, refused to a key limited to some.
CROSS_PROJECT = frozenset({"/metrics", "/api/v1/reprice"})
# Routes that scope themselves by the grant's projects (analyst SQL: query.scoped_sql; deletions; alert rules).
SCOPED_BY_ROUTE = frozenset({"/api/v1/sql", "/api/v1/delete", "/api/v1/alerts"})
# API routes that read no project's data (health, the price table).
NO_DATA = ("/api/v1/health", "/api/v1/prices")
ADMIN = frozenset({("POST", "/api/v1/reprice"), ("POST", "/api/v1/delete")})


def scope_of(method: str, path: str) -> str:
    return "admin" if (method, path) in ADMIN else "read"


class ProjectRefused(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def scoped_project(grant: Grant, named: list[str]) -> str | None:
    """The project a request names (``named``: its ``project`` values), checked against ``grant``: the key's
    one project when it names none; None when the key reads every project and none is named. Raises
    ``ProjectRefused``."""
    if grant.projects is None:
        return named[-1] if named else None
    allowed = ", ".join(sorted(grant.projects))
    if any(not grant.allows(p) for p in named):
        raise ProjectRefused(ErrorCode.PERMISSION_DENIED, f"key {grant.name!r} may use only project(s) {allowed}")
    if named:
        return named[-1]
    if grant.only_project is None:
        raise ProjectRefused(ErrorCode.INVALID_ARGUMENT,
                             f"key {grant.name!r} reads several projects ({allowed}): pass project=")
    return grant.only_project


class ProjectScope:
    """Authenticates each API request once (the grant is ``request.state.grant`` for the routes' own check) and
    scopes the requests of keys limited to some projects."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(("/api/", "/metrics")):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        grant = self.access.check(key_from_headers(headers.get("authorization"), headers.get("x-api-key")),
                                  scope_of(scope.get("method", "GET"), path))
        state = scope.setdefault("state", {})
        state["grant"] = grant
        if isinstance(grant, str) or grant.projects is None or path.startswith(NO_DATA):
            await self.app(scope, receive, send)  # the route's own check answers a refusal
            return
        if path in SCOPED_BY_ROUTE:
            await self.app(scope, receive, send)
            return
        refusal = _scoped(scope, path, grant)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _scoped(scope: Scope, path: str, grant: Grant):
    """Scope the request's ``project`` to the grant (rewriting its query string), or the refusal to send."""
    if path in CROSS_PROJECT:
        return error_response(ErrorCode.PERMISSION_DENIED, (
            f"key {grant.name!r} reads only project(s) {', '.join(sorted(grant.projects or ()))}; {path} reads "
            "across projects and needs a key for all projects"))
    params = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    named = [value for name, value in params if name == "project"]
    try:
        project = scoped_project(grant, named)
    except ProjectRefused as exc:
        return error_response(exc.code, exc.message)
    if not named:
        params.append(("project", project))
        scope["query_string"] = urlencode(params).encode("latin-1")
    return None
