"""Layout and restyle times of the computation-graph view.

    python benchmarks/bench_render.py [--repeat 5]

Prints a Markdown table: the time of one layout (``GraphView(...)``: DOT source, one
``dot -Tsvg`` run, indexing the SVG) for graphs of 10, 100 and 1,000 value nodes with the
system ``dot`` and with ``graphviz-pure`` (each when available), and the time of one
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

import numpy as np

from ad_magic.engine import Tensor, topological_order
from ad_magic.graph import GraphView
from ad_magic.render import _graphviz_pure_executable


def mlp_graph(n_values: int, seed: int = 0) -> Tensor:
    """The squared error of a scalar MLP (inputs -> tanh hidden layer -> one output),
    micrograd style, with the hidden layer widened until the graph has at least
    ``n_values`` value nodes (leaves, constants and intermediates). Backward has run."""
    rng = np.random.default_rng(seed)
    n_in = 1 if n_values < 50 else 3
    xs = [Tensor(float(v), name=f"x{i}", requires_grad=False) for i, v in enumerate(rng.normal(size=n_in))]
    width = 1
    while True:
        hidden = []
        for j in range(width):
            act = Tensor(0.0, name=f"b1_{j}")
            for i, x in enumerate(xs):
                act = act + Tensor(float(rng.normal()), name=f"w1_{j}_{i}") * x
            hidden.append(act.tanh())
        out = Tensor(0.0, name="b2")
        for j, a in enumerate(hidden):
            out = out + Tensor(float(rng.normal()), name=f"w2_{j}") * a
        loss = (out - 1.0) ** 2
        if len(topological_order(loss)) >= n_values:
            loss.backward()
            return loss
        width += 1


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

    sizes = (10, 100, 1000)
    graphs = {n: mlp_graph(n) for n in sizes}
    rows = []
    forced = os.environ.get("AD_MAGIC_DOT")
    try:
        for label, exe in renderers.items():
            os.environ["AD_MAGIC_DOT"] = exe
            cells = []
            for n in sizes:
                GraphView(graphs[n], max_nodes=2 * n)  # warm the OS cache for the executable
                cells.append(fmt_seconds(median_time(lambda: GraphView(graphs[n], max_nodes=2 * n), args.repeat)))
            rows.append((f"layout, {label}", cells))
    finally:
        if forced is None:
            os.environ.pop("AD_MAGIC_DOT", None)
        else:
            os.environ["AD_MAGIC_DOT"] = forced

    restyle = []
    for n in sizes:
        view = GraphView(graphs[n], max_nodes=2 * n)
        grads = [t.grad for t in view.nodes]
        steps = list(range(len(view.nodes)))
        state = {"k": 0}

        def step():  # one backward-stepper move: highlight a node, blank later grads
            k = steps[state["k"] % len(steps)]
            state["k"] += 1
            shown = grads[k:] + [None] * k
            view.svg(grads=shown, highlight=k, changed=(k,), caption=f"step {k}")
        restyle.append(fmt_seconds(median_time(step, max(args.repeat, 9))))
    rows.append(("restyle step (svg())", restyle))

    counts = [len(GraphView(graphs[n], max_nodes=2 * n).nodes) for n in sizes]
    print("| scalar-MLP graph | " + " | ".join(f"{c} value nodes" for c in counts) + " |")
    print("|---|" + "---|" * len(sizes))
    for label, cells in rows:
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
