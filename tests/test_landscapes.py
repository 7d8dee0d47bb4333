"""ad_magic.landscapes: each landscape is a function of Tensors whose known minima are
stationary (central finite differences) and reachable by gradient descent."""
from __future__ import annotations

import numpy as np
import pytest

from ad_magic import Tensor, gradcheck
from ad_magic.landscapes import LANDSCAPES, Landscape, beale, himmelblau, ill_conditioned, rosenbrock, saddle
from ad_magic.optim import descend

H = 1e-6


def numeric_gradient(landscape, point):
    """Central differences of the landscape at ``point``, on plain floats (not the engine)."""
    x, y = point
    return np.array([(landscape(x + H, y) - landscape(x - H, y)) / (2 * H),
                     (landscape(x, y + H) - landscape(x, y - H)) / (2 * H)], dtype=float)


@pytest.mark.parametrize("name", LANDSCAPES)
def test_known_minima_have_zero_gradient_and_the_lowest_value(name):
    landscape = LANDSCAPES[name]
    assert landscape.minima
    for point in landscape.minima + landscape.saddle_points:
        assert np.abs(numeric_gradient(landscape, point)).max() < 1e-5, point
    for point in landscape.minima:
        assert float(landscape(*point)) == pytest.approx(landscape.minimum_value, abs=1e-9)
    # nothing on a grid over the frame is lower than the minima
    (x0, x1), (y0, y1) = landscape.frame
    gx, gy = np.meshgrid(np.linspace(x0, x1, 81), np.linspace(y0, y1, 81))
    assert landscape(gx, gy).min() >= landscape.minimum_value - 1e-9


@pytest.mark.parametrize("name", LANDSCAPES)
def test_the_engine_gradient_matches_finite_differences(name):
    landscape = LANDSCAPES[name]
    x, y = landscape.tensors((0.3, -0.7))
    report = gradcheck(lambda a, b: landscape(a, b), x, y)
    assert report, report
    loss = landscape(x, y)
    loss.backward()
    assert np.allclose([float(x.grad), float(y.grad)], numeric_gradient(landscape, (0.3, -0.7)), rtol=1e-5)


# For each landscape: an optimizer, learning rate and step count that reach a minimum
# from the landscape's own start.
RECIPES = {
    "rosenbrock": ("adam", 0.05, 3000),
    "beale": ("adam", 0.05, 3000),
    "himmelblau": ("sgd", 0.01, 2000),
    "ill_conditioned": ("momentum", 0.1, 500),
    "saddle": ("sgd", 0.1, 500),
}


@pytest.mark.parametrize("name", LANDSCAPES)
def test_descent_from_the_start_reaches_a_known_minimum(name):
    landscape = LANDSCAPES[name]
    optimizer, lr, steps = RECIPES[name]
    x, y = landscape.tensors()
    history = descend(landscape(x, y), [x, y], optimizer, lr=lr, steps=steps)
    assert history.stopped is None
    end = np.array([float(x.data), float(y.data)])
    distance = min(np.hypot(*(end - np.array(m))) for m in landscape.minima)
    assert distance < 1e-3, (end, landscape.minima)
    assert history.losses[-1] < history.losses[0]


def test_starting_on_the_saddles_ridge_ends_on_the_saddle():
    x, y = saddle.tensors((1.5, 0.0))
    descend(saddle(x, y), [x, y], "sgd", lr=0.1, steps=300)
    assert abs(float(x.data)) < 1e-6 and float(y.data) == 0.0   # a stationary point, not a minimum


def test_the_condition_number_is_the_ratio_of_curvatures():
    for kappa in (1.0, 10.0, 250.0):
        landscape = ill_conditioned(condition=kappa)
        assert landscape.parameters == {"condition": kappa} and landscape.lr == pytest.approx(1 / kappa)
        h = 1e-3
        fxx = (landscape(h, 0) - 2 * landscape(0, 0) + landscape(-h, 0)) / h ** 2
        fyy = (landscape(0, h) - 2 * landscape(0, 0) + landscape(0, -h)) / h ** 2
        assert fyy / fxx == pytest.approx(kappa, rel=1e-6)
    x, y = Tensor(2.0), Tensor(1.0)
    assert float(ill_conditioned(x, y, condition=4.0).data) == pytest.approx(0.5 * (4 + 4))


def test_more_ill_conditioned_means_slower_plain_descent():
    steps = []
    for kappa in (2.0, 50.0):
        landscape = ill_conditioned(condition=kappa)
        x, y = landscape.tensors()
        h = descend(landscape(x, y), [x, y], "sgd", lr=landscape.lr, steps=400)
        steps.append(next(k for k, v in enumerate(h.losses) if v < 1e-6))
    assert steps[1] > 5 * steps[0]


@pytest.mark.parametrize("landscape", [rosenbrock, beale, himmelblau, saddle, ill_conditioned()])
def test_arrays_in_arrays_out_and_tensors_in_a_scalar_tensor_out(landscape):
    gx, gy = np.meshgrid(np.linspace(-1, 1, 5), np.linspace(-1, 1, 4))
    values = landscape(gx, gy)
    assert values.shape == (4, 5)
    assert values[2, 3] == pytest.approx(float(landscape(Tensor(gx[2, 3]), Tensor(gy[2, 3])).data))
    (x0, x1), (y0, y1) = landscape.frame
    sx, sy = landscape.start
    assert x0 < sx < x1 and y0 < sy < y1
    assert all(x0 < mx < x1 and y0 < my < y1 for mx, my in landscape.minima)
    assert landscape.name in repr(landscape)


def test_bad_input():
    with pytest.raises(ValueError, match="condition must be a number of at least 1"):
        ill_conditioned(condition=0.5)
    with pytest.raises(ValueError, match="start must be a pair"):
        rosenbrock.tensors((1.0,))
    assert isinstance(rosenbrock, Landscape)


@pytest.mark.parametrize("module", ["engine/landscapes.py", "widgets/race.py", "widgets/hyperparameters.py",
                                    "widgets/training.py"])
def test_the_race_modules_use_the_engines_public_attributes_only(module):
    """As tests/test_widgets.py checks for the other modules above the engine."""
    import re
    from pathlib import Path

    import ad_magic
    source = (Path(ad_magic.__file__).parent / module).read_text()
    private = re.compile(r"\.(_data|_grad|_prev|_rule|_args|_mark|_a|_b|_op)\b")
    uses = [(n, line.strip()) for n, line in enumerate(source.splitlines(), 1) if private.search(line)]
    assert uses == [], f"{module} reaches into the engine's internals: {uses}"
    assert "matplotlib.pyplot" not in source and "import pyplot" not in source
