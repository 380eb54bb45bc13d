"""A store opens after any crash: DuckDB's WAL is set aside, never replayed; a damaged file gets a clear
error naming it and ``trajscope recover``."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

import pytest

from tests.otlp_builders import make_request, make_span
from trajscope.collector.otlp_decode import decode_request
from trajscope.storage.clean_start import DirectoryInUse, leftover_wals
from trajscope.storage.duckdb_store import DB_FILE, DuckDBStore, StoreError


def _spans(n: int, name: str):
    return decode_request(make_request([make_span(f"{name}-{i}") for i in range(n)]).SerializeToString()).table


def _crash_after_writes(data, checkpointed: int, unchecked: int) -> None:
    """A child process writes ``checkpointed`` spans and checkpoints, writes ``unchecked`` more, and dies
    without closing (what SIGKILL leaves: the second write only in DuckDB's WAL)."""
    code = textwrap.dedent(f"""
        import os
        from tests.storage.test_clean_start import _spans
        from trajscope.storage.duckdb_store import DuckDBStore
        store = DuckDBStore({str(data)!r})
        store.write(_spans({checkpointed}, "kept"))
        store.checkpoint()
        store.write(_spans({unchecked}, "wal-only"))
        os._exit(0)
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def _count(store: DuckDBStore) -> int:
    return store.query("SELECT count(*) AS n FROM spans").column("n")[0].as_py()


def test_a_wal_left_by_a_crash_is_set_aside_and_the_file_opens_at_its_checkpoint(tmp_path, caplog):
    data = tmp_path / "data"
    _crash_after_writes(data, 3, 4)
    assert leftover_wals(data / DB_FILE)
    with caplog.at_level(logging.WARNING):
        store = DuckDBStore(data)
    # What only the WAL held is for trajscope's own logs to re-apply; the engine never replays it.
    assert _count(store) == 3
    assert store.wal_set_aside is not None and (store.wal_set_aside / f"{DB_FILE}.wal").stat().st_size > 0
    assert not leftover_wals(data / DB_FILE)
    assert str(store.wal_set_aside) in caplog.text and "last checkpoint" in caplog.text
    store.write(_spans(2, "after"))
    store.close()
    store = DuckDBStore(data)
    assert _count(store) == 5 and store.wal_set_aside is None  # closed cleanly: nothing set aside
    store.close()


def test_a_wal_the_engine_cannot_replay_does_not_keep_the_store_from_opening(tmp_path):
    data = tmp_path / "data"
    store = DuckDBStore(data)
    store.write(_spans(2, "kept"))
    store.close()
    (data / f"{DB_FILE}.wal").write_bytes(b"\x07garbage, not a WAL" * 100)
    store = DuckDBStore(data)
    assert _count(store) == 2
    assert (store.wal_set_aside / f"{DB_FILE}.wal").read_bytes().startswith(b"\x07garbage")
    store.close()


def test_a_fresh_store_has_its_schema_in_the_file_not_only_in_a_wal(tmp_path):
    data = tmp_path / "data"
    _crash_after_writes(data, 0, 2)
    store = DuckDBStore(data)  # the WAL (with the two spans) set aside: the tables are still there
    assert _count(store) == 0 and store.schema_version >= 1
    store.close()


def test_a_directory_in_use_is_refused_and_its_wal_left_alone(tmp_path):
    data = tmp_path / "data"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from tests.storage.test_clean_start import _spans
        from trajscope.storage.duckdb_store import DuckDBStore
        store = DuckDBStore({str(data)!r})
        store.write(_spans(2, "held"))
        print("open", flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        wals = leftover_wals(data / DB_FILE)
        with pytest.raises(DirectoryInUse, match="in use by another process"):
            DuckDBStore(data)
        assert leftover_wals(data / DB_FILE) == wals
    finally:
        holder.communicate("", timeout=30)


def test_a_read_only_open_of_an_uncleanly_closed_store_says_what_to_do(tmp_path):
    data = tmp_path / "data"
    _crash_after_writes(data, 1, 1)
    with pytest.raises(StoreError, match="trajscope recover --data"):
        DuckDBStore(data, read_only=True)
    assert leftover_wals(data / DB_FILE)  # a reader changes nothing


def test_a_damaged_database_file_names_itself_and_the_recover_command(tmp_path):
    data = tmp_path / "data"
    DuckDBStore(data).close()
    db = data / DB_FILE
    with open(db, "r+b") as f:
        f.write(b"\xff" * 8192)  # the file's headers
    with pytest.raises(StoreError) as raised:
        DuckDBStore(data)
    assert str(db) in str(raised.value) and f"trajscope recover --data {data}" in str(raised.value)
    assert "\n" not in str(raised.value)
