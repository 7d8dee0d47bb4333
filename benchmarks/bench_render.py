"""Layout and restyle times of the computation-graph view.

    python benchmarks/bench_render.py [--repeat 5]

Prints a Markdown table: the time of one layout (``GraphView(...)``: DOT source, one
``dot -Tsvg`` run, indexing the SVG) for graphs of 10, 100 and 1,000 value nodes, and of a
5,000-node graph cut to the default ``max_nodes``, with the system ``dot`` and with
``graphviz-pure`` (each when available), and the time of one
restyle step (``GraphView.svg(highlight=..., changed=..., grads=...)``, as the backward
stepper does per slider move). Medians of ``--repeat`` runs. Targets: a 100-node graph
lays out in < 0.1 s; a 1,000-node restyle takes < 20 ms.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time

import _common

from ad_magic.drawing import DEFAULT_MAX_NODES, GraphView
from ad_magic.drawing.render import _graphviz_pure_executable
from ad_magic.engine import Tensor


def mlp_graph(n_values: int, seed: int = 0) -> Tensor:
    return _common.mlp_graph(n_values, seed, backward=True)


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fmt_seconds(seconds) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    renderers = {}
    if shutil.which("dot"):
        renderers["system dot"] = shutil.which("dot")
    if _graphviz_pure_executable():
        renderers["graphviz-pure"] = _graphviz_pure_executable()
    if not renderers:
        raise SystemExit("no renderer: pip install graphviz-pure or install Graphviz")

    # (value nodes in the graph, max_nodes): all drawn, then a big graph cut to the default
    cases = [(10, 20), (100, 200), (1000, 2000), (5000, DEFAULT_MAX_NODES)]
    graphs = {n: mlp_graph(n) for n, _ in cases}
    rows = []
    forced = os.environ.get("AD_MAGIC_DOT")
    try:
        for label, exe in renderers.items():
            os.environ["AD_MAGIC_DOT"] = exe
            cells = []
            for n, limit in cases:
                GraphView(graphs[n], max_nodes=limit)  # warm the OS cache for the executable
                cells.append(fmt_seconds(median_time(lambda: GraphView(graphs[n], max_nodes=limit), args.repeat)))
            rows.append((f"layout (one dot run), {label}", cells))
    finally:
        if forced is None:
            os.environ.pop("AD_MAGIC_DOT", None)
        else:
            os.environ["AD_MAGIC_DOT"] = forced

    restyle, headers = [], []
    for n, limit in cases:
        view = GraphView(graphs[n], max_nodes=limit)
        total = len(view.nodes) + view.truncated
        headers.append(f"{total} value nodes" + (f", {len(view.nodes)} drawn" if view.truncated else ""))
        grads = [t.grad for t in view.nodes]
        count = len(grads)
        # backward-stepper states: after k steps the last k nodes have grads, the rest are blank
        states = [(k, [g if i >= count - k else None for i, g in enumerate(grads)]) for k in range(count)]
        position = {"k": 0}

        def step():  # one slider move: highlight the node that runs, mark its grad
            k, shown = states[position["k"] % count]
            position["k"] += 1
            view.svg(grads=shown, highlight=count - 1 - k, changed=(count - 1 - k,), caption=f"step {k}")
        restyle.append(fmt_seconds(median_time(step, max(args.repeat, 15))))
    rows.append(("restyle step (GraphView.svg)", restyle))

    print("| scalar-MLP loss graph | " + " | ".join(headers) + " |")
    print("|---|" + "---|" * len(cases))
    for label, cells in rows:
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
