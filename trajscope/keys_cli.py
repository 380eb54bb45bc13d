"""``trajscope keys add|list|revoke --keys-file F``: manage the API keys a server reads (``collector.keyring``).

``add`` prints the new key once, alone on its last line of output (scripts take that line); the file keeps
only its salted hash. ``revoke`` takes a key's id or name; a running server stops accepting it within a second.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from trajscope.collector.keyring import SCOPES, KeysFileError, new_key, read_keys, write_keys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="add, list or revoke API keys in a keys file (trajscope serve --keys-file)")
    actions = p.add_subparsers(dest="keys_action", required=True)
    add = actions.add_parser("add", help="create a key; prints it once, on the last line")
    add.add_argument("--keys-file", type=Path, required=True)
    add.add_argument("--scopes", required=True, help=f"comma-separated: {', '.join(SCOPES)}")
    add.add_argument("--projects", required=True, help="comma-separated project names, or *")
    add.add_argument("--name", default="", help="a name to recognise the key by (default: key-<id>)")
    listing = actions.add_parser("list", help="the keys of a file (never the keys themselves)")
    listing.add_argument("--keys-file", type=Path, required=True)
    revoke = actions.add_parser("revoke", help="stop accepting a key (by id or name)")
    revoke.add_argument("--keys-file", type=Path, required=True)
    revoke.add_argument("key", help="the key's id or name")


def run(args: argparse.Namespace) -> int:
    try:
        keys = read_keys(args.keys_file)
        if args.keys_action == "add":
            return _add(args, keys)
        if args.keys_action == "list":
            return _list(keys)
        return _revoke(args, keys)
    except KeysFileError as exc:
        print(f"trajscope keys: {exc}", file=sys.stderr)
        return 2


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _add(args: argparse.Namespace, keys: dict) -> int:
    if args.name and any(k.name == args.name for k in keys.values()):
        raise KeysFileError(f"a key named {args.name!r} exists already in {args.keys_file}")
    key, secret = new_key(args.name, _split(args.scopes), _split(args.projects))
    write_keys(args.keys_file, [*keys.values(), key])
    print(f"added key {key.name} (id {key.id}): scopes {', '.join(sorted(key.scopes))}; projects "
          f"{', '.join(sorted(key.projects))}. It is shown once, below; {args.keys_file} keeps only its hash.")
    print(secret)
    return 0


def _list(keys: dict) -> int:
    print(f"{'id':<10} {'name':<24} {'scopes':<20} {'projects':<30} {'created':<21} state")
    for key in keys.values():
        print(f"{key.id:<10} {key.name:<24} {','.join(sorted(key.scopes)):<20} "
              f"{','.join(sorted(key.projects)):<30} {key.created:<21} {'revoked' if key.revoked else 'active'}")
    return 0


def _revoke(args: argparse.Namespace, keys: dict) -> int:
    matches = [k for k in keys.values() if args.key in (k.id, k.name)]
    if not matches:
        raise KeysFileError(f"no key with id or name {args.key!r} in {args.keys_file}")
    if len(matches) > 1:
        raise KeysFileError(f"{len(matches)} keys are named {args.key!r}: revoke by id")
    key = matches[0]
    write_keys(args.keys_file, [replace(k, revoked=True) if k is key else k for k in keys.values()])
    print(f"revoked key {key.name} (id {key.id}); a running server stops accepting it within a second")
    return 0
