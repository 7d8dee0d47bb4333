"""Grads belong to one node each: a hand-written `_backward` (the practical's way) gets
right answers whichever way it adds, writing into one grad never changes another, and
constants are never shared between graphs. No rule rests on reference counts."""

import threading

import numpy as np
import pytest

from ad_magic import Tensor, add, gradcheck, no_grad
from ad_magic.engine import is_grad_enabled
from ad_magic.engine.tensor import enable_grad


def square(a, *, style="+="):
    """The practical's way of writing an op by hand."""
    out = Tensor(a.data ** 2)

    def _backward():
        if style == "+=":
            a.grad += 2 * a.data * out.grad
        else:
            a.grad = a.grad + 2 * a.data * out.grad

    out._backward, out._function, out._parents = _backward, "square", {a}
    return out


@pytest.mark.parametrize("style", ["+=", "= +"])
def test_custom_backward_under_a_sum(style):
    a = Tensor([1.0, 2.0])
    (square(a, style=style) + a).sum().backward()  # sum's grad is a read-only broadcast view
    np.testing.assert_array_equal(a.grad, [3.0, 5.0])


@pytest.mark.parametrize("style", ["+=", "= +"])
def test_custom_backward_does_not_write_into_other_nodes_grads(style):
    a, c = Tensor([1.0, 2.0]), Tensor([3.0, 3.0])
    s = square(a, style=style) + a
    (s * c).sum().backward()
    np.testing.assert_array_equal(s.grad, [3.0, 3.0])
    np.testing.assert_array_equal(a.grad, [3.0 * 2 * 1 + 3.0, 3.0 * 2 * 2 + 3.0])


def test_custom_backward_on_a_parent_without_grad():
    const = Tensor([1.0, 2.0], requires_grad=False)
    w = Tensor([1.0, 1.0])
    (square(const) * w).sum().backward()
    assert const.grad is None
    np.testing.assert_array_equal(w.grad, [1.0, 4.0])


def test_writing_into_a_grad_changes_no_other_grad():
    x, y = Tensor([1.0, 2.0]), Tensor([3.0, 4.0])
    z = x + y            # add passes ∂L/∂z through to both inputs
    w = z.reshape(2, 1)  # and reshape passes it on as a view
    w.sum().backward()
    gx = x.grad
    gx += 100
    np.testing.assert_array_equal(x.grad, [101.0, 101.0])
    for t in (y, z, w):
        np.testing.assert_array_equal(np.ravel(t.grad), [1.0, 1.0])
    w.grad[0, 0] = -5
    np.testing.assert_array_equal(z.grad, [1.0, 1.0])


def test_a_grad_held_by_the_caller_is_never_changed_by_a_later_backward():
    x = Tensor([1.0, 2.0])
    y = x * 3 + x
    y.sum().backward()
    held = x.grad
    (y * y).sum().backward()
    np.testing.assert_array_equal(held, [4.0, 4.0])
    np.testing.assert_array_equal(x.grad, 2 * y.data * 4)


def test_grads_stepped_through_are_snapshots_that_stay_true():
    x = Tensor([1.0, 2.0])
    y = (x * x + x * 2).sum()
    seen = []
    for step in y.backward_steps():
        seen.append([None if p.grad is None else p.grad for p in step.parents])
    # The first mul's grad of x, read at its step, is not changed by the later steps.
    firsts = [g for grads in seen for g in grads]
    assert all(g is not None for g in firsts)
    np.testing.assert_array_equal(x.grad, 2 * x.data + 2)


def test_constants_are_not_shared_between_graphs():
    y = Tensor(3.0) * 4
    y.parents[1].data = 5
    assert (Tensor(3.0) * 4).item() == 12.0
    a, b = Tensor(1.0) * 4, Tensor(2.0) * 4
    assert a.parents[1] is not b.parents[1]


def test_a_constant_keeps_its_identity_in_one_graph():
    y = Tensor(3.0) * 4
    assert y.parents[1] is y.parents[1]
    assert y.parents[1] in y._parents
    assert not y.parents[1].requires_grad


def test_grad_has_its_tensors_dtype():
    f32 = Tensor(np.ones(3, dtype=np.float32))
    f64 = Tensor(np.ones(3))
    (f32 * f64 * 2.5).sum().backward()
    assert f32.grad.dtype == np.float32 and f64.grad.dtype == np.float64
    s32 = Tensor(np.float32(2.0))
    (s32 * Tensor(3.0)).backward()
    assert s32.grad.dtype == np.float32


def test_no_refcount_rule_in_the_engine():
    import ad_magic

    for path in __import__("pathlib").Path(ad_magic.__file__).parent.rglob("*.py"):
        assert "getrefcount" not in path.read_text(encoding="utf-8"), path.name


def test_no_grad_is_per_thread():
    inside, outside = threading.Event(), threading.Event()
    seen = {}

    def other():
        with no_grad():
            inside.set()
            outside.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    inside.wait(5)
    seen["main"] = is_grad_enabled()
    y = Tensor(2.0) * 3
    outside.set()
    thread.join(5)
    assert seen["main"] is True and y.requires_grad


def test_overlapping_no_grad_blocks_restore_recording():
    first, second = no_grad(), no_grad()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    assert is_grad_enabled()
    assert (Tensor(1.0) * 2).requires_grad


def test_enable_grad_inside_no_grad():
    with no_grad():
        with enable_grad():
            y = Tensor(2.0) * 3
        z = Tensor(2.0) * 3
    assert y.requires_grad and not z.requires_grad


def test_gradcheck_inside_no_grad():
    x = Tensor([0.3, -1.2])
    with no_grad():
        report = gradcheck(lambda t: (t * t).tanh().sum(), x)
    assert report, report


def test_plain_numbers_only_is_a_clear_error():
    with pytest.raises(TypeError, match="add: at least one operand must be a Tensor, got int and int"):
        add(2, 3)


def test_zero_d_tensor_does_not_iterate():
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        sum(Tensor(3.0))
    x = Tensor([1.0, 2.0, 3.0])
    total = sum(x)
    assert total.item() == 6.0
    total.backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0, 1.0])


@pytest.mark.parametrize("index", [Tensor([1.0, 0.0, 1.0]), Tensor([True, False, True]), np.array([0.0, 1.0])])
def test_float_or_tensor_index_is_refused(index):
    with pytest.raises(IndexError, match="getitem"):
        Tensor([1.0, 2.0, 3.0])[index]


def test_transpose_out_of_range_axes_are_the_librarys_sentence():
    with pytest.raises(ValueError, match=r"transpose: axes \(0, 3\) are not a permutation of the 2 axes"):
        Tensor(np.ones((2, 3))).transpose((0, 3))


def test_numpy_shares_array_data_and_documents_the_0d_copy():
    x = Tensor([1.0, 2.0])
    x.numpy()[0] = 5.0
    assert x.data[0] == 5.0
    assert "0-d" in Tensor.numpy.__doc__
    s = Tensor(2.0)
    s.data = s.numpy() + 1
    assert s.item() == 3.0


def test_parents_setter_rejects_non_tensors():
    out = Tensor(1.0)
    with pytest.raises(TypeError, match="iterable of Tensors"):
        out._parents = 3
    with pytest.raises(TypeError, match="every parent must be a Tensor"):
        out._parents = [1.0]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("zero", [0, 0.0, -0.0])
def test_dividing_by_a_python_zero_follows_numpy(zero):
    x = Tensor(1.0)
    y = x / zero
    y.backward()
    assert np.isinf(y.item()) and np.isinf(x.grad)


def test_python_numbers_take_the_datas_float_type():
    x = Tensor(np.float32(2.0))
    y = x * 3 + 1.5 / x - 2 ** x
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32
    assert all(p.dtype == np.float32 for p in (x * 3).parents)
