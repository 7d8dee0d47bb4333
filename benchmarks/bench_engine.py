"""Engine speed: ad_magic beside micrograd, HIPS autograd, MyGrad, PyTorch (CPU) and a
hand-written NumPy forward+backward (the floor), in one process, as a Markdown table.

    .venv/bin/python benchmarks/bench_engine.py            # full run (several minutes)
    .venv/bin/python benchmarks/bench_engine.py --quick    # smoke run, small sizes

Workloads (see benchmarks/README.md):
  W1  scalar MLP 2->16->16->1, ReLU, MSE over 32 points, built from 0-d scalars
      (20,576 ops), forward + backward
  W2  deep chain y = y*1.0001 + 0.0001, N = 1e4, 1e5, 1e6 (build + backward),
      plus ad_magic's peak memory at N = 1e6 in a subprocess
  W3  small tensor MLP step: X 256x16 f64, 16->64->1, ReLU, MSE, backward, SGD
  W4  large tensor MLP step: X 4096x256 f32, 256->512->1, f32 throughout
  W5  wide elementwise: a 1e6-vector through 20 elementwise ops, sum, backward
  W6  forward() replay against building anew, forward only: W6a W1's scalar graph built
      anew (every scalar engine), W6b ad_magic's loss.forward() replay of that graph after
      new parameter data; W6c/W6d the same pair for W3's tensor MLP

Before timing, every engine's gradients are compared with PyTorch's (with the NumPy
floor's when torch is absent); for W6 the loss values, and a replayed loss with the same
graph built anew from the same data. Array workloads run with 1 thread everywhere
(threadpoolctl + torch.set_num_threads(1) + OMP/MKL/OPENBLAS_NUM_THREADS=1).
A peer that is not installed is skipped with a note; a peer that fails on a workload
(micrograd's RecursionError on deep chains) shows the error in its cell.
"""
# The hand-written floors keep short in-place NumPy sequences on one line (`a; b; c`):
# ruff: noqa: E702
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (HERE, ROOT):  # _common, and the checkout's ad_magic rather than an installed one
    if _p not in sys.path:
        sys.path.insert(0, _p)

import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    OPENBLAS_SLOW_VARS,
    Timing,
    current_rss_mib,
    fmt_ms,
    fmt_ratio,
    machine_info,
    md_table,
    measure_rounds,
    peak_rss_mib,
    reexec_in_bench_env,
    timed,
)

FLOOR = "numpy"
SELF = "ad_magic"
PEERS = ("micrograd", "autograd", "mygrad", "torch")
ENGINES = (FLOOR, SELF) + PEERS
TITLES = {
    FLOOR: "NumPy by hand (floor)",
    SELF: "ad_magic",
    "micrograd": "micrograd",
    "autograd": "HIPS autograd",
    "mygrad": "MyGrad",
    "torch": "PyTorch (CPU, eager)",
}
SLOW_LIMIT_S = 60.0  # W2: a run expected to take longer than this is skipped, with a note


# --------------------------------------------------------------------------- engines

class NotInstalled(Exception):
    pass


_MODULES: dict = {}


def load(name):
    """Import an engine's modules once; NotInstalled (with the reason) if it can't be."""
    if name in _MODULES:
        mods = _MODULES[name]
        if isinstance(mods, NotInstalled):
            raise mods
        return mods
    try:
        if name == FLOOR:
            mods = {"np": np}
        elif name == SELF:
            import ad_magic
            from ad_magic import Tensor
            from ad_magic.nn import MLP, mse_loss
            from ad_magic.optim import SGD

            mods = {"ad_magic": ad_magic, "Tensor": Tensor, "MLP": MLP, "mse_loss": mse_loss, "SGD": SGD}
        elif name == "micrograd":
            from micrograd.engine import Value

            mods = {"Value": Value}
        elif name == "autograd":
            import autograd
            import autograd.numpy as anp

            mods = {"autograd": autograd, "anp": anp}
        elif name == "mygrad":
            import mygrad as mg
            from mygrad.nnet.activations import relu, sigmoid

            mods = {"mg": mg, "relu": relu, "sigmoid": sigmoid}
        elif name == "torch":
            import torch

            torch.set_num_threads(1)
            mods = {"torch": torch}
        else:
            raise ValueError(name)
    except ImportError as e:
        err = NotInstalled(f"not installed ({e})")
        _MODULES[name] = err
        raise err from None
    except Exception as e:  # importable but broken
        err = NotInstalled(f"import failed: {type(e).__name__}: {e}")
        _MODULES[name] = err
        raise err from None
    _MODULES[name] = mods
    return mods


def engine_version(name) -> str:
    try:
        from importlib.metadata import version

        if name == FLOOR:
            return np.__version__
        if name == SELF:
            try:
                return version("ad_magic")
            except Exception:
                return "checkout"
        return version(name)
    except Exception:
        return "?"


class Impl:
    """One engine's implementation of one workload: ``step()`` does the timed work,
    ``grads()`` returns the gradients of the last step as {name: ndarray} (for a forward-only
    workload, the loss value). ``reference()``, if given, returns the same values computed
    another way, checked instead of the other engines' (W6b: the graph built anew)."""

    def __init__(self, step, grads, reference=None):
        self.step = step
        self.grads = grads
        self.reference = reference


class NotApplicable(Exception):
    pass


# --------------------------------------------------------------------------- W1

def w1_data(quick=False):
    rng = np.random.default_rng(1)
    n_points = 8 if quick else 32
    sizes = [2, 16, 16, 1]
    X = rng.uniform(-2, 2, size=(n_points, 2))
    Y = np.sin(X[:, 0]) * np.cos(X[:, 1])
    params = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        params[f"W{i}"] = rng.uniform(-1, 1, size=(n_out, n_in))  # one row per neuron
        params[f"b{i}"] = rng.uniform(-0.1, 0.1, size=(n_out,))
    n_ops = _w1_op_count(sizes, n_points)
    return {"X": X, "Y": Y, "params": params, "n_layers": 3, "n_ops": n_ops}


def _w1_op_count(sizes, n_points):
    per_point = 0
    for li, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        per_point += n_out * (2 * n_in)  # n_in mul + n_in add (sum starts at the bias)
        if li < len(sizes) - 2:
            per_point += n_out  # relu
    per_point += 2  # d = out - y ; d*d
    return n_points * per_point + (n_points - 1) + 1  # running sum, final * (1/n)


def _scalar_mlp_loss(P, X, Y, relu, n_layers=3):
    """micrograd-style: neurons are python lists of scalar objects; X, Y python floats."""
    total = None
    for x, y in zip(X, Y):
        h = x
        for li in range(1, n_layers + 1):
            W, b = P[f"W{li}"], P[f"b{li}"]
            act = [sum((wi * hi for wi, hi in zip(row, h)), bj) for row, bj in zip(W, b)]
            h = [relu(a) for a in act] if li < n_layers else act
        d = h[0] - y
        sq = d * d
        total = sq if total is None else total + sq
    return total * (1.0 / len(X))


def _scalar_params(params, make):
    return {k: ([[make(float(v)) for v in row] for row in a] if a.ndim == 2 else [make(float(v)) for v in a])
            for k, a in params.items()}


def _flat_scalars(P):
    """Every scalar parameter of ``_scalar_params``' result, in order."""
    return [p for v in P.values() for p in (sum(v, []) if isinstance(v[0], list) else v)]


def _autograd_flat(params):
    """autograd differentiates a function of one flat list: (flat values, unflatten, keys, shapes)."""
    keys = list(params)
    flat0 = [float(v) for k in keys for v in params[k].ravel()]
    shapes = [params[k].shape for k in keys]

    def unflatten(flat):
        P, i = {}, 0
        for k, shp in zip(keys, shapes):
            if len(shp) == 2:
                P[k] = [flat[i + r * shp[1]: i + (r + 1) * shp[1]] for r in range(shp[0])]
            else:
                P[k] = flat[i: i + shp[0]]
            i += int(np.prod(shp))
        return P

    return flat0, unflatten, keys, shapes


def _scalar_grads(P, params, get):
    out = {}
    for k, a in params.items():
        if a.ndim == 2:
            out[k] = np.array([[get(p) for p in row] for row in P[k]], dtype=np.float64)
        else:
            out[k] = np.array([get(p) for p in P[k]], dtype=np.float64)
    return out


def w1_impl(engine, data):
    X, Y, params = data["X"].tolist(), data["Y"].tolist(), data["params"]
    if engine == FLOOR:
        return _w1_floor(data)
    m = load(engine)
    if engine == SELF:
        Tensor = m["Tensor"]
        P = _scalar_params(params, Tensor)

        def step():
            loss = _scalar_mlp_loss(P, X, Y, lambda a: a.relu())
            loss.backward()

        return Impl(step, lambda: _scalar_grads(P, params, lambda p: float(p.grad)))
    if engine == "micrograd":
        Value = m["Value"]
        P = _scalar_params(params, Value)
        flat = _flat_scalars(P)

        def step():
            for p in flat:  # micrograd accumulates into .grad
                p.grad = 0.0
            loss = _scalar_mlp_loss(P, X, Y, lambda a: a.relu())
            loss.backward()

        return Impl(step, lambda: _scalar_grads(P, params, lambda p: float(p.grad)))
    if engine == "torch":
        torch = m["torch"]
        P = _scalar_params(params, lambda v: torch.tensor(v, dtype=torch.float64, requires_grad=True))
        flat = _flat_scalars(P)

        def step():
            for p in flat:
                p.grad = None
            loss = _scalar_mlp_loss(P, X, Y, lambda a: a.relu())
            loss.backward()

        return Impl(step, lambda: _scalar_grads(P, params, lambda p: float(p.grad)))
    if engine == "mygrad":
        mg, relu = m["mg"], m["relu"]
        P = _scalar_params(params, lambda v: mg.Tensor(v))

        def step():
            loss = _scalar_mlp_loss(P, X, Y, relu)
            loss.backward()

        return Impl(step, lambda: _scalar_grads(P, params, lambda p: float(p.grad)))
    if engine == "autograd":
        autograd, anp = m["autograd"], m["anp"]
        flat0, unflatten, keys, shapes = _autograd_flat(params)
        gfun = autograd.grad(lambda flat: _scalar_mlp_loss(unflatten(flat), X, Y, lambda a: anp.maximum(a, 0.0)))
        state = {}

        def step():
            state["g"] = gfun(flat0)

        def grads():
            g = np.array([float(v) for v in state["g"]])
            out, i = {}, 0
            for k, shp in zip(keys, shapes):
                n = int(np.prod(shp))
                out[k] = g[i: i + n].reshape(shp)
                i += n
            return out

        return Impl(step, grads)
    raise NotApplicable


def _w1_floor(data):
    """Vectorised over the batch: the whole scalar graph is three small matmuls."""
    X, Y, P = data["X"], data["Y"], data["params"]
    n = X.shape[0]
    W1, b1, W2, b2, W3, b3 = (P[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3"))
    Z1 = np.empty((n, W1.shape[0])); Z2 = np.empty((n, W2.shape[0])); out = np.empty((n, 1))
    H1 = np.empty_like(Z1); H2 = np.empty_like(Z2); d = np.empty(n)
    G = {k: np.empty_like(v) for k, v in P.items()}

    def step():
        nonlocal Z1, Z2, out, d  # (augmented assignments below are in place)
        np.matmul(X, W1.T, out=Z1); Z1 += b1; np.maximum(Z1, 0, out=H1)
        np.matmul(H1, W2.T, out=Z2); Z2 += b2; np.maximum(Z2, 0, out=H2)
        np.matmul(H2, W3.T, out=out); out += b3
        np.subtract(out[:, 0], Y, out=d)
        loss = (d @ d) * (1.0 / n)  # noqa: F841 (the forward value)
        d *= 2.0 / n  # dL/dout
        np.matmul(d, H2, out=G["W3"][0]); G["b3"][0] = d.sum()
        dZ2 = np.multiply.outer(d, W3[0]); dZ2 *= Z2 > 0
        np.matmul(dZ2.T, H1, out=G["W2"]); dZ2.sum(0, out=G["b2"])
        dZ1 = dZ2 @ W2; dZ1 *= Z1 > 0
        np.matmul(dZ1.T, X, out=G["W1"]); dZ1.sum(0, out=G["b1"])

    return Impl(step, lambda: {k: v.copy() for k, v in G.items()})


# --------------------------------------------------------------------------- W2

A_CHAIN, B_CHAIN = 1.0001, 0.0001


def w2_data(N):
    return {"N": N}


def w2_impl(engine, data):
    N = data["N"]
    a, b = A_CHAIN, B_CHAIN
    state = {}
    if engine == FLOOR:
        def step():  # a chain of scalars: NumPy has nothing to add to python floats
            y = 1.0
            for _ in range(N):
                y = y * a + b
            g = 1.0
            for _ in range(N):  # d(y*a + b)/dy = a, back down the chain
                g = g * a
            state["g"] = g

        return Impl(step, lambda: {"y0": np.array(state["g"])})
    m = load(engine)
    if engine == "autograd":
        gfun = m["autograd"].grad(_chain)

        def step():
            state["g"] = gfun(1.0, N)

        return Impl(step, lambda: {"y0": np.array(float(state["g"]))})
    if engine == SELF:
        make = m["Tensor"]
    elif engine == "micrograd":
        make = m["Value"]
    elif engine == "torch":
        torch = m["torch"]
        make = lambda v: torch.tensor(v, dtype=torch.float64, requires_grad=True)  # noqa: E731
    elif engine == "mygrad":
        make = m["mg"].Tensor
    else:
        raise NotApplicable

    def step():
        y0 = make(1.0)
        _chain(y0, N).backward()
        state["y0"] = y0

    return Impl(step, lambda: {"y0": np.array(float(state["y0"].grad))})


def _chain(y, N):
    a, b = A_CHAIN, B_CHAIN
    for _ in range(N):
        y = y * a + b
    return y


# --------------------------------------------------------------------------- W3 / W4

def mlp_data(n, d_in, hidden, dtype, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d_in)).astype(dtype)
    y = (np.sin(X[:, :1]) + 0.1 * rng.standard_normal((n, 1))).astype(dtype)
    params = {
        "W1": (rng.standard_normal((d_in, hidden)) / math.sqrt(d_in)).astype(dtype),
        "b1": (0.1 * rng.standard_normal(hidden)).astype(dtype),
        "W2": (rng.standard_normal((hidden, 1)) / math.sqrt(hidden)).astype(dtype),
        "b2": (0.1 * rng.standard_normal(1)).astype(dtype),
    }
    return {"X": X, "y": y, "params": params, "lr": 0.01, "dtype": np.dtype(dtype)}


def w3_data(quick=False):
    return mlp_data(64 if quick else 256, 16, 16 if quick else 64, np.float64, 3)


def w4_data(quick=False):
    return mlp_data(256 if quick else 4096, 32 if quick else 256, 64 if quick else 512, np.float32, 4)


def _fit(arr, shape):
    """Our (in, out) layout into an engine's parameter of ``shape``."""
    if arr.shape == tuple(shape):
        return arr
    if arr.ndim == 2 and arr.T.shape == tuple(shape):
        return arr.T
    if arr.size == int(np.prod(shape)):
        return arr.reshape(shape)
    raise ValueError(f"cannot fit parameter of shape {arr.shape} into {tuple(shape)}")


def mlp_impl(engine, data):
    X, y, params, lr = data["X"], data["y"], data["params"], data["lr"]
    keys = MLP_KEYS
    if engine == FLOOR:
        return _mlp_floor(data)
    m = load(engine)
    if engine == SELF:
        mse_loss, SGD = m["mse_loss"], m["SGD"]
        model, ps, Xt, yt = _ad_magic_mlp(m, data)
        opt = SGD(ps, lr)

        def step():
            opt.zero_grad()
            loss = mse_loss(model(Xt), yt)
            loss.backward()
            opt.step()

        return Impl(step, lambda: {k: _fit(np.asarray(p.grad), params[k].shape).copy() for k, p in zip(keys, ps)})
    if engine == "torch":
        torch = m["torch"]
        model, Xt, yt = _torch_mlp(torch, data)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        mse = torch.nn.functional.mse_loss

        def step():
            opt.zero_grad()
            loss = mse(model(Xt), yt)
            loss.backward()
            opt.step()

        def grads():
            return {"W1": model[0].weight.grad.numpy().T.copy(), "b1": model[0].bias.grad.numpy().copy(),
                    "W2": model[2].weight.grad.numpy().T.copy(), "b2": model[2].bias.grad.numpy().copy()}

        return Impl(step, grads)
    if engine == "mygrad":
        mg, relu = m["mg"], m["relu"]
        P = {k: mg.Tensor(params[k].copy()) for k in keys}
        Xt, yt = mg.Tensor(X, constant=True), mg.Tensor(y, constant=True)

        def step():
            h = relu(Xt @ P["W1"] + P["b1"])
            loss = mg.mean((h @ P["W2"] + P["b2"] - yt) ** 2)
            loss.backward()
            for p in P.values():
                p.data -= lr * p.grad

        return Impl(step, lambda: {k: np.array(p.grad) for k, p in P.items()})
    if engine == "autograd":
        autograd, anp = m["autograd"], m["anp"]

        def loss_fn(ps):
            W1, b1, W2, b2 = ps
            h = anp.maximum(anp.dot(X, W1) + b1, 0.0)
            return anp.mean((anp.dot(h, W2) + b2 - y) ** 2)

        gfun = autograd.grad(loss_fn)
        ps = [params[k].copy() for k in keys]
        state = {}

        def step():
            g = gfun(ps)
            for p, gp in zip(ps, g):
                p -= lr * gp
            state["g"] = g

        return Impl(step, lambda: {k: np.array(g) for k, g in zip(keys, state["g"])})
    raise NotApplicable


MLP_KEYS = ("W1", "b1", "W2", "b2")


def _ad_magic_mlp(m, data):
    """ad_magic's MLP with W3/W4's starting values: (model, parameters, X, y as Tensors)."""
    Tensor, MLP = m["Tensor"], m["MLP"]
    X, y, params = data["X"], data["y"], data["params"]
    model = MLP([X.shape[1], params["W1"].shape[1], 1])
    ps = list(model.parameters())
    if len(ps) != 4:
        raise RuntimeError(f"ad_magic MLP has {len(ps)} parameters, expected 4")
    for k, p in zip(MLP_KEYS, ps):
        p.data = np.array(_fit(params[k], p.data.shape), dtype=data["dtype"])
    # Data wrapped once, as constants, like torch.from_numpy(X) once: Tensor(X) would
    # default to requires_grad=True (an extra matmul for a gradient nobody reads), and
    # passing the arrays to model()/mse_loss() copies them into a new Tensor each step.
    Xt, yt = Tensor(X, requires_grad=False), Tensor(y, requires_grad=False)
    return model, ps, Xt, yt


def _torch_mlp(torch, data):
    """torch's nn.Sequential with W3/W4's starting values: (model, X, y as tensors)."""
    X, y, params = data["X"], data["y"], data["params"]
    tdt = torch.float64 if data["dtype"] == np.float64 else torch.float32
    d_in, hidden = params["W1"].shape
    model = torch.nn.Sequential(torch.nn.Linear(d_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)).to(tdt)
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(params["W1"].T.copy()))
        model[0].bias.copy_(torch.from_numpy(params["b1"]))
        model[2].weight.copy_(torch.from_numpy(params["W2"].T.copy()))
        model[2].bias.copy_(torch.from_numpy(params["b2"]))
    return model, torch.from_numpy(X), torch.from_numpy(y)


def _mlp_floor(data):
    """Forward, backward and SGD by hand, in place into preallocated buffers."""
    X, y, lr = data["X"], data["y"], data["lr"]
    P = {k: v.copy() for k, v in data["params"].items()}
    W1, b1, W2, b2 = P["W1"], P["b1"], P["W2"], P["b2"]
    n = X.shape[0]
    dt = data["dtype"]
    H = np.empty((n, W1.shape[1]), dtype=dt)
    dH = np.empty_like(H)
    mask = np.empty(H.shape, dtype=bool)
    pred = np.empty((n, 1), dtype=dt)
    XT = X.T  # a view
    G = {k: np.empty_like(v) for k, v in P.items()}
    tmp = {k: np.empty_like(v) for k, v in P.items()}
    two_over_n = 2.0 / n

    def step():
        nonlocal H, pred, dH  # (augmented assignments below are in place)
        np.matmul(X, W1, out=H); H += b1; np.maximum(H, 0, out=H)
        np.matmul(H, W2, out=pred); pred += b2
        pred -= y  # pred now holds the residual
        loss = float(pred[:, 0] @ pred[:, 0]) / n  # noqa: F841 (the forward value)
        pred *= two_over_n  # dL/dpred
        np.matmul(H.T, pred, out=G["W2"]); pred.sum(0, out=G["b2"])
        np.matmul(pred, W2.T, out=dH)
        np.greater(H, 0, out=mask); dH *= mask
        np.matmul(XT, dH, out=G["W1"]); dH.sum(0, out=G["b1"])
        for k, p in P.items():  # SGD
            np.multiply(G[k], lr, out=tmp[k]); p -= tmp[k]

    return Impl(step, lambda: {k: v.copy() for k, v in G.items()})


# --------------------------------------------------------------------------- W5

def w5_data(quick=False):
    rng = np.random.default_rng(5)
    return {"x": rng.standard_normal(10_000 if quick else 1_000_000)}


W5_OPS = 20


def _w5_chain(x, tanh, sigmoid, relu, exp):
    """20 elementwise ops; every intermediate is bounded (exp sees values in [0, 1/3])."""
    a = x * 0.5        # 1 mul const
    b = a + 0.1        # 2 add const
    c = tanh(b)        # 3 tanh
    d = c * x          # 4 mul tensors
    e = sigmoid(d)     # 5 sigmoid
    f = e - c          # 6 sub tensors
    g = f / 3.0        # 7 div const
    h = relu(g)        # 8 relu
    i = exp(h)         # 9 exp (bounded input)
    j = i * e          # 10 mul tensors
    k = j + b          # 11 add tensors
    l = tanh(k)        # 12 tanh  # noqa: E741
    m = l * l          # 13 square by mul
    n = m - 0.25       # 14 sub const
    o = relu(n)        # 15 relu
    p = o + d          # 16 add tensors
    q = sigmoid(p)     # 17 sigmoid
    r = q * 2.0        # 18 mul const
    t = e + 1.0        # 19 add const
    s = r / t          # 20 div tensors
    return s


def w5_impl(engine, data):
    x = data["x"]
    if engine == FLOOR:
        return _w5_floor(data)
    m = load(engine)
    state = {}
    if engine == SELF:
        xt = m["Tensor"](x)

        def step():
            s = _w5_chain(xt, lambda v: v.tanh(), lambda v: v.sigmoid(), lambda v: v.relu(), lambda v: v.exp())
            s.sum().backward()

        return Impl(step, lambda: {"x": np.array(xt.grad)})
    if engine == "torch":
        torch = m["torch"]
        xt = torch.from_numpy(x.copy()).requires_grad_(True)

        def step():
            xt.grad = None
            _w5_chain(xt, torch.tanh, torch.sigmoid, torch.relu, torch.exp).sum().backward()

        return Impl(step, lambda: {"x": xt.grad.numpy().copy()})
    if engine == "mygrad":
        mg = m["mg"]
        xt = mg.Tensor(x.copy())

        def step():
            _w5_chain(xt, mg.tanh, m["sigmoid"], m["relu"], mg.exp).sum().backward()

        return Impl(step, lambda: {"x": np.array(xt.grad)})
    if engine == "autograd":
        anp = m["anp"]

        def f(v):
            return anp.sum(_w5_chain(v, anp.tanh, lambda u: 1.0 / (1.0 + anp.exp(-u)),
                                     lambda u: anp.maximum(u, 0.0), anp.exp))

        gfun = m["autograd"].grad(f)

        def step():
            state["g"] = gfun(x)

        return Impl(step, lambda: {"x": np.array(state["g"])})
    raise NotApplicable


def _w5_floor(data):
    """The same 20 ops and their backward by hand, in place (``out=``) into buffers
    allocated once; sigmoid as 1/(1+exp(-v)) since NumPy has no fused one."""
    x = data["x"]
    n = x.shape[0]
    B, C, D, E, G, I, L, N, Q, R, T, S, K = (np.empty(n) for _ in range(13))
    w0, w1, w2, w3, w4, w5 = (np.empty(n) for _ in range(6))
    gx = np.empty(n)
    mask = np.empty(n, dtype=bool)

    def sigmoid(v, out):
        np.negative(v, out=out); np.exp(out, out=out); out += 1.0; np.reciprocal(out, out=out)

    def step():
        nonlocal K, w0, w1, w2, w3, w4, w5, gx  # (augmented assignments below are in place)
        # forward (K is scratch for the values not needed by the backward pass)
        np.multiply(x, 0.5, out=K)            # a
        np.add(K, 0.1, out=B)                 # b
        np.tanh(B, out=C)                     # c
        np.multiply(C, x, out=D)              # d
        sigmoid(D, E)                         # e
        np.subtract(E, C, out=K)              # f
        np.divide(K, 3.0, out=G)              # g
        np.maximum(G, 0, out=K)               # h
        np.exp(K, out=I)                      # i
        np.multiply(I, E, out=K)              # j
        K += B                                # k
        np.tanh(K, out=L)                     # l
        np.multiply(L, L, out=K)              # m
        np.subtract(K, 0.25, out=N)           # n
        np.maximum(N, 0, out=K)               # o
        K += D                                # p
        sigmoid(K, Q)                         # q
        np.multiply(Q, 2.0, out=R)            # r
        np.add(E, 1.0, out=T)                 # t
        np.divide(R, T, out=S)                # s
        loss = S.sum()  # noqa: F841 (the forward value)
        # backward, dL/ds = 1
        np.reciprocal(T, out=w0)              # gr = 1/t
        np.divide(S, T, out=w1); np.negative(w1, out=w1)  # gt = -s/t
        w0 *= 2.0                             # gq
        np.subtract(1.0, Q, out=w2); w2 *= Q; w0 *= w2    # gp = gq q (1-q)  (= go, and part of gd)
        np.greater(N, 0, out=mask); np.multiply(w0, mask, out=w2)  # gn = gm
        w2 *= L; w2 *= 2.0                    # gl
        np.multiply(L, L, out=w3); np.subtract(1.0, w3, out=w3); w2 *= w3  # gk = gj = part of gb
        np.multiply(w2, E, out=w3)            # gi
        np.multiply(w2, I, out=w4); w4 += w1  # ge (from j and t)
        w3 *= I                               # gh
        np.greater(G, 0, out=mask); w3 *= mask  # gg
        w3 /= 3.0                             # gf
        w4 += w3                              # ge += gf ; gc = -gf
        np.subtract(1.0, E, out=w5); w5 *= E; w4 *= w5; w4 += w0  # gd
        np.multiply(w4, x, out=w5); w5 -= w3  # gc
        np.multiply(w4, C, out=gx)            # gx (from d)
        np.multiply(C, C, out=w3); np.subtract(1.0, w3, out=w3); w3 *= w5; w3 += w2  # gb = ga
        w3 *= 0.5; gx += w3                   # gx (from a)

    return Impl(step, lambda: {"x": gx.copy()})


# --------------------------------------------------------------------------- W6

# W6: what ad_magic's Tensor.forward() (replay a recorded graph from its leaves' current
# data) costs beside building the same graph anew. Forward only, no backward: W6a/W6c
# build W1's/W3's loss graph anew in every engine (torch with requires_grad parameters,
# so the graph is recorded; autograd under make_vjp, which traces it), W6b/W6d replay the
# graph ad_magic built once, after giving the parameters new data. The "gradients"
# checked before timing are the loss values; a replayed loss is checked against the same
# graph built anew from the same data.

W6_DELTA = 1e-4  # replay steps alternate the parameters between their values and these + W6_DELTA
REBUILT = "built anew"  # the reference of the replay rows (see Impl.reference)
W6_PAIRS = (("W6a", "W6b", "scalar MLP (W1)"), ("W6c", "W6d", "tensor MLP (W3)"))  # (rebuild, replay, what)


def _value_impl(step, state):
    return Impl(step, lambda: {"loss": np.array(float(state["v"]))})


def w6_build_impl(engine, data):
    """W6a: W1's scalar-MLP loss graph built anew, forward only (the step keeps the value)."""
    X, Y, params = data["X"].tolist(), data["Y"].tolist(), data["params"]
    if engine == FLOOR:
        return _w1_floor_forward(data)
    m = load(engine)
    state = {}
    if engine == "autograd":
        make_vjp, anp = m["autograd"].make_vjp, m["anp"]
        flat0, unflatten, _, _ = _autograd_flat(params)
        trace = make_vjp(lambda flat: _scalar_mlp_loss(unflatten(flat), X, Y, lambda a: anp.maximum(a, 0.0)))

        def step():
            _, state["v"] = trace(flat0)  # (vjp, value): the graph is traced, the vjp never called

        return _value_impl(step, state)
    relu = lambda a: a.relu()  # noqa: E731
    if engine == SELF:
        make, value = m["Tensor"], lambda t: float(t.data)
    elif engine == "micrograd":
        make, value = m["Value"], lambda t: t.data
    elif engine == "torch":
        torch = m["torch"]
        make = lambda v: torch.tensor(v, dtype=torch.float64, requires_grad=True)  # noqa: E731
        value = lambda t: t.item()  # noqa: E731
    elif engine == "mygrad":
        make, relu, value = m["mg"].Tensor, m["relu"], lambda t: t.item()
    else:
        raise NotApplicable
    P = _scalar_params(params, make)

    def step():
        state["v"] = value(_scalar_mlp_loss(P, X, Y, relu))

    if engine == "torch" and _scalar_mlp_loss(P, X, Y, relu).grad_fn is None:
        raise RuntimeError("torch recorded no graph")
    return _value_impl(step, state)


def _w1_floor_forward(data):
    """W1's forward by hand, vectorised over the batch, in place: three small matmuls."""
    X, Y, P = data["X"], data["Y"], data["params"]
    n = X.shape[0]
    W1, b1, W2, b2, W3, b3 = (P[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3"))
    H1, H2, out, d = np.empty((n, W1.shape[0])), np.empty((n, W2.shape[0])), np.empty((n, 1)), np.empty(n)
    state = {}

    def step():
        np.matmul(X, W1.T, out=H1); np.add(H1, b1, out=H1); np.maximum(H1, 0, out=H1)
        np.matmul(H1, W2.T, out=H2); np.add(H2, b2, out=H2); np.maximum(H2, 0, out=H2)
        np.matmul(H2, W3.T, out=out); np.add(out, b3, out=out)
        np.subtract(out[:, 0], Y, out=d)
        state["v"] = (d @ d) * (1.0 / n)

    return _value_impl(step, state)


def _replay_impl(loss, params, rebuild):
    """ad_magic's replay step: give every parameter new data (alternately its starting value
    and that + W6_DELTA, so every call changes it), then ``loss.forward()``. The reference
    is ``rebuild()``, the same loss built anew from the parameters' current data."""
    base = [np.array(p.data, copy=True) for p in params]
    values = (base, [b + W6_DELTA for b in base])
    if not all(v.ndim for v in base):
        values = tuple([float(v) for v in vs] for vs in values)  # scalars as python floats, as Tensor(float)
    state = {"i": 0, "v": float(loss.data)}

    def step():
        state["i"] ^= 1
        for p, v in zip(params, values[state["i"]]):
            p.data = v
        state["v"] = float(loss.forward().data)

    return Impl(step, lambda: {"loss": np.array(state["v"])},
                reference=lambda: {"loss": np.array(float(rebuild().data))})


def w6_replay_impl(engine, data):
    """W6b: ad_magic's loss.forward() replay of W1's scalar graph, built once."""
    if engine != SELF:
        raise NotApplicable  # no other engine replays a recorded graph
    X, Y = data["X"].tolist(), data["Y"].tolist()
    P = _scalar_params(data["params"], load(SELF)["Tensor"])

    def build():
        return _scalar_mlp_loss(P, X, Y, lambda a: a.relu())

    return _replay_impl(build(), _flat_scalars(P), build)


def w6_mlp_build_impl(engine, data):
    """W6c: W3's tensor-MLP loss built anew, forward only (graph recorded, never used)."""
    X, y, params = data["X"], data["y"], data["params"]
    if engine == FLOOR:
        return _mlp_floor_forward(data)
    m = load(engine)
    state = {}
    if engine == SELF:
        mse_loss = m["mse_loss"]
        model, _, Xt, yt = _ad_magic_mlp(m, data)

        def step():
            state["v"] = float(mse_loss(model(Xt), yt).data)
    elif engine == "torch":
        torch = m["torch"]
        model, Xt, yt = _torch_mlp(torch, data)
        mse = torch.nn.functional.mse_loss
        if mse(model(Xt), yt).grad_fn is None:
            raise RuntimeError("torch recorded no graph")

        def step():
            state["v"] = mse(model(Xt), yt).item()
    elif engine == "mygrad":
        mg, relu = m["mg"], m["relu"]
        P = {k: mg.Tensor(params[k].copy()) for k in MLP_KEYS}
        Xt, yt = mg.Tensor(X, constant=True), mg.Tensor(y, constant=True)

        def step():
            h = relu(Xt @ P["W1"] + P["b1"])
            state["v"] = mg.mean((h @ P["W2"] + P["b2"] - yt) ** 2).item()
    elif engine == "autograd":
        anp = m["anp"]

        def loss_fn(ps):
            W1, b1, W2, b2 = ps
            h = anp.maximum(anp.dot(X, W1) + b1, 0.0)
            return anp.mean((anp.dot(h, W2) + b2 - y) ** 2)

        trace = m["autograd"].make_vjp(loss_fn)
        ps = [params[k].copy() for k in MLP_KEYS]

        def step():
            _, state["v"] = trace(ps)
    else:
        raise NotApplicable
    return _value_impl(step, state)


def _mlp_floor_forward(data):
    """W3's forward by hand, in place into buffers allocated once."""
    X, y, P = data["X"], data["y"], data["params"]
    W1, b1, W2, b2 = (P[k] for k in MLP_KEYS)
    n = X.shape[0]
    H = np.empty((n, W1.shape[1]), dtype=data["dtype"])
    pred = np.empty((n, 1), dtype=data["dtype"])
    r = pred[:, 0]  # a view
    state = {}

    def step():
        np.matmul(X, W1, out=H); np.add(H, b1, out=H); np.maximum(H, 0, out=H)
        np.matmul(H, W2, out=pred); np.add(pred, b2, out=pred); np.subtract(pred, y, out=pred)
        state["v"] = float(r @ r) / n

    return _value_impl(step, state)


def w6_mlp_replay_impl(engine, data):
    """W6d: ad_magic's loss.forward() replay of W3's tensor-MLP loss, built once."""
    if engine != SELF:
        raise NotApplicable
    m = load(SELF)
    mse_loss = m["mse_loss"]
    model, ps, Xt, yt = _ad_magic_mlp(m, data)

    def build():
        return mse_loss(model(Xt), yt)

    return _replay_impl(build(), ps, build)


# --------------------------------------------------------------------------- the run

@dataclass
class Case:
    key: str        # row id, e.g. "W2 N=10⁵"
    label: str      # human description
    impl: object    # impl(engine, data) -> Impl
    data: object    # data, or a callable making it
    engines: tuple  # engines this workload applies to
    array: bool = False  # an array workload (1 thread, compared with the floor)


@dataclass
class Cell:
    timing: Timing | None = None
    note: str = ""       # why there is no timing (not installed, RecursionError, skipped…)
    grad_err: float | None = None
    grad_ok: bool | None = None


@dataclass
class Results:
    quick: bool
    engines: tuple
    cases: list = field(default_factory=list)
    cells: dict = field(default_factory=dict)   # (case.key, engine) -> Cell
    reference: dict = field(default_factory=dict)  # case.key -> engine used as gradient reference
    memory: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def cell(self, key, engine) -> Cell:
        return self.cells.setdefault((key, engine), Cell())

    def ms(self, key, engine):
        c = self.cells.get((key, engine))
        return c.timing.ms if c and c.timing else None

    def grad_failures(self, engine=SELF):
        return [k for (k, e), c in self.cells.items() if e == engine and c.grad_ok is False]


def _pow10(n):
    e = round(math.log10(n))
    sup = str(e).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
    return f"10{sup}" if 10 ** e == n else f"{n:,}"


def make_cases(quick=False):
    w1 = w1_data(quick)
    scalar_engines = (FLOOR, SELF, "micrograd", "autograd", "mygrad", "torch")
    tensor_engines = (FLOOR, SELF, "autograd", "mygrad", "torch")
    cases = [Case("W1", f"scalar MLP 2→16→16→1, ReLU, MSE over {len(w1['X'])} points ({w1['n_ops']:,} ops), fwd+bwd",
                  w1_impl, w1, scalar_engines)]
    for N in ((100, 1000) if quick else (10_000, 100_000, 1_000_000)):
        cases.append(Case(f"W2 N={_pow10(N)}", f"chain y = y*1.0001 + 0.0001, N = {_pow10(N)}, build+bwd",
                          w2_impl, w2_data(N), scalar_engines))
    w3, w4 = w3_data(quick), w4_data(quick)
    cases.append(Case("W3", f"MLP step {w3['X'].shape[1]}→{w3['params']['W1'].shape[1]}→1, "
                            f"X {w3['X'].shape[0]}×{w3['X'].shape[1]} f64, + SGD",
                      mlp_impl, w3, tensor_engines, array=True))
    cases.append(Case("W4", f"MLP step {w4['X'].shape[1]}→{w4['params']['W1'].shape[1]}→1, "
                            f"X {w4['X'].shape[0]}×{w4['X'].shape[1]} f32, + SGD",
                      mlp_impl, w4, tensor_engines, array=True))
    w5 = w5_data(quick)
    cases.append(Case("W5", f"{_pow10(w5['x'].size)}-vector through {W5_OPS} elementwise ops, sum, bwd (f64)",
                      w5_impl, w5, tensor_engines, array=True))
    cases.append(Case("W6a", f"W1's scalar MLP graph ({w1['n_ops']:,} ops) built anew, forward only",
                      w6_build_impl, w1, scalar_engines))
    cases.append(Case("W6b", "W1's graph replayed: new parameter data, then loss.forward()",
                      w6_replay_impl, w1, (SELF,)))
    cases.append(Case("W6c", f"W3's MLP {w3['X'].shape[1]}→{w3['params']['W1'].shape[1]}→1 "
                             f"(X {w3['X'].shape[0]}×{w3['X'].shape[1]} f64) built anew, forward only",
                      w6_mlp_build_impl, w3, tensor_engines, array=True))
    cases.append(Case("W6d", "W3's graph replayed: new parameter data, then loss.forward()",
                      w6_mlp_replay_impl, w3, (SELF,), array=True))
    return cases


def _grad_err(got, ref):
    """Largest |got - ref| over all arrays, relative to the largest |ref| of that array."""
    worst = 0.0
    for k, r in ref.items():
        g = np.asarray(got[k], dtype=np.float64)
        r = np.asarray(r, dtype=np.float64)
        if g.shape != r.shape:
            return math.inf
        scale = max(float(np.max(np.abs(r))), 1e-300)
        worst = max(worst, float(np.max(np.abs(g - r))) / scale)
    return worst


def _tolerance(case):
    dt = case.data.get("dtype") if isinstance(case.data, dict) else None
    return 2e-3 if dt == np.float32 else 1e-8


def _short_error(e: BaseException) -> str:
    name = type(e).__name__
    if isinstance(e, RecursionError):
        return "RecursionError"
    msg = str(e).splitlines()[0] if str(e) else ""
    return f"{name}: {msg[:60]}" if msg else name


def run_workloads(quick=False, peers=PEERS, timing=True, only=None, log=None, slow_limit_s=SLOW_LIMIT_S):
    """Run every workload for the floor, ad_magic and ``peers``; return a Results.

    ``only``: an iterable of row-key prefixes ("W1", "W2", …) to restrict the run.
    ``timing=False`` only checks gradients (one step each) -- what the smoke test does.
    """
    log = log or (lambda *a: None)
    engines = (FLOOR, SELF) + tuple(p for p in PEERS if p in peers)
    res = Results(quick=quick, engines=engines)
    res.info = machine_info()
    res.info["versions"] = {}
    for e in engines:
        try:
            load(e)
            res.info["versions"][e] = engine_version(e)
        except NotInstalled as err:
            res.notes.append(f"{TITLES[e]}: {err} — skipped.")
    res.info["blas"] = _blas_info()

    limiter = _one_thread()
    if timing:
        # What exists now (imported modules, data) goes to the permanent generation, so
        # that each engine's garbage-collection cost depends on its own objects and not on
        # which peers happen to be imported in this process.
        gc.collect()
        gc.freeze()
    try:
        cases = [c for c in make_cases(quick) if not only or any(c.key.startswith(o) for o in only)]
        res.cases = cases
        last_w2 = {}  # engine -> (N, seconds per run) or (N, error) from the previous chain length
        for case in cases:
            log(f"## {case.key}: {case.label}")
            impls, grads, own_refs = {}, {}, {}
            # 1. one step each, gradients compared before any timing
            for e in engines:
                cell = res.cell(case.key, e)
                if e not in case.engines:
                    cell.note = "n/a"
                    continue
                try:
                    load(e)
                except NotInstalled:
                    cell.note = "not installed"
                    continue
                if case.key.startswith("W2") and e in last_w2:
                    prevN, prev = last_w2[e]
                    N = case.data["N"]
                    if isinstance(prev, str):
                        cell.note = f"not run ({prev} at N={_pow10(prevN)})"
                        continue
                    if prev * (N / prevN) > slow_limit_s:
                        cell.note = (f"skipped: N={_pow10(prevN)} took {prev:.1f} s, "
                                     f"N={_pow10(N)} would take > {slow_limit_s:.0f} s")
                        continue
                try:
                    impl = case.impl(e, case.data)
                    gc.collect()
                    first = timed(impl.step)  # (wall, cpu)
                    grads[e] = impl.grads()
                    if impl.reference is not None:
                        own_refs[e] = impl.reference()
                    impls[e] = (impl, first)
                    log(f"  {e}: first step {first[0] * 1e3:.1f} ms")
                except NotApplicable:
                    cell.note = "n/a"
                except Exception as err:  # a peer failing shows in its cell
                    cell.note = _short_error(err)
                    if case.key.startswith("W2"):
                        last_w2[e] = (case.data["N"], cell.note)
                    log(f"  {e}: {cell.note}")
                    if e in (SELF, FLOOR):
                        res.notes.append(f"{case.key} {e} failed:\n```\n{traceback.format_exc(limit=6)}```")
                    if isinstance(err, RecursionError):
                        gc.collect()
            ref = "torch" if "torch" in grads else FLOOR if FLOOR in grads else None
            res.reference[case.key] = REBUILT if own_refs else ref
            refs = {e: grads[ref] for e in grads} if ref is not None else {}
            refs.update(own_refs)  # an engine's own reference (W6b: the graph built anew) comes first
            if refs:
                for e, g in grads.items():
                    if e not in refs:
                        continue
                    cell = res.cell(case.key, e)
                    try:
                        cell.grad_err = _grad_err(g, refs[e])
                    except Exception:
                        cell.grad_err = math.inf
                    cell.grad_ok = cell.grad_err <= _tolerance(case)
                    if not cell.grad_ok:
                        log(f"  GRADIENT MISMATCH {e} vs {REBUILT if e in own_refs else ref}: {cell.grad_err:.3g}")
            if case.key.startswith("W2") and "y0" in grads.get(FLOOR, {}):
                exact = A_CHAIN ** case.data["N"]
                assert abs(float(grads[FLOOR]["y0"]) - exact) <= 1e-8 * exact, "W2 floor is wrong"
            del grads, own_refs
            # 2. timing: engines interleaved in rounds, CPU-time medians (see measure_rounds)
            if timing and impls:
                if quick:
                    opts = dict(rounds=2, min_runs=4, max_runs=20, budget_s=0.3, long_budget_s=3.0)
                elif case.array:
                    # array steps leave no cyclic garbage: interleave finely (A B C A B C …)
                    # so that memory-bandwidth contention from neighbours hits all alike
                    opts = dict(rounds=15, min_runs=15, max_runs=150, budget_s=3.0, long_budget_s=25.0)
                else:
                    opts = dict(rounds=3, min_runs=9, max_runs=150, budget_s=3.0, long_budget_s=25.0)
                got = measure_rounds({e: impl.step for e, (impl, _) in impls.items()},
                                     {e: f for e, (_, f) in impls.items()}, **opts)
                for e, t in got.items():
                    res.cell(case.key, e).timing = t
                    log(f"  {e}: median {t.ms:.3f} ms CPU, {t.wall_ms:.3f} ms wall, over {t.runs} runs")
            for e, (_, f) in impls.items():
                if case.key.startswith("W2"):
                    t = res.cell(case.key, e).timing
                    last_w2[e] = (case.data["N"], t.wall_median_s if t else f[0])
            impls.clear()
            gc.collect()
    finally:
        limiter()
        if timing:
            gc.unfreeze()
    return res


def _one_thread():
    """Limit every BLAS/OpenMP pool to one thread; returns an undo function."""
    try:
        from threadpoolctl import threadpool_limits

        ctl = threadpool_limits(limits=1)
        return ctl.restore_original_limits
    except ImportError:
        return lambda: None


def _blas_info():
    try:
        from threadpoolctl import threadpool_info

        out = []
        for d in threadpool_info():
            if d.get("user_api") == "blas":
                out.append(f"{d.get('internal_api')} {d.get('version')} ({d.get('architecture')}, "
                           f"{d.get('num_threads')} threads at import)")
        return "; ".join(out) or "?"
    except ImportError:
        return "threadpoolctl not installed: thread limits rely on OMP/OPENBLAS/MKL_NUM_THREADS"


# --------------------------------------------------------------------------- memory (subprocess)

def memory_child(engine, N, use_tracemalloc):
    """Run once in a fresh process: build the W2 chain of length N and backward."""
    impl = w2_impl(engine, w2_data(N))
    gc.collect()
    if use_tracemalloc:
        import tracemalloc

        tracemalloc.start()
        impl.step()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out = {"tracemalloc_peak_mib": peak / 2**20}
    else:
        rss0 = current_rss_mib()
        t0 = time.perf_counter()
        impl.step()
        out = {"seconds": time.perf_counter() - t0, "rss_before_mib": rss0, "rss_peak_mib": peak_rss_mib()}
        if rss0 is not None and out["rss_peak_mib"] is not None:
            out["rss_delta_mib"] = out["rss_peak_mib"] - rss0
    out["grad_ok"] = abs(float(impl.grads()["y0"]) - A_CHAIN ** N) <= 1e-8 * A_CHAIN ** N
    print(json.dumps(out))


def measure_memory(engine, N, timeout=600):
    """Peak memory of one W2 run (build + backward) in fresh subprocesses: the peak RSS
    rise over the process's baseline, and tracemalloc's peak of traced allocations."""
    result = {"engine": engine, "N": N}
    for flag in (False, True):
        cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", engine, str(N)]
        if flag:
            cmd.append("--tracemalloc")
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            result["error"] = f"timed out after {timeout} s"
            return result
        if p.returncode != 0:
            result["error"] = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
            return result
        result.update(json.loads(p.stdout.strip().splitlines()[-1]))
    return result


# --------------------------------------------------------------------------- report

def _cell_text(res, key, e):
    c = res.cells.get((key, e))
    if c is None:
        return "—"
    if c.timing is None:
        return "—" if c.note in ("n/a", "") else c.note
    s = fmt_ms(c.timing.ms)
    if c.timing.runs < 3:
        s += f" ({c.timing.runs} run{'s' if c.timing.runs > 1 else ''})"
    if c.grad_ok is False:
        s += " ⚠ grad mismatch"
    return s


def targets(res):
    rows = []

    def ratio(key, a, b):
        x, y = res.ms(key, a), res.ms(key, b)
        return None if x is None or y is None else x / y

    for case in res.cases:
        k = case.key
        if k == "W1" or k.startswith("W2"):
            for peer in ("micrograd", "torch"):
                r = ratio(k, SELF, peer)
                if r is not None:
                    rows.append((k, f"faster than {TITLES[peer]}", fmt_ratio(r), "met" if r < 1 else "**missed**"))
                elif res.ms(k, SELF) is not None and (k, peer) in res.cells and res.cells[(k, peer)].note:
                    note = res.cells[(k, peer)].note
                    err = "RecursionError" if "RecursionError" in note else note
                    status = f"met ({TITLES[peer]} fails: {err})" if "Error" in note else f"no comparison ({note})"
                    rows.append((k, f"faster than {TITLES[peer]}", "—", status))
        elif k == "W3":
            r = ratio(k, SELF, "torch")
            if r is not None:
                rows.append((k, "no slower than PyTorch", fmt_ratio(r), "met" if r <= 1 else "**missed**"))
        elif k in ("W4", "W5"):
            lim = 1.15 if k == "W4" else 1.3
            r = ratio(k, SELF, FLOOR)
            if r is not None:
                rows.append((k, f"within {lim}× of NumPy by hand", fmt_ratio(r), "met" if r <= lim else "**missed**"))
    return rows


def render(res) -> str:
    out = []
    eng = [e for e in res.engines]
    info = res.info
    vers = ", ".join(f"{TITLES[e].split(' (')[0]} {v}" for e, v in info.get("versions", {}).items() if e != FLOOR)
    out.append(f"## Engine speed{' (quick smoke run: small sizes, few repeats)' if res.quick else ''}\n")
    out.append(f"Median CPU ms per step (forward + backward; W3/W4 also the SGD update; W6 forward only): "
               f"the process's CPU "
               f"time, engines timed in interleaved rounds, so that busy neighbours on a shared machine "
               f"skew no column (wall-clock medians below). "
               f"Machine: {info.get('cpu')}, {info.get('cpus')} CPUs, Python {info.get('python')}, "
               f"NumPy {np.__version__} ({info.get('blas')}); {vers}. "
               f"Every engine runs with 1 thread (threadpoolctl, torch.set_num_threads(1), "
               f"OMP/MKL/OPENBLAS_NUM_THREADS=1); "
               f"OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE: "
               f"{'set' if any(v in os.environ for v in OPENBLAS_SLOW_VARS) else 'unset'}.\n")
    headers = ["workload"] + [TITLES[e] for e in eng]
    rows = []
    for case in res.cases:
        rows.append([f"**{case.key}** {case.label.split(', N =')[0] if case.key.startswith('W2') else case.label}"]
                    + [_cell_text(res, case.key, e) for e in eng])
    out.append(md_table(headers, rows))

    rows = []
    for case in res.cases:
        row = [case.key]
        for e in eng:
            c = res.cells.get((case.key, e))
            row.append(fmt_ms(c.timing.wall_ms) if c and c.timing else "—")
        rows.append(row)
    out.append("\n<details><summary>Wall-clock medians (ms)</summary>\n")
    out.append(md_table(["workload"] + [TITLES[e] for e in eng], rows))
    out.append("\n</details>")

    peers = [e for e in eng if e not in (FLOOR, SELF)]
    if peers:
        out.append("\n**ad_magic / peer** (below 1× = ad_magic faster):\n")
        rows = []
        for case in res.cases:
            row = [case.key]
            for p in peers:
                a, b = res.ms(case.key, SELF), res.ms(case.key, p)
                row.append(fmt_ratio(a / b) if a is not None and b is not None else "—")
            rows.append(row)
        out.append(md_table(["workload"] + [TITLES[p] for p in peers], rows))

    out.append("\n**every column / NumPy by hand** (the floor; for W1 the floor is the same MLP "
               "vectorised over the batch of points, for W2 a python-float loop):\n")
    rows = []
    for case in res.cases:
        row = [case.key]
        for e in eng:
            if e == FLOOR:
                continue
            a, b = res.ms(case.key, e), res.ms(case.key, FLOOR)
            row.append(fmt_ratio(a / b) if a is not None and b is not None else "—")
        rows.append(row)
    out.append(md_table(["workload"] + [TITLES[e] for e in eng if e != FLOOR], rows))

    pairs = [(b, r, what) for b, r, what in W6_PAIRS if any(c.key == b for c in res.cases)
             and res.ms(r, SELF) is not None]
    if pairs:
        out.append("\n**Replay vs. rebuild** (W6): ad_magic's `loss.forward()` replay / each column's building "
                   "the same graph anew, forward only (below 1× = the replay is faster):\n")
        rows = []
        for b, r, what in pairs:
            row = [f"{r} / {b}, {what}"]
            for e in eng:
                x = res.ms(b, e)
                row.append(fmt_ratio(res.ms(r, SELF) / x) if x is not None else "—")
            rows.append(row)
        out.append(md_table(["workload"] + [TITLES[e] for e in eng], rows))

    t = targets(res)
    if t:
        out.append("\n**Targets** (reported, not asserted):\n")
        out.append(md_table(["workload", "target", "ad_magic ratio", "status"], t))

    out.append("\n**Gradient check** before timing: largest |g − g_ref| / max|g_ref| per workload "
               "(reference: PyTorch, else the NumPy floor; tolerance 1e-8 f64, 2e-3 f32"
               + ("; W6, forward only: the loss value, and a replayed loss against the same graph built anew "
                  "from the same data" if any(c.key.startswith("W6") for c in res.cases) else "") + "):\n")
    rows = []
    for case in res.cases:
        row = [f"{case.key} (vs {res.reference.get(case.key) or '—'})"]
        for e in eng:
            c = res.cells.get((case.key, e))
            if c is None or c.grad_err is None:
                row.append("—")
            else:
                row.append(f"{c.grad_err:.1e}" + ("" if c.grad_ok else " **FAIL**"))
        rows.append(row)
    out.append(md_table(["workload"] + [TITLES[e] for e in eng], rows))

    if res.memory:
        m = res.memory
        if "error" in m:
            out.append(f"\n**Memory**: {TITLES[m['engine']]} W2 at N={_pow10(m['N'])}: failed ({m['error']}).")
        else:
            out.append(
                f"\n**Memory**: {TITLES[m['engine']]}, W2 chain at N={_pow10(m['N'])} ({2 * m['N']:,} ops), build + "
                f"backward in a fresh process: peak RSS rise {m.get('rss_delta_mib', float('nan')):,.0f} MiB, "
                f"tracemalloc peak {m.get('tracemalloc_peak_mib', float('nan')):,.0f} MiB "
                f"(target: well under 1 GiB; {m.get('seconds', float('nan')):.1f} s, gradient "
                f"{'correct' if m.get('grad_ok') else 'WRONG'}).")
    if res.notes:
        out.append("\nNotes:\n")
        out.extend(f"- {n}" for n in res.notes)
    return "\n".join(out) + "\n"


def to_json(res) -> dict:
    return {
        "quick": res.quick, "info": res.info, "memory": res.memory, "notes": res.notes,
        "cases": [{"key": c.key, "label": c.label} for c in res.cases],
        "cells": {f"{k}|{e}": {"ms": c.timing.ms if c.timing else None, "runs": c.timing.runs if c.timing else 0,
                               "wall_ms": c.timing.wall_ms if c.timing else None,
                               "note": c.note, "grad_err": c.grad_err, "grad_ok": c.grad_ok}
                  for (k, e), c in res.cells.items()},
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke run)")
    ap.add_argument("--peers", default=",".join(PEERS),
                    help=f"comma-separated peers to run beside ad_magic (default: {','.join(PEERS)}; '' for none)")
    ap.add_argument("--only", default="", help="comma-separated workload prefixes, e.g. W1,W2")
    ap.add_argument("--no-memory", action="store_true", help="skip the W2 peak-memory subprocess")
    ap.add_argument("--json", metavar="PATH", help="also write raw results as JSON")
    ap.add_argument("--memory-child", nargs=2, metavar=("ENGINE", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--tracemalloc", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]), args.tracemalloc)
        return 0

    peers = tuple(p for p in args.peers.split(",") if p)
    unknown = set(peers) - set(PEERS)
    if unknown:
        ap.error(f"unknown peer(s): {', '.join(sorted(unknown))}; choose from {', '.join(PEERS)}")
    only = tuple(o for o in args.only.split(",") if o)
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    res = run_workloads(quick=args.quick, peers=peers, only=only, log=log)
    if not args.no_memory and (not only or any("W2".startswith(o) or o.startswith("W2") for o in only)):
        try:
            load(SELF)
            N = 10_000 if args.quick else 1_000_000
            log(f"## memory: ad_magic W2 N={N}")
            res.memory = measure_memory(SELF, N)
        except NotInstalled:
            pass
    text = render(res)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(to_json(res), f, indent=1)
    bad = res.grad_failures(SELF)
    if bad:
        print(f"ad_magic gradients disagree with the reference on: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    reexec_in_bench_env()
    sys.exit(main())
