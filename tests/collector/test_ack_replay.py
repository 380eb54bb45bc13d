import pytest

from tests.collector.test_ack_log import left_in, quarantined_exports
from tests.otlp_builders import make_request, make_span
from tests.storage.test_loader import FakeStore
from trajscope.collector import ack_replay
from trajscope.collector.ack_log import AckLog
from trajscope.storage.compaction import compact
from trajscope.storage.duckdb_store import DuckDBStore


def _left_behind(directory, bodies):
    """An acknowledgement log holding ``bodies``, never released: what a crash leaves."""
    log = AckLog(directory)
    for body in bodies:
        log.append("proj", body).result(5)
    log.close()  # unreleased records keep their segments


def test_what_an_ack_log_holds_is_loaded_in_loads_and_the_log_goes(tmp_path, monkeypatch):
    monkeypatch.setattr(ack_replay, "LOAD_ROWS", 4)
    spans = [make_span(f"left-{i}") for i in range(9)]
    bodies = [make_request(spans[i:i + 3]).SerializeToString() for i in range(0, 9, 3)]
    _left_behind(tmp_path / "acklog", [*bodies, b"\xff\xff not a request"])
    store = FakeStore()
    said = []
    assert ack_replay.load_acknowledged(tmp_path / "acklog", store, said.append) == 9
    assert store.span_ids == {s.span_id.hex() for s in spans}
    assert store.loads == [6, 3]  # 3 + 3 reach the load size; the last export alone at the end
    assert store.checkpoints == 1
    assert said and "4 acknowledged export(s)" in said[0]
    assert not list((tmp_path / "acklog").glob("seg-*.log"))
    assert quarantined_exports(tmp_path / "quarantine") == [("proj", b"\xff\xff not a request")]


def test_a_failing_write_keeps_the_log_for_the_next_start(tmp_path):
    body = make_request([make_span("kept")]).SerializeToString()
    _left_behind(tmp_path / "acklog", [body])
    with pytest.raises(OSError):
        ack_replay.load_acknowledged(tmp_path / "acklog", FakeStore(fail=1))
    assert left_in(tmp_path / "acklog") == [("proj", body)]


def test_a_failing_checkpoint_keeps_the_log_for_the_next_start(tmp_path):
    """Loaded but not in a checkpointed file: the records are still only safe in the log."""
    body = make_request([make_span("kept")]).SerializeToString()
    _left_behind(tmp_path / "acklog", [body])
    store = FakeStore()

    def fail() -> None:
        raise OSError("disk full")

    store.checkpoint = fail
    with pytest.raises(OSError):
        ack_replay.load_acknowledged(tmp_path / "acklog", store)
    assert len(store.span_ids) == 1
    assert left_in(tmp_path / "acklog") == [("proj", body)]


def test_an_empty_or_missing_log_loads_nothing(tmp_path):
    assert ack_replay.load_acknowledged(tmp_path / "nothing", FakeStore()) == 0
    assert not (tmp_path / "nothing").exists()


def test_compaction_folds_in_what_the_ack_log_holds(tmp_path):
    data = tmp_path / "d"
    DuckDBStore(data).close()
    spans = [make_span(f"crash-{i}") for i in range(5)]
    _left_behind(data / "acklog", [make_request(spans).SerializeToString()])
    result = compact(data, lambda store: ack_replay.load_acknowledged(data / "acklog", store))
    assert result.spans == 5
    store = DuckDBStore(data)
    stored = set(store.query("SELECT span_id FROM spans").column("span_id").to_pylist())
    assert stored == {s.span_id.hex() for s in spans}
    store.close()
    assert not list((data / "acklog").glob("seg-*.log"))
