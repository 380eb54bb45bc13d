"""The web UI on big runs, in Debian's chromium: time until a run page shows its waterfall (first open,
and opened again), and how long a jump to the last step takes (rows are virtualised), for runs of 5,000
and 50,000 spans.

    .venv/bin/python bench/ui_render.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from common import OUT, ServerProcess, env_note, median
from trajectory_stats import big_trace


def main() -> None:
    from playwright.sync_api import sync_playwright

    server = ServerProcess(OUT / "ui-render")
    traces = {}
    for n in (5_000, 50_000):
        body = big_trace(n)
        httpx.post(f"http://127.0.0.1:{server.http_port}/v1/traces", content=body, timeout=300,
                   headers={"Content-Type": "application/x-protobuf"}).raise_for_status()
        request = ExportTraceServiceRequest.FromString(body)
        traces[n] = request.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
    print(f"trajscope web UI on big runs — {env_note()}; chromium via Playwright, 3 opens each")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            for n, trace_id in traces.items():
                opens, jumps = [], []
                for _ in range(3):
                    page.goto("about:blank")
                    started = time.perf_counter()
                    page.goto(f"{server.url('')}/#/run/{trace_id}")
                    page.wait_for_selector("#waterfall .wf-row")
                    opens.append(time.perf_counter() - started)
                    rows = page.locator("#waterfall .wf-row").count()
                    started = time.perf_counter()
                    page.locator("#waterfall").evaluate("w => { w.scrollTop = w.scrollHeight; }")
                    page.wait_for_selector(f"#waterfall .wf-row[data-index='{n - 1}']")
                    jumps.append(time.perf_counter() - started)
                # The first open builds the answers; later ones get them from the server's answer cache.
                print(f"  {n:,} spans: page with waterfall in {opens[0] * 1000:,.0f} ms the first time "
                      f"(trajectory + latency built and drawn), {median(opens[1:]) * 1000:,.0f} ms when "
                      f"opened again; {rows} rows in the DOM; jump to the last step "
                      f"{median(jumps) * 1000:,.0f} ms", flush=True)
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
