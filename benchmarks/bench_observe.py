"""Watching a student's own backward(): what the tracer costs.

    python benchmarks/bench_observe.py [--repeat 3] [--ops 500] [--quick]

Prints a Markdown table. For student-style classes (written here, as a student would:
the practical's Tensor with an iterative topological sort; the same with a recursive
one; a class with no rule per node, whose backward() multiplies local derivatives kept
as numbers in one loop; micrograd's Value from PyPI when installed) on a graph of about
1,000 nodes (``--ops`` products, each with its constant, and the input), the time of:

- their own ``backward()``, untraced;
- their backward run under the tracer, recording what every call changed (the tracer's
  overhead, as a multiple of the untraced time);
- all of ``observe_backward(out)``: the traced run, then every step judged against the
  chain rule and the problems found (ad_magic's own work).

The median of ``--repeat`` runs, wall-clock and CPU time of the process (a busy
neighbour on a shared machine inflates the first, not the second). Target: <= 2 s for
1,000 nodes.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from ad_magic.adapters import adapt, observe_backward


class Practical:
    """The practical's Tensor: grads zeroed, seeded, rules in reverse topological order."""

    def __init__(self, data, parents=(), function=None):
        self.data = np.asarray(data, dtype=float)
        self.grad = None
        self._parents = tuple(parents)
        self._function = function
        self._backward = lambda: None

    def __mul__(self, other):
        other = other if isinstance(other, Practical) else type(self)(other)
        out = type(self)(self.data * other.data, (self, other), "mul")

        def _backward():
            self.grad += out.grad * other.data
            other.grad += out.grad * self.data
        out._backward = _backward
        return out

    def order(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
            elif node not in seen:
                seen.add(node)
                stack.append((node, True))
                stack.extend((p, False) for p in node._parents)
        return order

    def backward(self):
        order = self.order()
        for node in order:
            node.grad = np.zeros_like(node.data)
        self.grad = np.ones_like(self.data)
        for node in reversed(order):
            node._backward()


class Recursive(Practical):
    """micrograd's way: a recursive build_topo."""

    def order(self):
        order, seen = [], set()

        def build(node):
            if node not in seen:
                seen.add(node)
                for p in node._parents:
                    build(p)
                order.append(node)
        build(self)
        return order


class Central:
    """No rule per node: each product keeps (input, local derivative) pairs, and backward()
    multiplies them in one loop (judged term by term, line by line)."""

    def __init__(self, value, pairs=()):
        self.value, self.pairs, self.grad = float(value), tuple(pairs), 0.0

    def __mul__(self, other):
        other = other if isinstance(other, Central) else Central(other)
        return Central(self.value * other.value, ((self, other.value), (other, self.value)))

    def backward(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((p, False) for p, _ in node.pairs)
        self.grad = 1.0
        for node in reversed(order):
            for parent, local in node.pairs:
                parent.grad += local * node.grad


def chain(make, ops):
    x = make(1.0)
    out = x
    for _ in range(ops):
        out = out * 1.0
    return out


def measure(label, make, ops, repeat, rows):
    out = chain(make, ops)
    nodes = len(adapt(out).graph.order)
    own, watched, cpu, traced = [], [], [], []
    for _ in range(repeat):
        out = chain(make, ops)
        start = time.perf_counter()
        out.backward()
        own.append(time.perf_counter() - start)
        out = chain(make, ops)
        start, start_cpu = time.perf_counter(), time.process_time()
        observation = observe_backward(out)
        watched.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        traced.append(observation.seconds)
        assert not observation.problems, observation.problems
    o, w, t = statistics.median(own), statistics.median(watched), statistics.median(traced)
    rows.append(f"| {label} | {nodes} | {o * 1000:.1f} ms | {t * 1000:.0f} ms ({t / o:.0f}×) | {w * 1000:.0f} ms | "
                f"{statistics.median(cpu) * 1000:.0f} ms |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ops", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 50 products, one repeat")
    args = parser.parse_args(argv)
    ops, repeat = (50, 1) if args.quick else (args.ops, args.repeat)
    import sys

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * ops + 1000))   # Recursive's build
    rows = ["| class | nodes | own backward() | the same, traced | observe_backward (wall) | (CPU) |",
            "|---|---|---|---|---|---|"]
    measure("practical Tensor, iterative topological sort", Practical, ops, repeat, rows)
    measure("practical Tensor, recursive build_topo", Recursive, ops, repeat, rows)
    measure("local derivatives kept as numbers, one central loop", Central, ops, repeat, rows)
    try:
        from micrograd.engine import Value
    except ImportError:
        rows.append("| micrograd Value | – | not installed | | | |")
    else:
        measure("micrograd Value (PyPI)", Value, ops, repeat, rows)
    print("## observe_backward: a student's backward() watched\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
