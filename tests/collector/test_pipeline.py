import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.otlp_builders import make_request, make_span
from tests.storage.test_staged_writer import FakeStore
from trajscope.collector.pipeline import IngestPipeline, InvalidRequest, Overloaded, Unavailable
from trajscope.storage.staged_writer import StagedWriter, read_ipc


def _run(coro):
    return asyncio.run(coro)


def test_pipeline_refuses_when_the_backlog_is_full(tmp_path):
    writer = StagedWriter(FakeStore(), tmp_path)
    pipeline = IngestPipeline(writer, ThreadPoolExecutor(1), max_pending_spans=0)
    with pytest.raises(Overloaded, match="backlog full"):
        _run(pipeline.export(make_request([make_span()]).SerializeToString(), "protobuf", "p"))
    assert pipeline.stats.overloaded == 1
    writer.close()


def test_pipeline_storage_failure_is_retryable_unavailable(tmp_path, monkeypatch):
    def broken(payloads):
        raise OSError("disk full")

    writer = StagedWriter(FakeStore(), tmp_path)
    monkeypatch.setattr(writer._log, "append", broken)
    pipeline = IngestPipeline(writer, ThreadPoolExecutor(1))
    with pytest.raises(Unavailable, match="disk full"):
        _run(pipeline.export(make_request([make_span()]).SerializeToString(), "protobuf", "p"))
    assert pipeline.stats.failed == 1
    writer.close()


def test_pipeline_counts_partial_success_and_invalid_requests(tmp_path):
    writer = StagedWriter(FakeStore(), tmp_path)
    pipeline = IngestPipeline(writer, ThreadPoolExecutor(1))
    outcome = _run(pipeline.export(
        make_request([make_span(), make_span(span_id=bytes(8))]).SerializeToString(), "protobuf", "p"))
    assert (outcome.accepted, outcome.rejected) == (1, 1)
    with pytest.raises(InvalidRequest):
        _run(pipeline.export(b"\xff\xff", "protobuf", "p"))
    assert (pipeline.stats.spans_accepted, pipeline.stats.spans_rejected, pipeline.stats.invalid_requests) == (
        1, 1, 1)
    writer.close()


def test_pipeline_after_shutdown_is_unavailable(tmp_path):
    writer = StagedWriter(FakeStore(), tmp_path)
    writer.close()
    pipeline = IngestPipeline(writer, ThreadPoolExecutor(1))
    with pytest.raises(Unavailable, match="shutting down"):
        _run(pipeline.export(make_request([make_span()]).SerializeToString(), "protobuf", "p"))


def test_pipeline_stages_the_decoded_spans_as_one_arrow_stream(tmp_path, monkeypatch):
    writer = StagedWriter(FakeStore(), tmp_path)
    submitted = []
    real_submit = writer.submit

    def spy(payload, accepted):
        submitted.append((read_ipc(payload), accepted))
        return real_submit(payload, accepted)

    monkeypatch.setattr(writer, "submit", spy)
    pipeline = IngestPipeline(writer, ThreadPoolExecutor(1))
    root = make_span("root")
    child = make_span("child", trace_id=root.trace_id, parent=root)
    _run(pipeline.export(make_request([root, child]).SerializeToString(), "protobuf", "p"))
    ((table, accepted),) = submitted
    assert accepted == 2 and table.column("name").to_pylist() == ["root", "child"]
    assert set(table.column("trace_id").to_pylist()) == {root.trace_id.hex()}
    writer.close()


def _concurrently(pipeline, bodies, project="p"):
    async def all_of():
        return await asyncio.gather(*(pipeline.export(b, "protobuf", project) for b in bodies),
                                    return_exceptions=True)
    return _run(all_of())


def test_exports_queued_behind_a_busy_worker_are_decoded_and_staged_together(tmp_path, monkeypatch):
    store = FakeStore()
    writer = StagedWriter(store, tmp_path, linger_s=0.01)
    staged = []
    real_submit = writer.submit
    monkeypatch.setattr(writer, "submit", lambda payload, accepted: (
        staged.append(accepted), real_submit(payload, accepted))[1])
    pipeline = IngestPipeline(writer, ThreadPoolExecutor(1), decode_slots=1)
    requests = [[make_span(f"r{i}-{j}") for j in range(i + 1)] for i in range(5)]
    outcomes = _concurrently(pipeline, [make_request(spans).SerializeToString() for spans in requests])
    # The first export took the only slot; the four that queued behind it were one job and one staged batch.
    assert [o.accepted for o in outcomes] == [1, 2, 3, 4, 5]
    assert staged == [1, 2 + 3 + 4 + 5]
    assert pipeline.stats.groups == 1 and pipeline.stats.spans_accepted == 15
    assert writer.sync(timeout=5)
    assert store.span_ids == {s.span_id.hex() for spans in requests for s in spans}
    writer.close()


@pytest.mark.parametrize("bad", ["truncated", "rejected span"])
def test_a_bad_export_in_a_group_is_answered_alone_and_the_others_are_stored(tmp_path, bad):
    store = FakeStore()
    writer = StagedWriter(store, tmp_path, linger_s=0.01)
    pipeline = IngestPipeline(writer, ThreadPoolExecutor(1), decode_slots=1)
    good = [make_span(f"g{i}") for i in range(3)]
    if bad == "truncated":
        # Malformed on its own, and glued to the next body it would swallow that body's bytes.
        odd = make_request([make_span("cut")]).SerializeToString()[:-7]
    else:
        odd = make_request([make_span("ok"), make_span("bad id", span_id=bytes(8))]).SerializeToString()
    bodies = [make_request([good[0]]).SerializeToString(), make_request([good[1]]).SerializeToString(), odd,
              make_request([good[2]]).SerializeToString()]
    first, second, answer, third = _concurrently(pipeline, bodies)
    if bad == "truncated":
        assert isinstance(answer, InvalidRequest)
    else:
        assert (answer.accepted, answer.rejected) == (1, 1) and "span_id" in answer.error_message
    assert [o.accepted for o in (first, second, third)] == [1, 1, 1]
    assert pipeline.stats.groups == 0  # the group fell back to one job per export
    assert writer.sync(timeout=5)
    assert {s.span_id.hex() for s in good} <= store.span_ids
    assert len(store.span_ids) == (3 if bad == "truncated" else 4)
    writer.close()
