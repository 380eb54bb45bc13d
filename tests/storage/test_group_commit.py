import threading
import time

import pyarrow as pa
import pytest

from trajscope.storage.group_commit import GroupCommitWriter, WriterClosed


def _t(n):
    return pa.table({"x": list(range(n))})


def test_group_commit_batches_concurrent_submissions_into_fewer_writes():
    calls = []
    gate = threading.Event()

    def write(table):
        gate.wait(5)
        calls.append(table.num_rows)
        return table.num_rows

    writer = GroupCommitWriter(write)
    futures = [writer.submit(_t(10))]
    time.sleep(0.05)  # the first commit is now blocked; the next ones queue behind it
    futures += [writer.submit(_t(10)) for _ in range(5)]
    assert writer.pending_rows == 60
    gate.set()
    assert [f.result(5) for f in futures] == [10] * 6
    assert calls == [10, 50]
    assert writer.pending_rows == 0
    writer.close()


def test_group_commit_failure_reaches_every_waiting_request():
    def write(table):
        raise OSError("disk full")

    writer = GroupCommitWriter(write)
    futures = [writer.submit(_t(1)) for _ in range(3)]
    for f in futures:
        with pytest.raises(OSError, match="disk full"):
            f.result(5)
    assert writer.stats.failures >= 1
    writer.close()


def test_group_commit_close_flushes_then_refuses():
    written = []
    writer = GroupCommitWriter(lambda t: written.append(t.num_rows) or t.num_rows)
    futures = [writer.submit(_t(2)) for _ in range(4)]
    writer.close()
    assert all(f.done() for f in futures)
    assert sum(written) == 8
    with pytest.raises(WriterClosed):
        writer.submit(_t(1))
