import logging

import pytest

from trajscope.storage.staging_log import StagingLog


def test_records_come_back_in_order_after_reopening(tmp_path):
    log = StagingLog(tmp_path)
    log.append([b"one", b"two"])
    log.append([b""])
    log.close()
    reopened = StagingLog(tmp_path)
    assert [payload for _, payload in reopened.replay()] == [b"one", b"two", b""]
    # The reopened log writes a new segment: replay never reads the one being appended to.
    reopened.append([b"three"])
    assert [payload for _, payload in reopened.replay()] == [b"one", b"two", b""]


def test_a_torn_tail_is_cut_off_and_reported(tmp_path, caplog):
    log = StagingLog(tmp_path)
    log.append([b"kept"])
    log.close()
    segment = next(tmp_path.glob("seg-*.log"))
    with segment.open("ab") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00")  # a header cut short by a crash
    with caplog.at_level(logging.WARNING):
        assert [p for _, p in StagingLog(tmp_path).replay()] == [b"kept"]
    assert "unfinished record" in caplog.text


def test_a_corrupt_record_ends_the_segment(tmp_path):
    log = StagingLog(tmp_path)
    log.append([b"good", b"flipped"])
    log.close()
    segment = next(tmp_path.glob("seg-*.log"))
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    assert [p for _, p in StagingLog(tmp_path).replay()] == [b"good"]


def test_segments_rotate_and_loaded_ones_are_deleted(tmp_path):
    log = StagingLog(tmp_path, segment_bytes=10)
    first = log.append([b"x" * 20])
    second = log.append([b"y"])
    assert second == first + 1
    log.discard_before(second)
    assert log.segments() == [second]
    # The segment being written is never deleted, whatever is asked.
    log.discard_before(second + 5)
    assert log.segments() == [second]


def _failing_after(monkeypatch, calls: int, error: OSError) -> None:
    """os.write fails from call ``calls`` on (counted from now), after writing half of what it was given."""
    import os

    real_write = os.write
    count = {"n": 0}

    def write(fd, data):
        count["n"] += 1
        if count["n"] >= calls:
            real_write(fd, bytes(data[:max(1, len(data) // 2)]))
            raise error
        return real_write(fd, data)

    monkeypatch.setattr("trajscope.storage.staging_log.os.write", write)


def test_a_failed_append_leaves_nothing_behind_and_later_records_replay(tmp_path, monkeypatch):
    log = StagingLog(tmp_path)
    log.append([b"before"])
    with monkeypatch.context() as m:
        _failing_after(m, 2, OSError(28, "No space left on device"))  # the payload of the 1st record fails
        with pytest.raises(OSError):
            log.append([b"lost-1", b"lost-2"])
    log.append([b"after"])
    log.close()
    assert [p for _, p in StagingLog(tmp_path).replay()] == [b"before", b"after"]


def test_a_failed_append_that_cannot_be_cut_continues_in_a_new_segment(tmp_path, monkeypatch):
    log = StagingLog(tmp_path)
    log.append([b"before"])
    first = log.segment

    def no_truncate(fd, length):
        raise OSError(5, "I/O error")

    with monkeypatch.context() as m:
        _failing_after(m, 1, OSError(28, "No space left on device"))
        m.setattr("trajscope.storage.staging_log.os.ftruncate", no_truncate)
        with pytest.raises(OSError):
            log.append([b"lost"])
    assert log.append([b"after"]) == first + 1
    log.close()
    assert [p for _, p in StagingLog(tmp_path).replay()] == [b"before", b"after"]


def _damaged(tmp_path, payloads: list[bytes], flip_at) -> StagingLog:
    log = StagingLog(tmp_path)
    log.append(payloads)
    log.close()
    segment = next(tmp_path.glob("seg-*.log"))
    data = bytearray(segment.read_bytes())
    data[flip_at(data)] ^= 0x5A
    segment.write_bytes(bytes(data))
    return StagingLog(tmp_path)


@pytest.mark.parametrize("where", ["payload", "length"])
def test_a_damaged_record_in_the_middle_is_skipped_and_the_records_after_it_are_read(tmp_path, caplog, where):
    """Acknowledged records after a bad block must not be lost with it: replay resynchronises."""
    records = [b"first record " * 20, b"damaged record " * 20, b"third record " * 20, b"fourth record " * 20]
    second = 8 + len(records[0])  # the second record's header
    flip = (lambda data: second + 8 + 5) if where == "payload" else (lambda data: second + 1)
    log = _damaged(tmp_path, records, flip)
    with caplog.at_level(logging.ERROR):
        got = [p for _, p in log.replay()]
    assert got == [records[0], *records[2:]]
    assert log.damaged_bytes == 8 + len(records[1])
    assert "damaged" in caplog.text and "skipped" in caplog.text
    (kept,) = tmp_path.glob("damaged-seg-*.log")
    assert len(kept.read_bytes()) == sum(8 + len(r) for r in records)
