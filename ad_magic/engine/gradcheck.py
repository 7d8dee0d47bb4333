"""gradcheck: compare backpropagation's gradients with central finite differences."""

from __future__ import annotations

import numpy as np

from .formatting import a_type, escape, html_table, text_table
from .tensor import Tensor, enable_grad, no_grad

__all__ = ["gradcheck", "GradcheckReport", "numerical_gradient"]


def numerical_gradient(f, tensors, target, eps=1e-6, weights=None):
    """∂f/∂target by central differences: (f(x + eps) - f(x - eps)) / (2·eps) per element.

    Runs in float64 whatever the tensor's dtype (restored afterwards). A non-scalar
    output is reduced with `weights` (sum of output·weights).
    """
    original = target._data
    x = np.array(original, dtype=np.float64)
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    try:
        target._data = x  # our own float64 copy, nudged in place below
        with no_grad():
            for i in range(flat.size):
                keep = flat[i]
                flat[i] = keep + eps
                plus = _scalar(f(*tensors), weights)
                flat[i] = keep - eps
                minus = _scalar(f(*tensors), weights)
                flat[i] = keep
                gflat[i] = (plus - minus) / (2 * eps)
    finally:
        target._data = original
    return grad


def _scalar(out, weights):
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: the function must return a Tensor, got {type(out).__name__}")
    data = np.asarray(out._data, dtype=np.float64)
    return float(data.sum() if weights is None else (data * weights).sum())


class GradcheckReport:
    """The result of `gradcheck`: one row per input, truthy when every row passes.

    Each row holds the input's label and shape, the backprop and finite-difference
    gradients, the largest absolute error, and the largest relative error
    |backprop - numeric| / max(|backprop|, |numeric|) over elements whose size exceeds atol.
    """

    def __init__(self, rows, atol, rtol):
        self.rows, self.atol, self.rtol = rows, atol, rtol

    @property
    def passed(self) -> bool:
        return all(row["passed"] for row in self.rows)

    def __bool__(self):
        return self.passed

    @property
    def max_rel_error(self):
        """{label: largest relative error} per input."""
        return {row["label"]: row["max_rel_error"] for row in self.rows}

    def _table(self):
        header = ["input", "shape", "max abs error", "max rel error", ""]
        rows = [[str(r["label"]), str(r["shape"]), f"{r['max_abs_error']:.2e}", f"{r['max_rel_error']:.2e}",
                 "ok" if r["passed"] else "MISMATCH"] for r in self.rows]
        return header, rows

    def _title(self):
        return f"gradcheck {'passed' if self.passed else 'FAILED'} (atol={self.atol:g}, rtol={self.rtol:g})"

    def __repr__(self):
        try:
            return self._title() + "\n" + text_table(*self._table())
        except Exception as exc:  # a repr never raises
            return f"<GradcheckReport (repr failed: {type(exc).__name__})>"

    def _repr_html_(self):
        return f"<p>{escape(self._title())}</p>" + html_table(*self._table(), css_class="ad-magic-gradcheck")


def gradcheck(f, *tensors, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check the gradients backward() computes for f(*tensors) against finite differences.

    `f` takes the tensors and returns a Tensor. A non-scalar output is checked through
    a fixed random projection sum(out · w). Returns a `GradcheckReport` (truthy when
    every gradient matches within atol + rtol·|numeric|). Costs two evaluations of f
    per input element, so keep the inputs small.
    """
    if not callable(f):
        raise TypeError(f"gradcheck: the first argument must be a function, got {type(f).__name__}")
    if not tensors:
        raise TypeError("gradcheck: give at least one Tensor to check")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"gradcheck: input {i} is {a_type(t)}, not a Tensor")
        if not t.requires_grad:
            raise ValueError(f"gradcheck: input {i} has requires_grad=False, so it has no gradient to check")
    with enable_grad():  # the graph is needed even when called inside no_grad()
        out = f(*tensors)
        if not isinstance(out, Tensor):
            raise TypeError(f"gradcheck: the function must return a Tensor, got {type(out).__name__}")
        weights = None
        if out.size != 1:
            weights = np.random.default_rng(seed).standard_normal(out.shape)
        for t in tensors:
            t.grad = None
        if out.requires_grad:
            out.backward(None if weights is None else weights)
    rows = []
    for i, t in enumerate(tensors):
        analytic = np.zeros(t.shape) if t.grad is None else np.asarray(t.grad, dtype=np.float64)
        numeric = numerical_gradient(f, tensors, t, eps=eps, weights=weights)
        diff = np.abs(analytic - numeric)
        scale = np.maximum(np.abs(analytic), np.abs(numeric))
        significant = scale > atol
        rel = float((diff[significant] / scale[significant]).max()) if significant.any() else 0.0
        rows.append({
            "label": t.name or f"input {i}",
            "shape": t.shape,
            "backprop": analytic,
            "numeric": numeric,
            "max_abs_error": float(diff.max()) if diff.size else 0.0,
            "max_rel_error": rel,
            "passed": bool(np.all(diff <= atol + rtol * np.abs(numeric))),
        })
    return GradcheckReport(rows, atol, rtol)
