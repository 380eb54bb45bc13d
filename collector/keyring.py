"""API keys with scopes and projects, kept in a TOML file as salted hashes (never in clear).

A key reads ``tsk_<id>_<secret>``: the id names its entry, the secret (32 random bytes, hex) is checked
against the entry's ``sha256(salt || secret)`` in constant time — one hash per request, whatever the number
of keys. Secrets are random, so a fast hash is enough (no password stretching is needed).

The file (``trajscope keys add|list|revoke --keys-file F``; read by ``trajscope serve --keys-file F``):

    [[key]]
    id = "3f9a1c2e"
    name = "ingest-prod"
    scopes = ["ingest"]          # ingest, read, admin
    projects = ["shop"]          # or ["*"]
    salt = "…"
    hash = "…"
    created = "2026-12-07T13:40:00Z"
    revoked = false

The server re-reads the file when it changes (checked at most once a second): a key added or revoked takes
effect without a restart. A file that no longer parses is said once and the keys read before stay in force.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SCOPES = ("ingest", "read", "admin")
ALL_PROJECTS = "*"
PREFIX = "tsk_"
RELOAD_EVERY_S = 1.0


class KeysFileError(ValueError):
    """The keys file cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Key:
    id: str
    name: str
    scopes: frozenset[str]
    projects: frozenset[str]
    salt: str = field(repr=False)
    digest: str = field(repr=False)
    created: str = ""
    revoked: bool = False

    @property
    def all_projects(self) -> bool:
        return ALL_PROJECTS in self.projects

    def may(self, scope: str) -> bool:
        """Whether the key has ``scope``; ``admin`` holds every scope."""
        return scope in self.scopes or "admin" in self.scopes


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def new_key(name: str, scopes: Iterable[str], projects: Iterable[str]) -> tuple[Key, str]:
    """A new key entry and the key itself (``tsk_<id>_<secret>``), shown once."""
    scopes, projects = frozenset(scopes), frozenset(projects)
    unknown = scopes - set(SCOPES)
    if unknown or not scopes:
        raise KeysFileError(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(sorted(scopes)) or 'none'}")
    if not projects or any(not p or "," in p for p in projects):
        raise KeysFileError("name at least one project (or *)")
    key_id, secret, salt = secrets.token_hex(4), secrets.token_hex(32), secrets.token_hex(16)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return Key(key_id, name or f"key-{key_id}", scopes, projects, salt, _digest(salt, secret), created), \
        f"{PREFIX}{key_id}_{secret}"


def read_keys(path: str | Path) -> dict[str, Key]:
    """The entries of a keys file by id; a missing file has none."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise KeysFileError(f"{path}: {exc}") from None
    keys: dict[str, Key] = {}
    for i, entry in enumerate(doc.get("key", [])):
        try:
            key = Key(str(entry["id"]), str(entry.get("name", "")), frozenset(entry["scopes"]),
                      frozenset(entry["projects"]), str(entry["salt"]), str(entry["hash"]),
                      str(entry.get("created", "")), bool(entry.get("revoked", False)))
        except (KeyError, TypeError) as exc:
            raise KeysFileError(f"{path}: key entry {i + 1} lacks {exc}") from None
        if key.id in keys:
            raise KeysFileError(f"{path}: key id {key.id} appears twice")
        keys[key.id] = key
    return keys


def write_keys(path: str | Path, keys: Iterable[Key]) -> None:
    """Replace the keys file atomically (a server reading it sees the old or the new file, never half)."""
    path = Path(path)
    lines = ["# trajscope API keys: salted hashes, never the keys. Manage with `trajscope keys`.", ""]
    for key in keys:
        lines += ["[[key]]", f"id = {json.dumps(key.id)}", f"name = {json.dumps(key.name)}",
                  f"scopes = {json.dumps(sorted(key.scopes))}", f"projects = {json.dumps(sorted(key.projects))}",
                  f"salt = {json.dumps(key.salt)}", f"hash = {json.dumps(key.digest)}",
                  f"created = {json.dumps(key.created)}", f"revoked = {'true' if key.revoked else 'false'}", ""]
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Keyring:
    """The keys of a file, re-read when it changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._keys = read_keys(self.path)  # a bad file at start is the start's failure
        self._stamp = self._file_stamp()
        # Told (added, revoked, removed key names) when a reload changes the keys: the audit log.
        self.on_change: Callable[[list[str], list[str], list[str]], None] | None = None

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < RELOAD_EVERY_S:
            return
        with self._lock:
            self._checked = now
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return
            try:
                keys = read_keys(self.path)
            except KeysFileError as exc:
                log.error("keys file not reloaded (the keys read before stay in force): %s", exc)
                self._stamp = stamp
                return
            before, self._keys, self._stamp = self._keys, keys, stamp
            log.warning("keys file %s reloaded: %d active keys", self.path, sum(not k.revoked for k in keys.values()))
        if self.on_change is not None:
            added = [k.name for i, k in keys.items() if i not in before]
            revoked = [k.name for i, k in keys.items() if k.revoked and i in before and not before[i].revoked]
            removed = [k.name for i, k in before.items() if i not in keys]
            if added or revoked or removed:
                self.on_change(added, revoked, removed)

    def authenticate(self, presented: str | None) -> Key | None:
        """The active key ``presented`` is, or None."""
        if not presented or not presented.startswith(PREFIX):
            return None
        key_id, _, secret = presented[len(PREFIX):].partition("_")
        self._refresh()
        key = self._keys.get(key_id)
        if key is None or key.revoked or not secret:
            return None
        return key if hmac.compare_digest(_digest(key.salt, secret), key.digest) else None
