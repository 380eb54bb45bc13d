import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.otlp_builders import make_request, make_span
from tests.storage.test_staged_writer import FakeStore
from trajscope.collector.pipeline import IngestPipeline, InvalidRequest, Overloaded, Unavailable
from trajscope.storage.staged_writer import StagedWriter


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


def test_pipeline_hands_the_workers_trace_summaries_to_the_writer(tmp_path, monkeypatch):
    writer = StagedWriter(FakeStore(), tmp_path)
    submitted = []
    real_submit = writer.submit

    def spy(payload, accepted, summaries=None):
        submitted.append(summaries)
        return real_submit(payload, accepted, summaries)

    monkeypatch.setattr(writer, "submit", spy)
    pipeline = IngestPipeline(writer, ThreadPoolExecutor(1))
    root = make_span("root")
    child = make_span("child", trace_id=root.trace_id, parent=root)
    _run(pipeline.export(make_request([root, child]).SerializeToString(), "protobuf", "p"))
    (summaries,) = submitted
    assert summaries.to_pylist()[0]["trace_id"] == root.trace_id.hex()
    assert summaries.to_pylist()[0]["span_count"] == 2
    writer.close()
