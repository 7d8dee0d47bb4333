"""NaN and inf explained by ad_magic, not by NumPy: which operation got which input.

``Tensor(-1.0).log()`` would print NumPy's two ``RuntimeWarning``\\ s, pointing into the op
registry. The operations that can leave the real numbers from finite inputs (log, div,
pow, exp) compute with NumPy's warnings silenced instead and, when the result holds a NaN
or an inf that the inputs did not, say so in one sentence — :func:`explain` — as a
:class:`NonFiniteWarning` pointing at the user's line. NumPy's own setting is honoured
(``np.errstate(all="ignore")`` keeps it quiet, ``"raise"`` raises ``FloatingPointError``
with the sentence). The stepper shows the same sentence at the step and in the card.
"""
from __future__ import annotations

import math
import os
import sys
import warnings

import numpy as np

from .formatting import format_number

__all__ = ["NonFiniteWarning", "explain", "explained"]

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # .../ad_magic

# Why each op leaves the reals, in words a learner reads after the input.
_WHY = {
    "log": "log is defined for positive numbers only (log(0) = -inf, log of a negative number is nan)",
    "div": "a division by zero gives inf (or nan for 0 / 0)",
    "pow": "a negative number to a fractional power is nan, and 0 to a negative power is inf",
    "exp": "exp overflows the float type (above about 709.78 in float64, 88.72 in float32)",
}


class NonFiniteWarning(RuntimeWarning):
    """An operation of ad_magic made a NaN or an inf from finite inputs (the message says
    which op and which input)."""


def _finite(x) -> bool:
    if np.ndim(x) == 0:
        return math.isfinite(x)
    return bool(np.isfinite(x).all())


def _shown(x) -> str:
    return format_number(float(x))


def explain(name, datas, out) -> str | None:
    """One sentence on the first entry of ``out`` that is NaN or inf though every input is
    finite there — ``log got -1.0: the result is nan; log is defined for positive numbers
    only (…)`` — or None when there is none (or the op is not one of log, div, pow, exp)."""
    if name not in _WHY or _finite(out) or not all(_finite(d) for d in datas):
        return None
    out = np.asarray(out)
    bad = np.argwhere(~np.isfinite(out))
    index = tuple(int(i) for i in bad[0]) if bad.size else ()
    values = [np.broadcast_to(np.asarray(d), out.shape)[index] for d in datas]
    got = " and ".join(_shown(v) for v in values)
    where = f" at index {index if len(index) > 1 else index[0]}" if index else ""
    result = "nan" if np.isnan(out[index]) else ("inf" if out[index] > 0 else "-inf")
    return f"{name} got {got}{where}: the result is {result}; {_WHY[name]}."


def _user_stacklevel() -> int:
    """The stack level of the first frame outside ad_magic: the user's line."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def explained(name, forward):
    """``forward`` computed with NumPy's floating-point warnings silenced; a NaN or inf it
    makes from finite inputs is reported with :func:`explain`, as NumPy's ``errstate``
    for that kind of result asks (ignore, a warning of ours at the user's line, or raise)."""

    def compute(*datas):
        with np.errstate(all="ignore"):
            out = forward(*datas)
        if _finite(out):
            return out
        sentence = explain(name, datas, out)
        if sentence is not None:
            # NumPy's category for it (errstate's setting for that category decides)
            category = "invalid" if np.isnan(out).any() else "over" if name == "exp" else "divide"
            setting = np.geterr()[category]
            if setting == "raise":
                raise FloatingPointError(sentence)
            if setting != "ignore":
                warnings.warn(NonFiniteWarning(sentence), stacklevel=_user_stacklevel())
        return out

    compute.__name__ = getattr(forward, "__name__", name)
    compute.__wrapped__ = forward
    return compute
