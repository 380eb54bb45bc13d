import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.collector.test_ack_log import left_in, quarantined_exports
from tests.fault_logs import FullLog, SlowLog
from tests.otlp_builders import make_request, make_span
from tests.storage.test_loader import FakeStore
from trajscope.collector import pipeline as pipeline_module
from trajscope.collector.ack_log import AckLog
from trajscope.collector.decode_batches import decode_group
from trajscope.collector.pipeline import IngestPipeline, InvalidRequest, Overloaded, Unavailable
from trajscope.collector.validate import validate_request
from trajscope.storage.loader import Loader, read_ipc


def _run(coro):
    return asyncio.run(coro)


def test_pipeline_refuses_when_the_backlog_is_full(tmp_path):
    writer = Loader(FakeStore(), tmp_path)
    pipeline = IngestPipeline(writer, ThreadPoolExecutor(1), max_pending_spans=0, admission_wait_s=0.1)
    with pytest.raises(Overloaded, match="backlog full"):
        _run(pipeline.export(make_request([make_span()]).SerializeToString(), "protobuf", "p"))
    assert pipeline.stats.overloaded == 1
    writer.close()


def test_pipeline_storage_failure_is_retryable_unavailable(tmp_path):
    writer = Loader(FakeStore(), tmp_path, log=FullLog(tmp_path))
    pipeline = IngestPipeline(writer, ThreadPoolExecutor(1))
    with pytest.raises(Unavailable, match="No space left"):
        _run(pipeline.export(make_request([make_span()]).SerializeToString(), "protobuf", "p"))
    assert pipeline.stats.failed == 1
    writer.close()


def test_pipeline_counts_partial_success_and_invalid_requests(tmp_path):
    writer = Loader(FakeStore(), tmp_path)
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
    writer = Loader(FakeStore(), tmp_path)
    writer.close()
    pipeline = IngestPipeline(writer, ThreadPoolExecutor(1))
    with pytest.raises(Unavailable, match="shutting down"):
        _run(pipeline.export(make_request([make_span()]).SerializeToString(), "protobuf", "p"))


def test_pipeline_stages_the_decoded_spans_as_one_arrow_stream(tmp_path, monkeypatch):
    writer = Loader(FakeStore(), tmp_path)
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
    writer = Loader(store, tmp_path, linger_s=0.01)
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
    writer = Loader(store, tmp_path, linger_s=0.01)
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


def test_a_client_going_away_while_its_export_is_staged_leaves_the_next_ones_acknowledged(tmp_path, monkeypatch):
    store = FakeStore()
    slow = SlowLog(tmp_path)
    writer = Loader(store, tmp_path, linger_s=0.01, log=slow)
    pipeline = IngestPipeline(writer, ThreadPoolExecutor(1))  # decode first, acknowledged on the staging log
    gone, kept = make_span("gone"), make_span("kept")

    async def scenario():
        export = asyncio.ensure_future(pipeline.export(make_request([gone]).SerializeToString(), "protobuf", "p"))
        assert await asyncio.to_thread(slow.appending.wait, 5)  # decoded; its staging-log write under way
        export.cancel()
        with pytest.raises(asyncio.CancelledError):
            await export
        outcome = await asyncio.wait_for(
            pipeline.export(make_request([kept]).SerializeToString(), "protobuf", "p"), 5)
        assert outcome.accepted == 1

    _run(scenario())
    assert writer.sync(5)
    assert store.span_ids == {gone.span_id.hex(), kept.span_id.hex()}
    writer.close()


# -- acknowledged on the ack log, decoded behind ---------------------------------------------------------
class _HeldDecode:
    """The pipeline's decode, held at a gate (and failing for bodies in ``fail``)."""

    def __init__(self, monkeypatch) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()  # a decode has begun (and waits at the gate)
        self.fail: set[bytes] = set()
        real = pipeline_module._decode

        def held(body, encoding, project):
            self.started.set()
            self.gate.wait(10)
            if any(bad in body for bad in self.fail):  # alone or within a group
                raise RuntimeError("decoder bug")
            return real(body, encoding, project)

        monkeypatch.setattr(pipeline_module, "_decode", held)


def _ack_first(tmp_path, store, record_log=None, **options):
    """A pipeline acknowledging on an ack log (``record_log``: the log it writes to, e.g. a slow one)."""
    writer = Loader(store, tmp_path / "staging", linger_s=0.01)
    ack_log = AckLog(tmp_path / "acklog", log=record_log)
    options.setdefault("decode_slots", 2)
    pipeline = IngestPipeline(writer, ThreadPoolExecutor(2), ack_log=ack_log, **options)
    return pipeline, writer, ack_log


def test_an_export_is_acknowledged_before_it_is_decoded_and_reads_wait_for_it(tmp_path, monkeypatch):
    held = _HeldDecode(monkeypatch)
    store = FakeStore()
    pipeline, writer, ack_log = _ack_first(tmp_path, store)
    spans = [make_span("a"), make_span("bad", span_id=bytes(8)), make_span("b")]

    async def scenario():
        outcome = await pipeline.export(make_request(spans).SerializeToString(), "protobuf", "p")
        # Answered with the decode's verdict while the decode itself is still held.
        assert (outcome.accepted, outcome.rejected) == (2, 1) and "span_id is all zeros" in outcome.error_message
        assert ack_log.unreleased == 1 and pipeline.stats.decoding == 1
        assert not pipeline.caught_up()
        assert not await asyncio.to_thread(pipeline.sync, 0.2)  # a read waits for it
        held.gate.set()
        assert await asyncio.to_thread(pipeline.sync, 5)
        assert pipeline.caught_up()
        # Readable once loaded; the record leaves the log only once a checkpoint has put it in the file.
        await asyncio.to_thread(_wait_for_value, lambda: ack_log.unreleased, 0)
        assert store.checkpoints >= 1

    _run(scenario())
    assert store.span_ids == {spans[0].span_id.hex(), spans[2].span_id.hex()}
    assert (pipeline.stats.spans_accepted, pipeline.stats.spans_rejected) == (2, 1)
    writer.close()
    ack_log.close()
    assert not list((tmp_path / "acklog").glob("seg-*.log"))


def test_a_full_decode_backlog_holds_the_next_acknowledgement(tmp_path, monkeypatch):
    held = _HeldDecode(monkeypatch)
    pipeline, writer, ack_log = _ack_first(tmp_path, FakeStore(), decode_backlog=1)

    async def scenario():
        await pipeline.export(make_request([make_span("first")]).SerializeToString(), "protobuf", "p")
        second = asyncio.ensure_future(
            pipeline.export(make_request([make_span("second")]).SerializeToString(), "protobuf", "p"))
        await asyncio.sleep(0.3)
        assert not second.done()  # waiting for room in the backlog, not yet in the log
        assert ack_log.unreleased == 1
        held.gate.set()
        assert (await asyncio.wait_for(second, 5)).accepted == 1
        await pipeline.drain()

    _run(scenario())
    assert writer.sync(5)
    writer.close()
    ack_log.close()


def test_the_backlog_is_counted_in_spans_and_a_big_export_gets_in_alone(tmp_path, monkeypatch):
    held = _HeldDecode(monkeypatch)
    pipeline, writer, ack_log = _ack_first(tmp_path, FakeStore(), decode_backlog=4)

    async def scenario():
        small = [make_span(f"small-{i}") for i in range(2)]
        await asyncio.wait_for(pipeline.export(make_request(small).SerializeToString(), "protobuf", "p"), 5)
        big = asyncio.ensure_future(pipeline.export(
            make_request([make_span(f"big-{i}") for i in range(6)]).SerializeToString(), "protobuf", "p"))
        more = asyncio.ensure_future(pipeline.export(
            make_request([make_span("one"), make_span("two")]).SerializeToString(), "protobuf", "p"))
        await asyncio.sleep(0.3)
        # 2 + 2 spans fit the budget of 4; the 6-span export waits until the backlog is empty.
        assert more.done() and not big.done()
        held.gate.set()
        assert (await asyncio.wait_for(big, 5)).accepted == 6
        await pipeline.drain()

    _run(scenario())
    assert writer.sync(5)
    writer.close()
    ack_log.close()


def test_an_export_whose_client_gives_up_during_the_append_is_still_decoded(tmp_path, monkeypatch):
    _HeldDecode(monkeypatch).gate.set()
    store = FakeStore()
    slow = SlowLog(tmp_path / "acklog", 0.3)
    pipeline, writer, ack_log = _ack_first(tmp_path, store, record_log=slow)
    span = make_span("orphaned")

    async def scenario():
        export = asyncio.ensure_future(pipeline.export(make_request([span]).SerializeToString(), "protobuf", "p"))
        assert await asyncio.to_thread(slow.appending.wait, 5)  # the record being written
        export.cancel()  # the client went away while the record was being written
        with pytest.raises(asyncio.CancelledError):
            await export
        await pipeline.drain()

    _run(scenario())
    # Durable all the same: decoded, loaded and released, not left to grow the log until the next start.
    assert pipeline.stats.decoding == 0
    assert writer.sync(5)
    _wait_for_value(lambda: ack_log.unreleased, 0)  # once checkpointed
    assert store.span_ids == {span.span_id.hex()}
    writer.close()
    ack_log.close()


async def _cut_short(pipeline, writer, held) -> None:
    assert await asyncio.to_thread(held.started.wait, 5)  # the decode under way
    for task in list(pipeline._behind):  # what asyncio.run does to tasks left when the server stops hard
        task.cancel()
    await asyncio.gather(*pipeline._behind, return_exceptions=True)


async def _writer_closing(pipeline, writer, held) -> None:
    writer.close()
    held.gate.set()
    await pipeline.drain()


@pytest.mark.parametrize("interruption", [_cut_short, _writer_closing])
def test_an_export_whose_decode_is_interrupted_stays_for_the_next_start(tmp_path, monkeypatch, interruption):
    held = _HeldDecode(monkeypatch)
    pipeline, writer, ack_log = _ack_first(tmp_path, FakeStore())
    body = make_request([make_span("interrupted")]).SerializeToString()

    async def scenario():
        await pipeline.export(body, "protobuf", "p")
        await interruption(pipeline, writer, held)

    _run(scenario())
    held.gate.set()
    assert pipeline.stats.failed_after_ack == 0 and ack_log.unreleased == 1
    ack_log.close()
    assert left_in(tmp_path / "acklog") == [("p", body)]
    writer.close()


@pytest.mark.parametrize("grouped", [False, True])
def test_an_acknowledged_export_leaves_the_ack_log_once_loaded_and_is_never_staged_twice(tmp_path, monkeypatch,
                                                                                        grouped):
    held = _HeldDecode(monkeypatch)
    load_gate = threading.Event()
    store = FakeStore(load_gate)
    # One decode slot when grouped: the first export holds it; the others queue and are decoded as a group.
    pipeline, writer, ack_log = _ack_first(tmp_path, store, decode_slots=1 if grouped else 2)
    if not grouped:
        held.gate.set()
    spans = [make_span(f"s{i}") for i in range(4)]

    async def scenario():
        for span in spans:
            await pipeline.export(make_request([span]).SerializeToString(), "protobuf", "p")
            if not grouped:
                await pipeline.drain()
        held.gate.set()
        await pipeline.drain()

    _run(scenario())
    # Decoded and handed to the loader, which is held: the ack log alone keeps them durable.
    assert pipeline.stats.decoding == 0 and ack_log.unreleased == 4
    assert pipeline.stats.groups == (1 if grouped else 0)
    assert not [p for p in (tmp_path / "staging").glob("seg-*.log") if p.stat().st_size]
    load_gate.set()
    assert writer.sync(5)
    assert store.span_ids == {s.span_id.hex() for s in spans}
    _wait_for_value(lambda: ack_log.unreleased, 0)
    writer.close()
    ack_log.close()
    assert not list((tmp_path / "acklog").glob("seg-*.log"))


def _wait_for_value(read, expected, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while read() != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    assert read() == expected


def test_refused_bodies_and_fully_rejected_exports_are_not_logged(tmp_path, monkeypatch):
    _HeldDecode(monkeypatch).gate.set()
    pipeline, writer, ack_log = _ack_first(tmp_path, FakeStore())

    async def scenario():
        with pytest.raises(InvalidRequest):
            await pipeline.export(b"\xff\xff", "protobuf", "p")
        outcome = await pipeline.export(make_request([make_span(span_id=bytes(8))]).SerializeToString(),
                                        "protobuf", "p")
        assert (outcome.accepted, outcome.rejected) == (0, 1)

    _run(scenario())
    assert pipeline.stats.invalid_requests == 1 and pipeline.stats.decoding == 0
    ack_log.close()
    assert left_in(tmp_path / "acklog") == []
    writer.close()


def test_a_decode_failing_after_the_acknowledgement_is_quarantined_not_dropped(tmp_path, monkeypatch):
    held = _HeldDecode(monkeypatch)
    store = FakeStore()
    pipeline, writer, ack_log = _ack_first(tmp_path, store)
    bad = make_request([make_span("cursed")]).SerializeToString()
    good = make_request([make_span("fine")]).SerializeToString()
    held.fail.add(bad)
    held.gate.set()

    async def scenario():
        assert (await pipeline.export(bad, "protobuf", "p")).accepted == 1
        assert (await pipeline.export(good, "protobuf", "p")).accepted == 1
        assert await asyncio.to_thread(pipeline.sync, 5)  # the failure does not hold reads forever

    _run(scenario())
    assert pipeline.stats.failed_after_ack == 1
    _wait_for_value(lambda: ack_log.unreleased, 0)  # the quarantined one at once, the good one once checkpointed
    assert quarantined_exports(tmp_path / "quarantine") == [("p", bad)]
    assert len(store.span_ids) == 1
    writer.close()
    ack_log.close()


def test_what_an_earlier_run_acknowledged_is_decoded_at_the_next_start(tmp_path, monkeypatch):
    earlier = AckLog(tmp_path / "acklog")
    spans = [make_span(f"left-{i}") for i in range(3)]
    for span in spans:
        earlier.append("proj", make_request([span]).SerializeToString()).result(5)
    earlier.close()  # a crash before any was decoded
    _HeldDecode(monkeypatch).gate.set()
    store = FakeStore()
    pipeline, writer, ack_log = _ack_first(tmp_path, store)
    messages = []
    assert _run(pipeline.reload_earlier_run(ack_log, messages.append)) == 3
    assert messages and "3 acknowledged export(s)" in messages[-1]
    assert writer.sync(5)
    assert store.span_ids == {s.span_id.hex() for s in spans}
    assert not [p for p in (tmp_path / "acklog").glob("seg-*.log") if p.stat().st_size]
    writer.close()
    ack_log.close()
    assert left_in(tmp_path / "acklog") == []


def test_an_earlier_run_is_reloaded_in_groups_and_a_failing_export_quarantined(tmp_path, monkeypatch):
    earlier = AckLog(tmp_path / "acklog")
    spans = [make_span(f"left-{i}") for i in range(2 * pipeline_module.RELOAD_CHUNK + 5)]
    bodies = [make_request([span]).SerializeToString() for span in spans]
    for body in bodies:
        earlier.append("proj", body).result(5)
    earlier.close()
    held = _HeldDecode(monkeypatch)
    held.fail.add(bodies[7])
    held.gate.set()
    store = FakeStore()
    pipeline, writer, ack_log = _ack_first(tmp_path, store)
    assert _run(pipeline.reload_earlier_run(ack_log)) == len(bodies)
    assert pipeline.stats.groups >= 2  # one per chunk, but not the one holding the failing export
    assert pipeline.stats.failed_after_ack == 1
    assert quarantined_exports(tmp_path / "quarantine") == [("proj", bodies[7])]
    assert writer.sync(5)
    assert store.span_ids == {s.span_id.hex() for i, s in enumerate(spans) if i != 7}
    writer.close()
    ack_log.close()
    assert left_in(tmp_path / "acklog") == []


@pytest.mark.parametrize("with_rejected", [False, True])
def test_a_group_of_validated_exports_decodes_as_one_parsed_here(with_rejected):
    bodies = [make_request([make_span(f"e{i}-{j}") for j in range(i + 1)]).SerializeToString() for i in range(3)]
    if with_rejected:
        bodies.append(make_request([make_span("ok"), make_span("bad", span_id=bytes(8))]).SerializeToString())
    counts = [validate_request(b).accepted for b in bodies]
    given, parsed = (decode_group(pipeline_module._decode, bodies, "p", c) for c in (counts, None))
    if with_rejected:  # decoded one by one instead, either way
        assert given is None and parsed is None
    else:
        assert given.span_counts == parsed.span_counts == [1, 2, 3]
        assert read_ipc(given.decoded.payload).column("name").to_pylist() == (
            read_ipc(parsed.decoded.payload).column("name").to_pylist())


def test_an_export_finding_no_room_in_the_decode_backlog_is_refused_in_time_and_reserves_nothing(
        tmp_path, monkeypatch):
    held = _HeldDecode(monkeypatch)
    store = FakeStore()
    pipeline, writer, ack_log = _ack_first(tmp_path, store, decode_backlog=2, admission_wait_s=0.2)
    first = make_request([make_span("a"), make_span("b")]).SerializeToString()
    second = make_request([make_span("c")]).SerializeToString()

    async def scenario():
        assert (await pipeline.export(first, "protobuf", "p")).accepted == 2  # fills the backlog, decode held
        started = time.monotonic()
        with pytest.raises(Overloaded, match="decode backlog full") as refused:
            await pipeline.export(second, "protobuf", "p")
        assert refused.value.retry_after_s >= 1
        assert time.monotonic() - started < 5  # answered, not queued until the backlog drains
        assert pipeline.stats.overloaded == 1 and ack_log.unreleased == 1  # the refused export was not logged
        held.gate.set()
        await pipeline.drain()
        assert pipeline._backlog_spans == 0  # the refusal reserved nothing
        assert (await pipeline.export(second, "protobuf", "p")).accepted == 1  # room again
        await pipeline.drain()

    _run(scenario())
    assert writer.sync(5)
    assert len(store.span_ids) == 3
    writer.close()
    ack_log.close()
