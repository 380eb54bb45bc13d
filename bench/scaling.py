"""Scaling curves: ingest rate vs concurrent clients and vs batch size; trace lookup vs store size.
Prints the figures and writes bench/scaling.png.

    .venv/bin/python bench/scaling.py                   # clients 1,2,4,8; batches 128..2048; 1M/3M/10M
    .venv/bin/python bench/scaling.py --sizes 1000000   # quicker
    .venv/bin/python bench/scaling.py --clients --batches   # the query curve only; keeps the ingest curves
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import OUT, build_payloads, env_note, median, write_payloads
from ingest import one_run

HERE = Path(__file__).parent


def ingest_rate(clients: int, batch: int, spans: int) -> float:
    payloads = build_payloads(spans, batch)
    path = OUT / f"scaling-{batch}.bin"
    write_payloads(path, payloads)
    from trajscope.collector.otlp_decode import decode_request

    total = sum(decode_request(p).accepted for p in payloads)
    args = argparse.Namespace(protocol="grpc", clients=clients, server_args=[])
    return one_run(args, path, total, 0)["e2e_sps"]


def lookup_p50(size: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, str(HERE / "lookup.py"), "--spans", str(size), "--repeat", "40"],
                         capture_output=True, text=True, check=True).stdout
    lookup = next(line for line in out.splitlines() if line.startswith("get_trace"))
    listing = next(line for line in out.splitlines() if line.startswith("list_traces newest"))
    return float(lookup.split("p50 ")[1].split(" ms")[0]), float(listing.split("p50 ")[1].split(" ms")[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=100_000, help="spans per ingest run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("--batches", type=int, nargs="*", default=[128, 512, 2048])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 3_000_000, 10_000_000],
                        help="store sizes for the query curve")
    parser.add_argument("--plot-only", action="store_true", help="redraw scaling.png from scaling.json")
    args = parser.parse_args()
    if args.plot_only:
        saved = json.loads((HERE / "scaling.json").read_text())
        plot({int(k): v for k, v in saved["clients"].items()}, {int(k): v for k, v in saved["batches"].items()},
             {int(k): tuple(v) for k, v in saved["sizes"].items()})
        return
    OUT.mkdir(exist_ok=True)
    print(f"trajscope scaling — {env_note()}; end-to-end spans/s, medians of {args.runs} runs")
    # A curve asked for with no values (`--clients`, `--batches`, `--sizes` alone) keeps its saved figures.
    saved = json.loads((HERE / "scaling.json").read_text()) if (HERE / "scaling.json").exists() else {}
    by_clients = {} if args.clients else {int(k): v for k, v in saved.get("clients", {}).items()}
    for clients in args.clients:
        by_clients[clients] = median([ingest_rate(clients, 512, args.spans) for _ in range(args.runs)])
        print(f"  {clients} clients, 512-span batches: {by_clients[clients]:,.0f} spans/s", flush=True)
    by_batch = {} if args.batches else {int(k): v for k, v in saved.get("batches", {}).items()}
    for batch in args.batches:
        by_batch[batch] = median([ingest_rate(4, batch, args.spans) for _ in range(args.runs)])
        print(f"  4 clients, {batch}-span batches: {by_batch[batch]:,.0f} spans/s", flush=True)
    by_size = {} if args.sizes else {int(k): tuple(v) for k, v in saved.get("sizes", {}).items()}
    for size in args.sizes:
        by_size[size] = lookup_p50(size)
        print(f"  store of {size:,} spans: trace lookup p50 {by_size[size][0]:.1f} ms, "
              f"trace list p50 {by_size[size][1]:.1f} ms", flush=True)
    (HERE / "scaling.json").write_text(json.dumps({"clients": by_clients, "batches": by_batch, "sizes": by_size},
                                                  indent=1))
    plot(by_clients, by_batch, by_size)


def plot(by_clients: dict[int, float], by_batch: dict[int, float], by_size: dict[int, tuple[float, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].plot(list(by_clients), list(by_clients.values()), marker="o")
    axes[0].set(title="Ingest vs concurrent clients", xlabel="clients (512-span batches)", ylabel="spans/s")
    axes[1].plot(list(by_batch), list(by_batch.values()), marker="o")
    axes[1].set(title="Ingest vs batch size", xlabel="spans per request (4 clients)", ylabel="spans/s",
                xscale="log")
    axes[1].set_xticks(list(by_batch), labels=[str(b) for b in by_batch])
    axes[1].minorticks_off()
    sizes = [s / 1e6 for s in by_size]
    axes[2].plot(sizes, [v[0] for v in by_size.values()], marker="o", label="trace lookup p50")
    axes[2].plot(sizes, [v[1] for v in by_size.values()], marker="o", label="trace list p50")
    axes[2].set(title="Query latency vs store size", xlabel="million spans", ylabel="ms")
    axes[2].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(HERE / "scaling.png", dpi=110)
    print(f"wrote {HERE / 'scaling.png'}")


if __name__ == "__main__":
    main()
