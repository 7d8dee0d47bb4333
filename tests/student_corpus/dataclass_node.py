"""A `@dataclass` node, built by free functions (`sub`, `div`, `exp`) rather than
operators: the amount in `amount`, inputs in `srcs`, grad in `d`, a `vjp(g)` field that
returns the inputs' grads, the op's name in `what`."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

STYLE = "@dataclass node, free functions, vjp(g) field returning grads"


@dataclass(eq=False)
class Node:
    amount: float
    srcs: tuple = ()
    d: float = 0.0
    vjp: Callable | None = None
    what: str = ""


def sub(a, b):
    return Node(a.amount - b.amount, (a, b), vjp=lambda g: (g, -g), what="sub")


def div(a, b):
    return Node(a.amount / b.amount, (a, b), vjp=lambda g: (g / b.amount, -g * a.amount / b.amount ** 2), what="div")


def exp(a):
    e = math.exp(a.amount)
    return Node(e, (a,), vjp=lambda g: (g * e,), what="exp")


def backward(out, inputs=None):
    order, seen = [], set()

    def visit(n):
        if id(n) not in seen:
            seen.add(id(n))
            for s in n.srcs:
                visit(s)
            order.append(n)
    visit(out)
    for n in order:
        n.d = 0.0
    out.d = 1.0
    for n in reversed(order):
        if n.vjp is not None:
            for s, g in zip(n.srcs, n.vjp(n.d)):
                s.d += g


def build():
    u, w = Node(1.0), Node(3.0)
    out = div(exp(sub(u, w)), w)
    return out, {"u": u, "w": w}
