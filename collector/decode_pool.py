"""The processes that decode OTLP requests, so decoding uses the other core while the server process
receives and its writer thread inserts."""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

from trajscope.collector import costing, otlp_decode, redaction
from trajscope.collector.allocator import keep_freed_memory
from trajscope.memory_budget import configure_allocators


def make_decoder(workers: int, prices: str | None = None, decoder: str = "columnar",
                 redact: str | None = None) -> Executor:
    """Decoding is pure Python and holds the GIL: worker processes let it use the other core while this
    process receives and the writer thread inserts. ``0`` decodes on a thread here instead (with the price
    table this process configured). ``prices`` is the user's price file, loaded in every worker process
    (spans are costed as they are decoded). ``decoder`` picks the protobuf decoder (``otlp_decode``)."""
    if workers <= 0:
        otlp_decode.use_decoder(decoder)
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="trajscope-decode")
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(os.getpid(), prices, decoder, redact))


def _init_worker(parent_pid: int, prices: str | None, decoder: str = "columnar", redact: str | None = None) -> None:
    faulthandler.enable()
    keep_freed_memory()
    configure_allocators()
    otlp_decode.use_decoder(decoder)
    costing.configure(prices)
    redaction.configure(redact)
    # A decode allocates many short-lived objects per span, freed by reference counting; the cyclic
    # collector's frequent young-generation passes found nothing to free and cost decode CPU
    # (docs/performance.md). Collect less often, and never re-scan what import left behind.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    _exit_with_parent(parent_pid)


def _exit_with_parent(parent_pid: int) -> None:
    """In a decode process: exit when the server is gone. A SIGKILLed server cannot stop its pool, and
    an orphaned worker would otherwise wait on its queue forever."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="trajscope-parent-watch", daemon=True).start()


def _warm(decode: Callable[..., object], args: tuple) -> None:
    decode(*args)
    # Long enough that each warm-up task lands on a different worker.
    time.sleep(0.2)


async def warm_up(decoder: Executor, workers: int, decode: Callable[..., object], *args: object) -> None:
    """Start every decode process now and run one real decode in each: spawning a process, importing
    trajscope and the first decode's lazy imports take ~0.3–1 s, which the first exports after start-up
    would otherwise wait for (they were the whole p99 of the half-load benchmark)."""
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(decoder, _warm, decode, args) for _ in range(max(1, workers))))
