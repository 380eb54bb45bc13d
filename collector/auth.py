"""Who may do what: the keys clients present, checked for the OTLP receivers and the query API alike.

Two sources, either or both: the single ``--api-key`` (every scope, every project) and a keys file
(``collector.keyring``: keys with scopes and projects). With neither, the server is open (it binds loopback
unless ``--insecure``: ``trajscope.server``). Keys are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from trajscope.collector.keyring import Keyring


def key_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a client presented: ``Authorization: Bearer <key>`` or ``x-api-key: <key>``."""
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return x_api_key


@dataclass(frozen=True)
class Grant:
    """What one request may do: its key's name (for messages, never the key) and projects (None: all)."""
    name: str
    projects: frozenset[str] | None = None

    @property
    def only_project(self) -> str | None:
        return next(iter(self.projects)) if self.projects is not None and len(self.projects) == 1 else None

    def allows(self, project: str) -> bool:
        return self.projects is None or project in self.projects


OPEN = Grant("open")
UNAUTHENTICATED = "missing or wrong API key (Authorization: Bearer <key>, or x-api-key)"


class Access:
    """The server's keys: ``check`` a presented key for a scope."""

    def __init__(self, api_key: str | None = None, keyring: Keyring | None = None) -> None:
        self.api_key = api_key or None
        self.keyring = keyring

    @property
    def open(self) -> bool:
        return self.api_key is None and self.keyring is None

    def check(self, presented: str | None, scope: str) -> Grant | str:
        """The grant of a key allowed ``scope``, or why not (a message: no or a wrong key, or a key without
        the scope)."""
        if self.open:
            return OPEN
        if self.api_key is not None and presented is not None and hmac.compare_digest(  # constant time
                self.api_key.encode(), presented.encode()):
            return Grant("api-key")
        key = self.keyring.authenticate(presented) if self.keyring is not None else None
        if key is None:
            return UNAUTHENTICATED
        if not key.may(scope):
            return f"key {key.name!r} has no {scope!r} scope (it has {', '.join(sorted(key.scopes))})"
        return Grant(key.name, None if key.all_projects else key.projects)
