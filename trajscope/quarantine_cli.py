"""``trajscope quarantine list|retry|drop``: what ingestion set aside (``storage.quarantine``), with the server
stopped for ``retry`` and ``drop`` (they take the data directory's lock)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa

from trajscope.storage.quarantine import QUARANTINE_DIR, Entry, Quarantine


def _say(message: str) -> None:
    print(f"trajscope: {message}", file=sys.stderr, flush=True)


def _chosen(quarantine: Quarantine, ids: list[str], everything: bool) -> list[Entry] | None:
    entries = quarantine.entries()
    if everything:
        return entries
    if not ids:
        _say("name the entries (ids from `trajscope quarantine list`) or pass --all")
        return None
    by_id = {e.id: e for e in entries}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        _say(f"no quarantine entry {', '.join(unknown)} in {quarantine.directory}")
        return None
    return [by_id[i] for i in ids]


def list_entries(data: Path, as_json: bool) -> int:
    entries = Quarantine(data / QUARANTINE_DIR).entries()
    if as_json:
        print(orjson.dumps([e.as_dict() for e in entries], option=orjson.OPT_INDENT_2).decode())
        return 0
    if not entries:
        _say(f"nothing in quarantine ({data / QUARANTINE_DIR})")
        return 0
    print(f"{'id':<26} {'kind':<7} {'spans':>6}  {'project':<12} {'when (UTC)':<19}  reason")
    for e in entries:
        when = datetime.fromtimestamp(e.time_unix_nano / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{e.id:<26} {e.kind:<7} {e.spans:>6}  {e.project or '-'!s:<12} {when:<19}  {e.reason}")
    return 0


def drop(data: Path, ids: list[str], everything: bool) -> int:
    from trajscope.storage.clean_start import DirectoryInUse, DirectoryLock

    quarantine = Quarantine(data / QUARANTINE_DIR)
    try:
        lock = DirectoryLock(data)
    except DirectoryInUse as exc:
        _say(f"{exc}; stop it first")
        return 1
    try:
        chosen = _chosen(quarantine, ids, everything)
        if chosen is None:
            return 1
        for entry in chosen:
            quarantine.drop(entry)
        _say(f"dropped {len(chosen)} entr{'y' if len(chosen) == 1 else 'ies'} "
             f"({sum(e.spans for e in chosen)} spans)")
        return 0
    finally:
        lock.release()


def retry(data: Path, ids: list[str], everything: bool) -> int:
    """Decode (exports) or read (spans) each entry and write it into the store; entries that now load are
    checkpointed, then dropped. Returns 0 when every chosen entry loaded, 1 otherwise."""
    from trajscope.collector.ack_log import decode as decode_record
    from trajscope.collector.otlp_decode import decode_request
    from trajscope.storage.duckdb_store import DuckDBStore
    from trajscope.storage.loader import conform

    quarantine = Quarantine(data / QUARANTINE_DIR)
    chosen = _chosen(quarantine, ids, everything)
    if chosen is None:
        return 1
    store = DuckDBStore(data)  # takes the directory's lock: the server must be stopped
    loaded: list[Entry] = []
    try:
        for entry in chosen:
            try:
                if entry.kind == "export":
                    project, body = decode_record(entry.data.read_bytes())
                    spans = decode_request(body, project).table
                else:
                    spans = conform(pa.ipc.open_stream(entry.data.read_bytes()).read_all())
                written = store.write(spans)
            except Exception as exc:  # reported per entry: the entry stays
                _say(f"{entry.id}: still fails ({type(exc).__name__}: {exc}); kept")
                continue
            _say(f"{entry.id}: loaded {spans.num_rows} spans ({written} new)")
            loaded.append(entry)
        store.checkpoint()  # in the file before the quarantine lets go of them
        for entry in loaded:
            quarantine.drop(entry)
    finally:
        store.close()
    return 0 if len(loaded) == len(chosen) else 1
