"""The engine: `Tensor`, its operations with their derivatives, backpropagation, and what
is built on them alone — `nn` (modules), `optim` (optimizers, `descend`), `gradcheck`,
`landscapes` (test functions for descent) and `formatting`. It imports NumPy and nothing
else: no Jupyter, no widget, plotting or Graphviz package, and nothing of ad_magic above
it (drawing, adapters, widgets, the practical, the magic), so it runs headless in scripts
and tests. `formatting` (the one number formatter and the table helpers) lives here
because the engine's own step texts and reports (`steps`, `gradcheck`, `optim`) write
numbers with it, and every layer above writes them the same way.

Reading guide (the order a learner meets things):

1. `tensor.py` — `Tensor` holds a NumPy array `data`, its `grad`, the tensors it was
   computed from (`_parents`) and the name of the function that made it (`_function`).
2. `ops.py` — the op registry: each operation declared once, its forward function and
   the derivative of its output with respect to each input, as code and as text.
3. `backprop.py` — `backward()` orders the graph so that children come before parents,
   clears the grads, seeds the output's grad with ones and runs each node's rule in
   order; `forward()` replays the graph from its leaves.
4. `steps.py` — what each step did, in words and numbers, for the widgets.

This package gathers them. `tensor.py` imports neither `ops.py` nor `backprop.py` (both
build on it): they are bound into it here, once all three are loaded.
"""

from . import backprop as _backprop
from . import ops as _ops
from .backprop import topological_order, trace_graph
from .ops import (
    OPS,
    Op,
    add,
    div,
    elementwise,
    exp,
    getitem,
    linear,
    log,
    matmul,
    mean,
    mul,
    neg,
    ops_table,
    power,
    relu,
    reshape,
    sigmoid,
    structural,
    sub,
    tanh,
    tensor_sum,
    transpose,
    unbroadcast,
)
from .steps import BackwardStep, ChainTerm, ForwardStep
from .tensor import Tensor, bind_engine, enable_grad, is_grad_enabled, no_grad

__all__ = [
    "Tensor", "add", "mul", "sub", "div", "neg", "power", "exp", "log", "tanh", "sigmoid", "relu",
    "matmul", "linear", "tensor_sum", "mean", "reshape", "transpose", "getitem",
    "no_grad", "enable_grad", "is_grad_enabled", "trace_graph", "topological_order", "unbroadcast",
    "BackwardStep", "ChainTerm", "ForwardStep", "Op", "OPS", "elementwise", "structural", "ops_table",
]

bind_engine(_ops, _backprop)
