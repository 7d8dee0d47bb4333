"""NaN and inf explained by ad_magic: one warning of our own, at the user's line, naming the
op and its input, instead of NumPy's warnings from inside the op registry; the same
sentence at the stepper's step and in the node's card."""
import warnings

import numpy as np
import pytest

from ad_magic import Tensor
from ad_magic.engine.non_finite import NonFiniteWarning, explain
from ad_magic.widgets.stepper import BackwardStepper


def caught(f):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = f()
    return result, seen


def test_log_of_minus_one_is_one_sentence_at_the_user_s_line():
    y, seen = caught(lambda: Tensor(-1.0).log())
    assert np.isnan(y.data)
    assert len(seen) == 1, [str(w.message) for w in seen]
    warning = seen[0]
    assert issubclass(warning.category, NonFiniteWarning) and issubclass(warning.category, RuntimeWarning)
    assert warning.filename == __file__, warning.filename          # the user's line, not ops.py
    text = str(warning.message)
    assert text.startswith("log got -1.0: the result is nan;") and "positive numbers" in text


@pytest.mark.parametrize("make, words", [
    (lambda: 1 / Tensor([1.0, 0.0, 2.0]), ["div got 1.0 and 0.0 at index 1", "result is inf"]),
    (lambda: Tensor(0.0).log(), ["log got 0.0", "result is -inf"]),
    (lambda: Tensor(-8.0) ** 0.5, ["pow got -8.0 and 0.5", "result is nan"]),
    (lambda: Tensor(1000.0).exp(), ["exp got 1000.0", "result is inf", "overflows"]),
    (lambda: Tensor([[1.0, -2.0], [3.0, 4.0]]).log(), ["log got -2.0 at index (0, 1)"]),
])
def test_each_op_that_can_leave_the_reals_names_its_input(make, words):
    _, seen = caught(make)
    assert [w.category for w in seen] == [NonFiniteWarning]
    assert all(word in str(seen[0].message) for word in words), str(seen[0].message)


def test_numpy_s_errstate_is_honoured_and_a_nan_input_is_not_news():
    with np.errstate(all="ignore"):
        _, seen = caught(lambda: Tensor(-1.0).log())
    assert seen == []
    with np.errstate(all="raise"), pytest.raises(FloatingPointError, match="log got -1.0"):
        Tensor(-1.0).log()
    _, seen = caught(lambda: Tensor(np.nan).log() + Tensor(2.0).log())
    assert seen == []
    assert explain("mul", [np.float64(1e308), np.float64(10.0)], np.float64(np.inf)) is None   # not one of ours


def test_a_replay_that_leaves_the_reals_is_told_at_the_user_s_line():
    x = Tensor(2.0)
    y = x.log()
    x.data = np.array(-3.0)
    _, seen = caught(lambda: y.forward())
    assert len(seen) == 1 and seen[0].filename == __file__ and "log got -3.0" in str(seen[0].message)


def test_the_stepper_says_the_same_sentence_at_the_step_and_in_the_card():
    x = Tensor(-1.0, name="x")
    (h, y), _ = caught(lambda: (lambda h: (h, h * 2))(x.log()))
    stepper, seen = caught(lambda: BackwardStepper(y, names={h: "h", y: "y"}, forward=True))
    assert seen == [], [str(w.message) for w in seen]           # told once already, when the cell ran
    sentence = explain("log", [np.float64(-1.0)], np.float64(np.nan))
    captions = stepper.timeline.states
    step = next(k for k, s in enumerate(captions) if s.caption.startswith("log:"))
    assert sentence in captions[step].caption
    last = stepper.timeline.last
    assert sentence in stepper.timeline.card_text(h, last) and sentence not in stepper.timeline.card_text(x, last)
    assert sentence in stepper.timeline.card_text(h, step)
    assert sentence not in stepper.timeline.card_text(h, 0)      # not before the value exists
