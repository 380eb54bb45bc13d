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
# Routes that take the key's projects as they are (analyst SQL: query.scoped_sql; deletions; alert rules).
SCOPED_BY_ROUTE = frozenset({"/api/v1/sql", "/api/v1/delete", "/api/v1/alerts"})
# Routes that read no project's data (the web UI's files, health, the price table).
NO_DATA = ("/ui/", "/docs", "/openapi.json", "/api/v1/health", "/api/v1/prices")
ADMIN = frozenset({("POST", "/api/v1/reprice"), ("POST", "/api/v1/delete")})


def scope_of(method: str, path: str) -> str:
    return "admin" if (method, path) in ADMIN else "read"


class ProjectScope:
    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or self.access.open or path == "/" or path.startswith(NO_DATA):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        grant = self.access.check(key_from_headers(headers.get("authorization"), headers.get("x-api-key")),
                                  scope_of(scope.get("method", "GET"), path))
        if isinstance(grant, str) or grant.projects is None:
            await self.app(scope, receive, send)  # the route's own check answers a refusal
            return
        if path in SCOPED_BY_ROUTE:
            scope.setdefault("state", {})["projects"] = grant.projects
            await self.app(scope, receive, send)
            return
        refusal = _scoped(scope, path, grant)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _scoped(scope: Scope, path: str, grant: Grant):
    """Scope the request's ``project`` to the grant (rewriting its query string), or the refusal to send."""
    allowed = ", ".join(sorted(grant.projects or ()))
    if path in CROSS_PROJECT:
        return error_response(ErrorCode.PERMISSION_DENIED, (
            f"key {grant.name!r} reads only project(s) {allowed}; {path} reads across projects and needs a key "
            "for all projects"))
    params = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    named = [value for name, value in params if name == "project"]
    if any(not grant.allows(p) for p in named):
        return error_response(ErrorCode.PERMISSION_DENIED,
                              f"key {grant.name!r} reads only project(s) {allowed}")
    if not named:
        if grant.only_project is None:
            return error_response(ErrorCode.INVALID_ARGUMENT,
                                  f"key {grant.name!r} reads several projects ({allowed}): pass project=")
        params.append(("project", grant.only_project))
        scope["query_string"] = urlencode(params).encode("latin-1")
    return None
