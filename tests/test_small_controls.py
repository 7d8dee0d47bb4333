"""Small things a learner reads on the explorer's controls: the lr slider's readout and the
header write one learning rate the same way; the iteration player says what its buttons do."""
import math

from ad_magic import Tensor
from ad_magic.widgets import DescentExplorer
from ad_magic.widgets.explorer import PLAY_TOOLTIP
from ad_magic.widgets.race import LR_READOUT, format_lr


def bowl():
    a, b = Tensor(1.0), Tensor(-2.0)
    return a, b, (a - 0.5) ** 2 + (b + 1.0) ** 2


def test_the_lr_slider_s_readout_and_the_header_write_the_same_number():
    a, b, loss = bowl()
    e = DescentExplorer.compare(loss, [a, b], optimizers=["sgd", "adam"], lr=0.1, steps=5)
    slider = e.hyperparameters["sgd"]["lr"]
    assert slider.readout_format == LR_READOUT
    slider.value = 10 ** 0.25                          # 1.778..., a value the log slider lands on
    header = e.header.value
    assert f"lr={format_lr(slider.value)}" in header and "lr=1.78" in header, header
    # format_lr writes what d3-format's ".3" writes: toPrecision(3) without trailing zeros
    assert [format_lr(v) for v in (1.7782794, 0.1, 1e-5, 0.000281838, 1780.0, 2.0, 10 ** -2.7, 3.16e-7)] == [
        "1.78", "0.1", "0.00001", "0.000282", "1.78e+3", "2", "0.002", "3.16e-7"]
    assert all(math.isclose(float(format_lr(v)), v, rel_tol=5e-3) for v in (3.3e-7, 0.0123456, 42.42))


def test_the_play_buttons_have_a_tooltip():
    a, b, loss = bowl()
    e = DescentExplorer(loss, [a, b], lr=0.1, steps=5)
    assert e.play.tooltip == PLAY_TOOLTIP
    assert all(word in PLAY_TOOLTIP for word in ("play", "stop", "loop"))
