"""The raw-body acknowledgement log: durable on append, kept until released, handed back after a crash."""

from __future__ import annotations

import threading

import pytest

from trajscope.collector.ack_log import AckLog, decode, encode
from trajscope.storage.quarantine import Quarantine


def _segments(log: AckLog) -> list[int]:
    return sorted(int(p.stem.split("-")[1]) for p in log.directory.glob("seg-*.log"))


@pytest.mark.parametrize(("project", "body"), [("p", b"body"), ("", b""), ("prøject", bytes(range(256)) * 3)])
def test_records_round_trip(project, body):
    assert decode(encode(project, body)) == (project, body)


def left_in(directory) -> list[tuple[str, bytes]]:
    """What the next run would find in the acknowledgement log in ``directory``."""
    log = AckLog(directory)
    try:
        return list(log.left_by_earlier_run())
    finally:
        log.close()


def test_unreleased_records_are_handed_to_the_next_run_and_released_ones_are_not(tmp_path):
    log = AckLog(tmp_path)
    first = log.append("a", b"one").result(5)
    log.append("b", b"two").result(5)
    log.release(first)  # one of the two records of that segment: the segment stays
    log.close()
    assert left_in(tmp_path) == [("a", b"one"), ("b", b"two")]


def test_a_run_that_released_everything_leaves_nothing(tmp_path):
    log = AckLog(tmp_path)
    segments = [log.append("p", f"body {i}".encode()).result(5) for i in range(5)]
    for segment in segments:
        log.release(segment)
    assert log.unreleased == 0
    log.close()
    assert left_in(tmp_path) == []


def test_earlier_records_are_kept_until_reloaded(tmp_path):
    log = AckLog(tmp_path)
    log.append("p", b"left behind").result(5)
    log.close()  # a crash: never released
    second = AckLog(tmp_path)
    earlier = _segments(second)[0]
    # This run's own records are released at once; the earlier one stays until reloaded.
    for _ in range(3):
        second.release(second.append("p", b"new").result(5))
    assert earlier in _segments(second)
    second.earlier_run_reloaded()
    assert earlier not in _segments(second)
    second.close()
    assert left_in(tmp_path) == []


def test_segments_go_only_when_every_record_before_them_is_released(tmp_path):
    log = AckLog(tmp_path)
    log._log._segment_bytes = 1  # a new segment for every append
    first = log.append("p", b"a").result(5)
    second = log.append("p", b"b").result(5)
    third = log.append("p", b"c").result(5)
    assert first < second < third
    log.release(second)
    log.release(third)
    assert first in _segments(log) and second in _segments(log)  # behind the unreleased first
    log.release(first)
    assert _segments(log) == [third]  # the segment still being appended to

    log.close()


def test_concurrent_appends_share_fsyncs_and_all_come_back(tmp_path, monkeypatch):
    log = AckLog(tmp_path)
    calls = []
    real = log._log.append

    def counting(payloads):
        calls.append(len(payloads))
        return real(payloads)

    monkeypatch.setattr(log._log, "append", counting)
    futures = []
    lock = threading.Lock()

    def client(i: int) -> None:
        for j in range(50):
            future = log.append(f"p{i}", f"{i}-{j}".encode())
            with lock:
                futures.append(future)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for future in futures:
        future.result(5)
    assert sum(calls) == 200
    log.close()
    assert sorted(left_in(tmp_path)) == sorted((f"p{i}", f"{i}-{j}".encode()) for i in range(4) for j in range(50))


def test_a_failed_append_fails_its_futures_and_the_log_goes_on(tmp_path, monkeypatch):
    log = AckLog(tmp_path)
    real = log._log.append

    def full(payloads):
        raise OSError("disk full")

    monkeypatch.setattr(log._log, "append", full)
    with pytest.raises(OSError, match="disk full"):
        log.append("p", b"lost").result(5)
    monkeypatch.setattr(log._log, "append", real)
    log.append("p", b"kept").result(5)
    log.close()
    assert left_in(tmp_path) == [("p", b"kept")]


def quarantined_exports(directory) -> list[tuple[str, bytes]]:
    """(project, body) of every export quarantined in ``directory``."""
    return [decode(entry.data.read_bytes()) for entry in Quarantine(directory).entries() if entry.kind == "export"]


def test_a_quarantined_export_keeps_its_body_and_reason(tmp_path):
    log = AckLog(tmp_path / "acklog")
    entry = log.quarantine("proj", b"\x0a\x00body", ValueError("boom"), spans=3)
    log.close()
    # An operator's to retry or drop, not the log's to delete; beside the log, in the data directory.
    assert quarantined_exports(tmp_path / "quarantine") == [("proj", b"\x0a\x00body")]
    (listed,) = Quarantine(tmp_path / "quarantine").entries()
    assert listed == entry and (listed.reason, listed.spans, listed.project) == ("ValueError: boom", 3, "proj")
    assert Quarantine(tmp_path / "quarantine").counts() == (1, 3)


def test_a_waiter_giving_up_does_not_stop_the_appends(tmp_path, monkeypatch):
    log = AckLog(tmp_path)
    gate = threading.Event()
    real = log._log.append

    def held(payloads):
        gate.wait(5)
        return real(payloads)

    monkeypatch.setattr(log._log, "append", held)
    first = log.append("p", b"first")
    first.cancel()  # what asyncio.wrap_future does to it when the export's client goes away
    gate.set()
    assert first.result(5) >= 1  # written all the same
    log.release(log.append("p", b"second").result(5))
    log.release(first.result())
    assert log.unreleased == 0
    log.close()
