"""Looking at a PyTorch graph changes nothing, and shows what PyTorch does: a tensor hook's
grad at its step, every leaf's ``.grad`` and every hook as they were after any stepper or
drawing, also when the graph is refused (already backpropagated, or changed in place)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ad_magic import draw_computation_graph  # noqa: E402
from ad_magic.adapters import AdapterError  # noqa: E402
from ad_magic.drawing.graph_view import GraphView  # noqa: E402
from ad_magic.widgets import BackwardStepper  # noqa: E402
from ad_magic.widgets.timeline import Timeline  # noqa: E402


def test_a_leaf_hook_shows_in_the_steppers_last_step():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    w.register_hook(lambda g: 2 * g)
    y = (w * w).sum() + (3 * w).sum()
    stepper = BackwardStepper(y)
    np.testing.assert_allclose(stepper.grads_at(stepper.timeline.last, w), [10.0, 14.0])   # 2 · (2w + 3)
    assert "hook" in stepper.caption_text(stepper.timeline.last)
    y.backward()
    np.testing.assert_allclose(w.grad.numpy(), [10.0, 14.0])


def test_a_hook_on_an_intermediate_tensor_flows_down_as_in_pytorch():
    w = torch.tensor(3.0, requires_grad=True)
    h = w * w
    h.register_hook(lambda g: 10 * g)
    y = h * 2.0
    stepper = BackwardStepper(y)
    assert stepper.grads_at(stepper.timeline.last, w) == pytest.approx(10 * 2 * 2 * 3)


def _backpropagated():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    y = (w.exp() * w).sum()
    y.backward()
    return w, y


def _changed_in_place():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    w.grad = torch.tensor([5.0, 5.0])
    h = w.exp()
    y = h.sum()
    h.add_(1.0)
    return w, y


@pytest.mark.parametrize("make, says", [(_backpropagated, "already backpropagated"),
                                        (_changed_in_place, "changed in place")])
def test_a_graph_pytorch_refuses_is_refused_and_leaves_every_grad_as_it_was(make, says):
    w, y = make()
    grad = w.grad
    before = grad.clone()
    with pytest.raises(AdapterError, match=says):
        BackwardStepper(y)
    assert w.grad is grad
    assert torch.equal(w.grad, before)


# Every way to look at a PyTorch graph: none may change a leaf's grad or leave a hook behind.
LOOKS = {
    "BackwardStepper": lambda y: BackwardStepper(y),
    "BackwardStepper forward": lambda y: BackwardStepper(y, forward=True),
    "Timeline": lambda y: Timeline(y, forward=True),
    "draw_computation_graph": lambda y: draw_computation_graph(y),
    "GraphView": lambda y: GraphView(y).svg(),
    "a stepper's picture": lambda y: BackwardStepper(y).svg(0),
}


@pytest.mark.parametrize("look", sorted(LOOKS))
@pytest.mark.parametrize("had_grad", [False, True])
def test_looking_at_a_torch_graph_changes_no_grad_and_leaves_no_hook(look, had_grad):
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    b = torch.tensor(0.5, requires_grad=True)
    seen = []
    w.register_hook(lambda g: seen.append(1) or g)
    y = ((w * b).tanh() * w).sum()
    if had_grad:
        w.grad, b.grad = torch.tensor([9.0, 9.0]), torch.tensor(4.0)
    grads = (w.grad, b.grad)
    values = tuple(None if g is None else g.clone() for g in grads)
    hooks = dict(w._backward_hooks or {})
    LOOKS[look](y)
    assert w.grad is grads[0] and b.grad is grads[1]
    for g, v in zip((w.grad, b.grad), values):
        assert (g is None and v is None) or torch.equal(g, v)
    assert dict(w._backward_hooks or {}).keys() == hooks.keys()
    seen.clear()
    w.grad = b.grad = None
    y.backward()                      # PyTorch's own backward: our recording hooks are gone
    assert len(seen) == 1
    reference = torch.autograd.grad(((w * b).tanh() * w).sum(), [w])[0]
    torch.testing.assert_close(w.grad, reference)


def test_stepping_leaves_a_retained_output_grad_as_it_was():
    w = torch.tensor(2.0, requires_grad=True)
    y = w * w
    y.retain_grad()
    BackwardStepper(y)
    assert y.grad is None and w.grad is None
