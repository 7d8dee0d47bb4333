"""Observing a student's own backward(): the steps are what their code did (seed and
zeroing included), the grads what it left, and `problems` names each mistake in one
sentence (tests/student_bugs.py holds one class per mistake)."""
from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import student_bugs as sb
from student_corpus import fields, load

import ad_magic
from ad_magic.adapters import ForeignStep, observe_backward
from ad_magic.widgets.stepper import BackwardStepper

HERE = Path(__file__).resolve().parent


def observed(cls, build=sb.build, **options):
    out, x = build(cls)
    before = {"out": fields(out), "x": fields(x)}
    stepper = BackwardStepper(out, names={x: "x"}, **options)
    assert {"out": fields(out), "x": fields(x)} == before, "looking changed the student's objects"
    assert x.grad is None                       # put back as it was
    return stepper, x


def last_grad(stepper, x):
    grad = stepper.grads_at(stepper.n_steps, x)
    return None if grad is None else float(grad)


def test_a_correct_backward_has_no_problem_and_shows_its_seed_and_zeroing():
    stepper, x = observed(sb.Tensor)
    assert stepper.problems == []
    assert last_grad(stepper, x) == 11.0
    kinds = [getattr(s, "kind", "rule") for s in stepper.steps]
    assert kinds[:2] == ["zero", "seed"] and kinds[2:] == ["rule"] * 4


def test_the_practical_s_reference_class_has_no_problem():
    module = load("tensor_practical")
    out, inputs = module.build()
    observation = observe_backward(out)
    assert observation.problems == [] and not observation.timed_out and observation.error is None
    out.backward()
    for obj in inputs.values():
        assert np.allclose(observation.grad(obj), obj.grad)


@pytest.mark.parametrize("name", ["tensor_ctx", "tensor_node_holder", "tensor_returns_grads"])
def test_rules_held_by_a_context_or_returning_grads_are_steps_of_their_own_nodes(name):
    out, _ = load(name).build()
    observation = observe_backward(out)
    assert observation.problems == []
    rules = [s for s in observation.steps if s.caption is None]       # a node's own rule, judged
    computed = [n for n in observation.root.graph.order if n.parents]
    assert sorted(id(s.node) for s in rules) == sorted(id(n) for n in computed)
    assert all(s.ok for s in rules) and [s.kind for s in observation.steps[:2]] == ["zero", "seed"]


def _line_of(function, text):
    lines, start = inspect.getsourcelines(function)
    return start + next(i for i, line in enumerate(lines) if text in line)


def test_each_rule_call_records_the_grads_it_found_on_entry_and_the_line_that_called_it():
    out, x = sb.build(sb.Tensor)
    observation = observe_backward(out)
    calls = observation.calls
    assert [c.node for c in calls] == observation.order and len(calls) == 4
    root = observation.root
    assert calls[0].node is root and float(calls[0].upstream) == 1.0          # the seed, as the rule found it
    line = _line_of(sb.Tensor.backward, "node._backward()")
    assert {c.called_at for c in calls} == {f"line {line} of backward"}
    node_x = root.graph.node(x)
    first = next(c for c in calls if node_x in c.grads)       # x·x's rule: x's grad before any contribution
    assert first.node.parents == (node_x, node_x) and float(first.grads[node_x]) == 0.0

    out, _ = sb.build(sb.NoSeed)
    assert float(observe_backward(out).calls[0].upstream) == 0.0
    out, _ = sb.build(sb.NeverInitialised)
    failed, = observe_backward(out).calls                      # the rule that raised: its inputs' grads were None
    assert failed.node.parents and all(failed.grads[p] is None for p in failed.node.parents)


_RULE_MAKER = """
def make(out, a, b, da, db):
    def rule():
        a.grad = a.grad + out.grad * da
        b.grad = b.grad + out.grad * db
    return rule
"""


def test_a_rule_whose_code_lives_in_the_ad_magic_package_is_watched_too():
    # ad_magic.practical puts correct rules of its own on a graph to judge a backward() apart from the student's rules
    out, x = sb.build(sb.Tensor)
    space = {}
    exec(compile(_RULE_MAKER, os.path.join(os.path.dirname(ad_magic.__file__), "a_checker_s_rules.py"), "exec"), space)
    local = {"add": lambda a, b: (1.0, 1.0), "sub": lambda a, b: (1.0, -1.0), "mul": lambda a, b: (b.data, a.data)}
    for node in out.topological():
        if node._parents:
            a, b = node._parents
            node._backward = space["make"](node, a, b, *local[node._function](a, b))
    observation = observe_backward(out)
    rules = [s for s in observation.steps if isinstance(s, ForeignStep)]
    assert [s.function for s in rules] == ["sub", "add", "mul", "mul"] and all(s.ok for s in rules)
    assert len(observation.calls) == 4 and observation.problems == []
    assert float(observation.grad(x)) == 11.0


def test_a_missing_seed_shows_their_zero_grads_and_names_the_seed():
    stepper, x = observed(sb.NoSeed)
    assert last_grad(stepper, x) == 0.0
    assert len(stepper.problems) == 1 and "never seeds it with 1" in stepper.problems[0]
    assert not any(getattr(s, "kind", None) == "seed" for s in stepper.steps)


def test_a_breadth_first_walk_names_the_node_whose_rule_ran_too_early_and_its_consumer():
    stepper, x = observed(sb.BreadthFirst, build=sb.build_uneven)
    assert len(stepper.problems) == 1
    problem = stepper.problems[0]
    # a = x·x (mul₁) ran before b = a·a (mul₂), which uses a: named as the picture names them
    assert problem.startswith("the rule of mul₁ ran before the rule of mul₂, which uses it")
    out, _ = sb.build_uneven(sb.BreadthFirst)
    alone, = observe_backward(out).problems         # without names: by op and value
    assert alone.startswith("the rule of the mul result 0.25 ran before the rule of the mul result 0.0625")
    want = 4 * 0.5 ** 3 * (8 * 0.5 ** 12 + 1)      # d((x⁸)² + x²)/dx … the chain rule at 0.5
    assert last_grad(stepper, x) != pytest.approx(want)


def test_overwriting_instead_of_adding_is_named_and_their_grad_shown():
    stepper, x = observed(sb.Overwrite)
    assert last_grad(stepper, x) == 5.0              # what their `=` left, not the chain rule's 11
    assert any("overwrote the grad (=) instead of adding to it (+=)" in p for p in stepper.problems)
    assert any(not s.ok for s in stepper.steps)


def test_grads_never_initialised_show_the_error_its_line_and_the_hint():
    stepper, x = observed(sb.NeverInitialised)
    assert last_grad(stepper, x) is None             # their code left it None
    problem, = stepper.problems
    assert problem.startswith("your backward raised TypeError") and "self.grad += out.grad" in problem
    assert "was still None" in problem
    assert stepper.steps[-1].error is not None


def test_an_endless_loop_is_stopped_at_the_time_limit_with_the_steps_so_far():
    stepper, x = observed(sb.Endless, timeout=1)
    assert stepper.timeline.observation.timed_out
    problem, = stepper.problems
    assert "still running after" in problem and "a loop that does not end" in problem and "line" in problem
    assert sys.gettrace() is None                    # the tracer is gone


def test_a_backward_that_runs_the_rules_forever_is_stopped_before_the_time_limit():
    out, x = sb.build(sb.RulesForever)
    observation = observe_backward(out, timeout=60)
    assert observation.timed_out and observation.seconds < 60
    problem, = observation.problems        # the rule cut off at the limit is not called wrong
    assert "its rules had run" in problem and "a loop that does not end" in problem
    assert len(observation.steps) < 1200       # 20 rule calls per node and 1,000 more at most


def test_a_loop_that_catches_base_exception_is_stopped_too():
    class Stubborn(sb.Tensor):
        def backward(self):
            while True:
                try:
                    self.grad = np.ones_like(self.data)
                except BaseException:
                    pass
    out, _ = sb.build(Stubborn)
    observation = observe_backward(out, timeout=0.5)
    assert observation.timed_out and "a loop that does not end" in observation.problems[-1]


def test_another_thread_running_the_same_rules_is_neither_observed_nor_stopped():
    # sys.monitoring (3.12+) sees every thread, sys.settrace only the one that set it: the
    # observation must be the observing thread's, and its time limit stop that thread alone
    others, stop, failures = [sb.build(sb.Tensor)[0] for _ in range(2)], threading.Event(), []

    def rerun_rules(out):
        try:
            while not stop.is_set():
                for node in out.topological():
                    node.grad = np.ones_like(node.data)
                    node._backward()
        except BaseException as exc:        # StopObserving too
            failures.append(exc)
    workers = [threading.Thread(target=rerun_rules, args=(o,)) for o in others]
    for worker in workers:
        worker.start()
    try:
        out, x = sb.build(sb.Tensor)
        calm = observe_backward(out, timeout=10)
        endless, _ = sb.build(sb.RulesForever)
        stopped = observe_backward(endless, timeout=0.5)
        time.sleep(0.2)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert failures == []
    assert calm.problems == [] and calm.grad(x) == 11.0
    assert [s.function for s in calm.steps] == [s.function for s in observe_backward(sb.build(sb.Tensor)[0]).steps]
    assert stopped.timed_out


def test_a_recursion_error_on_a_deep_graph_is_named():
    # deeper than the interpreter's limit, whatever it is (jedi 0.19, imported by IPython 8 on
    # Python 3.9, raises it from 1000 to 3000)
    out, x = sb.chain(sb.Recursive, max(1500, sys.getrecursionlimit() + 500))
    observation = observe_backward(out)
    problem, = observation.problems
    assert problem.startswith("your backward raised RecursionError") and "walk it with a loop" in problem
    assert observation.grad(x) is None


def test_a_rule_that_raises_is_shown_at_its_step_up_to_the_raise():
    stepper, x = observed(sb.RuleRaises)
    problem, = stepper.problems
    assert "AttributeError" in problem and "other.value" in problem
    failed = stepper.steps[-1]
    assert failed.function == "mul" and failed.error is not None and not failed.ok
    assert stepper.caption_text(stepper.n_steps).startswith("mul: your _backward raised AttributeError")


def test_a_class_with_rules_but_no_backward_yet_has_its_rules_run_in_order_and_judged():
    class NoBackwardYet(sb.Overwrite):
        backward = None
    out, x = sb.build(NoBackwardYet)
    stepper = BackwardStepper(out, names={x: "x"})
    assert [s.function for s in stepper.steps] == ["sub", "add", "mul", "mul"]
    assert stepper.problems == list(dict.fromkeys(s.note for s in stepper.steps if not s.ok))
    assert any("instead of adding to it (+=)" in p for p in stepper.problems)
    assert x.grad is None


def test_a_backward_function_can_be_given():
    out, x = sb.build(sb.Tensor)

    def backward(root):
        order = root.topological()
        for node in order:
            node.grad = np.zeros_like(node.data)
        root.grad = np.ones_like(root.data)
        for node in reversed(order):
            node._backward()
    stepper = BackwardStepper(out, backward=backward)
    assert stepper.problems == [] and last_grad(stepper, x) == 11.0


def test_ad_magic_s_own_tensor_has_no_problems_and_takes_no_backward_function():
    from ad_magic import Tensor

    x = Tensor(3.0)
    y = x * x + 5 * x - 1
    assert BackwardStepper(y).problems == []
    with pytest.raises(TypeError, match="^backward= watches the backward of another class"):
        BackwardStepper(y, backward=lambda: None)


def test_a_bad_timeout_is_one_sentence():
    out, _ = sb.build(sb.Tensor)
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        observe_backward(out, timeout=0)


def test_the_magic_runs_their_backward_once_and_leaves_their_grads(magic_shell):
    ip = magic_shell()
    ip.user_ns["NoSeed"] = sb.NoSeed
    from IPython.utils.capture import capture_output
    with capture_output() as cap:
        result = ip.run_cell("%%autodiff y\nx = NoSeed(3.0)\ny = x * x + 5 * x - 1\n")
    assert result.success, result.error_in_exec
    assert float(ip.user_ns["x"].grad) == 0.0          # what *their* backward leaves
    assert "never seeds it" in cap.stdout + "".join(str(o.data) for o in cap.outputs)


FINDINGS = """
import json, sys
sys.path.insert(0, {here!r})
import student_bugs as sb
import ad_magic
from ad_magic.adapters import ForeignStep, observe_backward
found = {{}}
for cls in (sb.NoSeed, sb.Overwrite, sb.BreadthFirst, sb.SetBreadthFirst):
    out, x = (sb.build_uneven if issubclass(cls, sb.BreadthFirst) else sb.build)(cls)
    found[cls.__name__] = observe_backward(out).problems
print(json.dumps(found))
"""


def test_the_findings_are_the_same_on_every_run_whatever_the_hash_seed():
    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join(sys.path)}
        done = subprocess.run([sys.executable, "-c", FINDINGS.format(here=str(HERE))], capture_output=True,
                              text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout))
    assert runs[0] == runs[1] and all(runs[0].values())
    assert runs[0]["SetBreadthFirst"] == runs[0]["BreadthFirst"]     # the set's order does not change them
