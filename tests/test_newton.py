"""Newton's method (`ad_magic.optim.Newton`): one step to the minimum of a quadratic, the
Rosenbrock race it wins, what it says in a non-convex region, damping, and its name among
the optimizers `descend` and a race accept."""
from __future__ import annotations

import numpy as np
import pytest

from ad_magic import Tensor
from ad_magic.landscapes import rosenbrock
from ad_magic.optim import OPTIMIZERS, SGD, Newton, check_descent, descend


def quadratic(seed=0):
    """½ θᵀAθ − bᵀθ over θ = (u, v), u of shape (2,), v a scalar; minimum at A⁻¹b."""
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((3, 3))
    A = M @ M.T + 3 * np.eye(3)          # positive definite
    b = rng.standard_normal(3)
    u, v = Tensor(rng.standard_normal(2), name="u"), Tensor(0.7, name="v")
    theta = [u[0], u[1], v]
    zero = Tensor(0.0, requires_grad=False)
    loss = sum((0.5 * A[j, k] * theta[j] * theta[k] for j in range(3) for k in range(3)), zero) \
        - sum((b[j] * theta[j] for j in range(3)), zero)
    return loss, [u, v], A, b


def test_on_a_quadratic_one_step_reaches_the_minimum():
    loss, params, A, b = quadratic()
    history = descend(loss, params, "newton", lr=1.0, steps=1)
    best = np.linalg.solve(A, b)
    np.testing.assert_allclose(np.concatenate([params[0].data, [params[1].item()]]), best, rtol=1e-12, atol=1e-12)
    assert history.losses[1] == pytest.approx(-0.5 * b @ best, rel=1e-12)
    assert history.notes == []


def test_the_step_is_lr_times_the_newton_direction_with_damping():
    x = Tensor([1.0, -2.0])
    loss = (x * x * Tensor([1.0, 3.0], requires_grad=False)).sum()    # H = diag(2, 6), ∇ = (2, -12)
    Newton([x], lr=0.5, damping=2.0).step(loss)
    np.testing.assert_allclose(x.data, [1.0 - 0.5 * 2 / 4, -2.0 + 0.5 * 12 / 8])


def test_rosenbrock_newton_wins_the_race_that_gradient_descent_loses():
    x, y = rosenbrock.tensors()
    newton = descend(rosenbrock(x, y), [x, y], "newton", lr=1.0, steps=20)
    assert (x.item(), y.item()) == pytest.approx((1.0, 1.0), abs=1e-8)
    assert newton.losses[-1] < 1e-12
    x, y = rosenbrock.tensors()
    sgd = descend(rosenbrock(x, y), [x, y], "sgd", lr=rosenbrock.lr, steps=20)
    assert sgd.losses[-1] > 1.0


def test_in_a_non_convex_region_it_says_the_hessian_is_not_positive_definite():
    # At (0, 1) Rosenbrock's Hessian is diag(2 - 400·1, 200): it curves down along x.
    x, y = rosenbrock.tensors(start=(0.0, 1.0))
    history = descend(rosenbrock(x, y), [x, y], "newton", lr=1.0, steps=3)
    iteration, note = history.notes[0]
    assert iteration == 0
    assert note.startswith("the Hessian is not positive definite here (smallest eigenvalue -398.0)")
    assert "non-convex" in note and "\n" not in note
    optimizer = Newton([x, y], damping=500.0)
    x.data, y.data = 0.0, 1.0
    optimizer.step(rosenbrock(x, y))
    assert optimizer.note is None and optimizer.smallest_eigenvalue == pytest.approx(102.0)


def test_newton_is_a_name_wherever_an_optimizer_name_is():
    assert OPTIMIZERS["newton"] is Newton
    x, y = rosenbrock.tensors()
    _, optimizer = check_descent(rosenbrock(x, y), [x, y], "Newton", lr=1.0, damping=0.1)
    assert isinstance(optimizer, Newton) and optimizer.damping == 0.1
    with pytest.raises(ValueError, match=r"did you mean 'newton'\?"):
        check_descent(rosenbrock(x, y), [x, y], "newtn")


def test_a_race_of_gradient_descent_and_newton():
    from ad_magic.widgets import DescentExplorer

    x, y = rosenbrock.tensors()
    explorer = DescentExplorer.compare(rosenbrock(x, y), [x, y], optimizers=("sgd", "newton"),
                                       lr={"sgd": rosenbrock.lr, "newton": 1.0}, steps=15)
    histories = explorer.histories
    assert histories["newton"].losses[-1] < 1e-10 < histories["sgd"].losses[-1]


def test_the_race_summary_says_where_the_hessian_was_not_positive_definite():
    from ad_magic.widgets import DescentExplorer

    x, y = rosenbrock.tensors(start=(0.0, 1.0))
    explorer = DescentExplorer.compare(rosenbrock(x, y), [x, y], optimizers=("sgd", "newton"),
                                       lr={"sgd": rosenbrock.lr, "newton": 1.0}, steps=5)
    lines = [text for text, _ in explorer.summary_lines()]
    said = [text for text in lines if text.startswith("newton, iteration")]
    assert len(said) == 1 and "the Hessian is not positive definite here" in said[0]
    assert not any(text.startswith("sgd, iteration") for text in lines)


def test_mistakes_are_one_sentence():
    x = Tensor(np.zeros(21 * 20))
    with pytest.raises(ValueError, match=r"^Newton: the parameters hold 420 values, so the Hessian would have "):
        Newton([x])
    with pytest.raises(ValueError, match=r"^Newton: damping must be a finite number ≥ 0, got -1"):
        Newton([Tensor(1.0)], damping=-1)
    with pytest.raises(TypeError, match=r"^Newton.step needs the loss: call step\(loss\)"):
        Newton([Tensor(1.0)]).step()
    assert SGD.uses_loss is False and Newton.uses_loss is True


def test_a_singular_hessian_takes_the_least_squares_step_to_the_valley():
    # (x + y)²: every point of x + y = 0 is a minimum, the Hessian [[2, 2], [2, 2]] is singular
    x, y = Tensor(3.0), Tensor(1.0)
    history = descend(lambda: (x + y) ** 2, [x, y], "newton", lr=1.0, steps=1)
    assert np.isfinite(history.losses).all()
    assert abs(float(x.data + y.data)) < 1e-12               # one step to the valley floor
    assert np.isclose(float(x.data - y.data), 2.0)             # the shortest step: along (1, 1) only
