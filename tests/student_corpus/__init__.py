"""A corpus of small autodiff classes written in the styles students use (see each
module's STYLE), and the end-to-end run every one of them must pass: adapt, draw, step
(backward, and forward then backward), export, and the grads of the class's own
backward(). ``python tests/student_corpus`` prints the corpus table."""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODULES = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_"))
STAGES = ("adapt", "draw", "step", "export", "grads")


def load(name):
    return importlib.import_module(f"{__name__}.{name}")


def fields(obj):
    """Every field of a student's object, by identity and, for what can change in place (an
    array, a list), by its contents too (to see that looking changed nothing)."""
    try:
        state = dict(vars(obj))
    except TypeError:
        state = {}
    for name in getattr(type(obj), "__slots__", ()):
        state[name] = getattr(obj, name, None)
    return {k: (id(v), _held(v)) for k, v in state.items()}


def _held(value):
    if isinstance(value, np.ndarray):
        return (value.shape, value.tobytes())
    if isinstance(value, list):
        return tuple(_held(v) if isinstance(v, (np.ndarray, list)) else id(v) for v in value)
    return None


def built(module):
    """``module.build()`` run while the construction is recorded, as ``%%autodiff`` does:
    (output, {name: input}, recording)."""
    from ad_magic.adapters import recording

    with recording(vars(module)) as seen:
        out, inputs = module.build()
    return out, inputs, seen


def own_backward(module, out, inputs):
    """The class's own backward (a module-level ``backward(out, inputs)`` where the class
    has no ``backward()`` method)."""
    if hasattr(module, "backward"):
        module.backward(out, inputs)
    else:
        out.backward()


def own_grads(module):
    """The grads the class's own backward() gives its inputs, read where the class keeps them."""
    from ad_magic.adapters.contract import StudentAdapter
    from ad_magic.adapters.structure import follow

    out, inputs, seen = built(module)
    own_backward(module, out, inputs)
    adapter = StudentAdapter(out, recording=seen, inputs=list(inputs.values()))

    def value(obj):
        grad = follow(obj, adapter.reading(obj).grad)
        if adapter.is_node(grad):          # a grad kept as a node of the class (a Tensor) is read through its data
            grad = follow(grad, adapter.reading(grad).data)
        return grad
    return {name: np.asarray(value(obj), dtype=float) for name, obj in inputs.items()}


def run(module, folder):
    """Each stage of the end-to-end run: {stage: (passed, detail)}; stops at the first failure."""
    from ad_magic import draw_computation_graph
    from ad_magic.adapters import ForeignNode, adapt
    from ad_magic.widgets.stepper import BackwardStepper

    results = {}
    out, inputs, seen = built(module)
    try:
        node = adapt(out, recording=seen, inputs=list(inputs.values()))
        assert isinstance(node, ForeignNode)
        computed = [n for n in node.graph.order if n.parents]
        assert computed and all(n._function for n in computed)
        results["adapt"] = (True, f"{len(node.graph.order)} nodes, {len(computed)} ops")

        source = draw_computation_graph(node).source
        ops = source.count("shape=ellipse")
        edges = source.count("->")
        assert ops == len(computed), f"{ops} op nodes drawn for {len(computed)} computed values"
        assert edges >= 2 * len(computed), f"only {edges} edges"
        unknown = sum(n._function == "?" for n in computed)
        results["draw"] = (True, f"{ops} ops, {edges} edges" + (f", {unknown} unknown" if unknown else ""))

        before = {name: fields(obj) for name, obj in inputs.items()} | {"out": fields(out)}
        mistake = getattr(module, "MISTAKE", None)
        positions = 0
        for forward in (False, True):
            stepper = BackwardStepper(node, names={v: k for k, v in inputs.items()}, forward=forward,
                                      grad=getattr(module, "SEED", None))
            for k in range(stepper.n_steps + 1):
                stepper.step = k
                assert stepper.svg(k) and stepper.caption_text(k)
                for obj in inputs.values():
                    assert stepper.card_text(obj)
                positions += 1
            wrong = [s.note for s in stepper.steps if not s.ok]
            if mistake is None:
                assert not wrong, wrong
            else:
                assert any(mistake in n for n in wrong), wrong
        after = {name: fields(obj) for name, obj in inputs.items()} | {"out": fields(out)}
        assert after == before, "stepping changed the student's objects"
        results["step"] = (True, f"{positions} positions" + (" (mistake flagged)" if mistake else ""))

        path = stepper.save_html(Path(folder) / f"{module.__name__.rsplit('.', 1)[-1]}.html")
        text = Path(path).read_text(encoding="utf-8")
        assert "<svg" in text and len(text) > 1000
        results["export"] = (True, f"{len(text) // 1024} KiB")

        want = own_grads(module)
        last = stepper.n_steps
        for name, obj in inputs.items():
            got = np.asarray(stepper.grads_at(last, obj), dtype=float)
            assert got.shape == want[name].shape and np.allclose(got, want[name]), (name, got, want[name])
        results["grads"] = (True, ", ".join(f"{k}={np.round(v, 3).tolist()}" for k, v in list(want.items())[:2]))
    except Exception as exc:     # the table shows where it failed
        stage = next(s for s in STAGES if s not in results)
        results[stage] = (False, f"{type(exc).__name__}: {exc}")
    return results


def table(folder) -> str:
    rows = ["| class | style | " + " | ".join(STAGES) + " |", "|---|---|" + "---|" * len(STAGES)]
    for name in MODULES:
        module = load(name)
        results = run(module, folder)
        marks = ["✓" if results.get(s, (False,))[0] else ("✗ " + results[s][1][:60] if s in results else "–")
                 for s in STAGES]
        rows.append(f"| {name} | {module.STYLE} | " + " | ".join(marks) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    import sys
    import tempfile

    sys.path.insert(0, str(HERE.parent))
    with tempfile.TemporaryDirectory() as folder:
        print(table(folder))
