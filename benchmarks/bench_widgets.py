"""Response times of the widgets, headless.

    python benchmarks/bench_widgets.py [--repeat 3] [--sizes 100,1000] [--iterations 200]

Prints a Markdown table. A "slider move" is the time from setting ``.slider.value`` to
the updated output (the observer runs synchronously headless: label, caption, SVG, and
for descent the PNG, the table and the graph's SVG).

- BackwardStepper on scalar-MLP graphs of ~100 and ~1,000 value nodes: construction
  (one ``dot`` layout plus one backward pass recording the changed grads), a move to
  the next step (what Play does), and a jump to a random step (replay from the cached
  state or from step 0, whichever is shorter). Targets: < 50 ms per step for 100 nodes,
  < 200 ms for 1,000.
- BackwardStepper over a 30-step recurrent module (two Linear calls per step), modules
  expanded and collapsed: construction and one module's box clicked (a new layout).
  Collapsed must lay out no slower than expanded (it once took 31-48 s against 0.3 s).
- DescentExplorer, 200 iterations, two scalar parameters (the contour panel): construction
  (the run, the contour grid, the layout), a move to an iteration not shown before
  (blitted PNG + SVG), and a move back to one already shown (cached PNG).
- Live hyperparameters, 100 iterations of a two-parameter Tensor loss (Rosenbrock): the
  time from setting a hyperparameter slider to the redrawn explorer — ``descend`` run
  again for that optimizer, the picture's background redrawn on the same landscape, the
  current iteration blitted, the table and the graph restyled. For one optimizer, for
  one slider of a race of three (one re-run), and for a typed start point in a race of
  three (three re-runs). Target: < 150 ms. Wall-clock and CPU time of the process are
  both given: on a shared machine a busy neighbour inflates the first, not the second.
"""
from __future__ import annotations

import argparse
import random
import statistics
import time

import _common
import numpy as np

from ad_magic.engine import Tensor
from ad_magic.landscapes import rosenbrock
from ad_magic.widgets import BackwardStepper, DescentExplorer


def mlp_graph(n_values: int, seed: int = 0) -> Tensor:
    return _common.mlp_graph(n_values, seed, backward=False)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def bench_stepper(n_values: int, repeat: int, rows: list, max_nodes=None) -> None:
    builds, nexts, jumps = [], [], []
    for r in range(repeat):
        loss = mlp_graph(n_values, seed=r)
        holder = {}
        kwargs = {} if max_nodes is None else {"max_nodes": max_nodes}
        builds.append(timed(lambda: holder.setdefault("s", BackwardStepper(loss, **kwargs))))
        s = holder["s"]
        n = s.n_steps
        for k in range(1, min(n, 60) + 1):           # Play: one step forward at a time
            nexts.append(timed(lambda: setattr(s.slider, "value", k)))
        rng = random.Random(r)
        for _ in range(30):                           # dragging: jumps anywhere
            k = rng.choice([j for j in range(n + 1) if j != s.slider.value])   # a real move
            jumps.append(timed(lambda: setattr(s.slider, "value", k)))
    nodes = len(s.view.nodes)
    target = "< 50 ms" if n_values <= 100 else "< 200 ms"
    drawn = (f"{nodes} nodes" if not s.view.truncated
             else f"{nodes} of {nodes + s.view.truncated} nodes drawn (default max_nodes)")
    rows.append((f"BackwardStepper, {drawn}, {n} steps", "construction",
                 ms(statistics.median(builds)), ms(max(builds)), ""))
    rows.append(("", "slider +1 step (Play)", ms(statistics.median(nexts)), ms(max(nexts)), target))
    rows.append(("", "slider jump (random step)", ms(statistics.median(jumps)), ms(max(jumps)), target))


class _Recurrent:
    """A recurrent module: one Linear for the input and one for the hidden state, applied
    at every step (the graph a collapsed-module layout once took 30 s to draw)."""

    def __new__(cls, steps):
        from ad_magic.nn import Linear, Module

        class Recurrent(Module):
            def __init__(self):
                self.wx, self.wh = Linear(1, 1, seed=0), Linear(1, 1, seed=1)

            def parameters(self):
                return self.wx.parameters() + self.wh.parameters()

            def forward(self, xs):
                h = Tensor(np.zeros((1, 1)), requires_grad=False)
                for t in range(steps):
                    h = (self.wx(xs[t:t + 1]) + self.wh(h)).tanh()
                return h
        return Recurrent()


def bench_modules(steps: int, repeat: int, rows: list) -> None:
    """A BackwardStepper over a recurrent module, its modules expanded and collapsed:
    construction (layout included) and a click on one module's box (a new layout)."""
    xs = np.linspace(-1, 1, steps).reshape(steps, 1)
    label = f"BackwardStepper, recurrent module, {steps} steps (forward=True)"
    for modules in ("expanded", "collapsed"):
        builds, clicks = [], []
        for _ in range(repeat):
            loss = ((_Recurrent(steps)(xs) - 0.5) ** 2).sum()
            holder = {}
            builds.append(timed(lambda: holder.setdefault(
                "s", BackwardStepper(loss, forward=True, modules=modules))))
            s = holder["s"]
            clicks.append(timed(lambda: setattr(s, "toggled", [1])))
        rows.append((label, f"construction, modules {modules}", ms(statistics.median(builds)), ms(max(builds)),
                     "collapsed <= expanded"))
        rows.append(("", f"one module's box clicked, modules {modules}", ms(statistics.median(clicks)),
                     ms(max(clicks)), ""))
        label = ""


def bench_descent(iterations: int, repeat: int, rows: list) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=40)
    Y = 2.5 * X - 1.0 + 0.3 * rng.normal(size=40)
    builds, fresh, revisits = [], [], []
    for r in range(repeat):
        w, b = Tensor(-1.0, name="w"), Tensor(2.0, name="b")
        Xt, Yt = Tensor(X, requires_grad=False), Tensor(Y, requires_grad=False)

        def loss_fn():
            return ((w * Xt + b - Yt) ** 2).mean()
        holder = {}
        builds.append(timed(lambda: holder.setdefault(
            "e", DescentExplorer(loss_fn, [w, b], lr=0.05, steps=iterations))))
        e = holder["e"]
        order = list(range(1, iterations + 1))
        random.Random(r).shuffle(order)
        for k in order[:60]:
            fresh.append(timed(lambda: setattr(e.slider, "value", k)))
        for k in order[:60]:
            revisits.append(timed(lambda: setattr(e.slider, "value", k)))
    rows.append((f"DescentExplorer, {iterations} iterations, 2 params (contour)", "construction",
                 ms(statistics.median(builds)), ms(max(builds)), ""))
    rows.append(("", "slider move, iteration not shown yet", ms(statistics.median(fresh)),
                 ms(max(fresh)), "< 50 ms"))
    rows.append(("", "slider move, iteration shown before", ms(statistics.median(revisits)),
                 ms(max(revisits)), "< 50 ms"))


def timed_cpu(fn) -> tuple:
    """(wall-clock, CPU) seconds of one call: the CPU time of the process does not count
    the time a busy neighbour on a shared machine takes from it."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_live(iterations: int, repeat: int, rows: list, moves: int = 20) -> None:
    """Re-run + redraw when a hyperparameter slider or the start point moves."""
    single, one_of_three, start_moves = [], [], []
    rates = [10 ** e for e in np.linspace(-3.6, -3.0, moves)]
    for _ in range(repeat):
        x, y = rosenbrock.tensors()
        e = DescentExplorer(rosenbrock(x, y), [x, y], lr=1e-3, steps=iterations)
        e.slider.value = iterations // 2
        for rate in rates:
            single.append(timed_cpu(lambda: setattr(e.hyperparameters["sgd"]["lr"], "value", rate)))
        x, y = rosenbrock.tensors()
        race = DescentExplorer.compare(rosenbrock(x, y), [x, y], optimizers=["sgd", "momentum", "adam"],
                                       lr={"sgd": 1e-3, "momentum": 1e-3, "adam": 0.05}, steps=iterations)
        race.slider.value = iterations // 2
        for rate in rates:
            one_of_three.append(timed_cpu(lambda: setattr(race.hyperparameters["momentum"]["lr"], "value", rate)))
        for k in range(moves):
            start = -1.5 + 0.02 * (k % 10)      # stays inside the frame: the same landscape
            start_moves.append(timed_cpu(lambda: setattr(race.start_inputs[0], "value", start)))
    label = f"live hyperparameters, {iterations} iterations, 2 params (Rosenbrock, Tensor loss)"
    for name, times in (("lr slider moved, one optimizer (re-run + redraw)", single),
                        ("lr slider of one optimizer in a race of 3", one_of_three),
                        ("start point typed, race of 3 (3 re-runs)", start_moves)):
        wall, cpu = [t[0] for t in times], [t[1] for t in times]
        rows.append((label, name, f"{ms(statistics.median(wall))} (CPU {ms(statistics.median(cpu))})",
                     f"{ms(max(wall))} (CPU {ms(max(cpu))})", "< 150 ms"))
        label = ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--live-iterations", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.sizes, args.iterations, args.live_iterations = 1, "100", 40, 40
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        bench_stepper(size, args.repeat, rows, max_nodes=2 * size)   # every node drawn
    bench_stepper(max(int(s) for s in args.sizes.split(",")), args.repeat, rows)
    bench_modules(10 if args.quick else 30, args.repeat, rows)
    bench_descent(args.iterations, args.repeat, rows)
    bench_live(args.live_iterations, args.repeat, rows)
    print("| widget | operation | median | max | target |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
