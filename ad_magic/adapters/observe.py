"""Watching a student's own ``backward()`` run: :func:`observe_backward`.

Replaying a student's ``_backward`` rules in ad_magic's order, with ad_magic's seed and
zeroing, shows the right answer even when their ``backward()`` forgets the seed, walks
the graph in the wrong order or loops forever. Here their own ``backward()`` runs, as
their cell would run it, under a tracer (``sys.settrace`` before Python 3.12,
``sys.monitoring`` from 3.12), and every call of their code is watched:

* before a call of the student's code and when it returns, the grad field of every node
  is compared with what it was (identity first, then the values: ``p.grad += …`` on an
  array changes it in place, so a copy of each array is kept). What changed between two
  such moments was done by the student's function running then;
* a call of a node's own rule (its ``_backward`` closure: the code object and the values
  it closes over, or a bound method of the node) names that node; what the rule changed
  is one step, judged against the chain rule (:class:`~ad_magic.adapters.steps.ForeignStep`);
* what ``backward()`` itself changed (the zeroing, the seed ``out.grad = 1``, or grads it
  computed inline) is a step too (:class:`ObservedStep`);
* a node's own rule is watched wherever its code lives (also rules of ad_magic's own,
  which :mod:`ad_magic.practical` puts on a graph to judge a ``backward()`` apart from the
  student's rules), and the line of code that called it is noted (:class:`RuleCall`);
* a backward that runs past ``timeout`` seconds is stopped (the tracer raises
  :class:`StopObserving`, a ``BaseException``, into their code on its next line outside a
  ``try`` block); one that raises is shown up to the raise.

The watching itself (which code is the student's, the grad fields, the tracer and its
time limit) is ``tracer.py``; this module turns what it saw into steps and findings.

Every field of the student's objects is put back afterwards (``restore=False`` leaves
what their code did: ``%%autodiff`` runs their backward once, for real). The findings are
one sentence each (:attr:`Observation.problems`), in an order that depends only on the
graph and on what the code did, never on where objects happen to sit in memory.
"""
from __future__ import annotations

import contextlib
import inspect
import linecache
import numbers
import time

import numpy as np

from ..drawing.nodes import as_node
from ..engine.formatting import format_value
from .base import AdapterError, ForeignNode, label
from .contract import GRAD, RULES
from .rules import expected, measured
from .steps import ForeignStep, where
from .tracer import GradFields, StopObserving, Watcher, rules_of, same_value, traced, watched_files

__all__ = ["observe_backward", "observable", "Observation", "ObservedStep", "RuleCall", "StopObserving"]

STOPPED_NOTE = "this rule was running when the time limit stopped your backward: what it did so far is shown."


# ------------------------------------------------------------------ what a step is

class ObservedStep:
    """Something the student's ``backward()`` did outside a node's own rule: the zeroing,
    the seed, grads computed inline, the error it raised, the loop that was stopped.

    It has the fields of every step (:class:`ad_magic.engine.steps.BackwardStep`'s
    protocol): ``index``, ``node`` (the node it is about, or None), ``function`` (what
    did it), ``op`` (None), ``parents`` (the nodes whose grad it changed), ``terms`` (none),
    ``rule``, ``changes`` (``{node: (before, after)}``), ``upstream``, ``ok``, ``note``,
    ``remark``, ``error``, ``where`` and ``caption`` (its text, in the graph's names).
    """

    op = None
    terms = ()
    remark = None
    upstream = None

    def __init__(self, index, kind, node, changes, caption, *, function, note=None, error=None, where=None):
        self.index, self.kind, self.node = index, kind, node
        self.changes = changes
        self.parents = tuple(changes)
        self.function = function
        self.caption = caption
        self.note, self.error, self.where = note, error, where
        self.ok = note is None

    @property
    def rule(self) -> str:
        return f"{self.function}: {self.caption}"

    def __repr__(self):
        return f"ObservedStep({self.index}, {self.kind}: {self.caption[:60]!r})"


class RuleCall:
    """One call of a node's own rule, seen while the student's backward ran.

    * ``node``: the node whose rule it was;
    * ``grads``: ``{node: grad}`` of that node and of its inputs as the rule found them
      when it started (None where None: nothing had set it yet);
    * ``called_at``: ``"line N of backward"``, the line of code that called the rule
      (``""`` when no caller was seen).
    """

    __slots__ = ("node", "grads", "called_at")

    def __init__(self, node, grads, called_at=""):
        self.node, self.grads, self.called_at = node, grads, called_at

    @property
    def upstream(self):
        """The node's own grad when its rule started."""
        return self.grads[self.node]

    def __repr__(self):
        return f"RuleCall({label(self.node)}" + (f", {self.called_at}" if self.called_at else "") + ")"


class Observation:
    """What the student's backward did, step by step.

    * ``steps``: :class:`~ad_magic.adapters.steps.ForeignStep` for each call of a node's
      own rule, :class:`ObservedStep` for the rest (seed, zeroing, error, stop), in the
      order their code did them;
    * ``problems``: one sentence per cause found (empty when it agrees with the chain rule
      at every step and in its result);
    * ``grads``: ``{node: grad}`` as their code left it (None where it left None);
      :meth:`grad` takes the student's own object;
    * ``order``: the nodes whose rules ran, in order;
    * ``calls``: a :class:`RuleCall` for each entry of ``order`` (the grads its rule found
      on entry, the line that called it);
    * ``error``: ``(exception, "in f, line N — code")`` when it raised, else None;
    * ``timed_out``: True when it was stopped at the time limit;
    * ``before``: ``{node: grad}`` before it ran; ``root``: the output's node.
    """

    def __init__(self, root, steps, grads, before, order, error, timed_out, problems, seconds, calls=()):
        self.root, self.steps, self.grads, self.before = root, steps, grads, before
        self.order, self.error, self.timed_out = order, error, timed_out
        self.problems, self.seconds = problems, seconds
        self.calls = list(calls)

    def grad(self, obj):
        """The grad the student's code left on ``obj`` (their object, or its node)."""
        return self.grads[self.root.graph.node(obj)]

    def __repr__(self):
        return (f"<Observation: {len(self.steps)} steps, {len(self.problems)} problem(s)"
                + (", timed out" if self.timed_out else "") + ">")


# ------------------------------------------------------------------ observing

def observable(node, backward=None) -> bool:
    """True when there is a backward of the student's own to watch: ``node`` is of another
    class whose rules are theirs, and it has a ``backward()`` method (or ``backward`` is
    given). False for ad_magic's Tensor, for libraries whose rules need no checking
    (PyTorch: stepped with its own autograd hooks), and for a class with rules but no
    backward() yet (its rules are then run in ad_magic's order), and for a graph its own
    backward() erased (read from a recording of it being built: the rules it kept are run
    in ad_magic's order, since running their backward() again would find no graph)."""
    if not isinstance(node, ForeignNode) or not node.graph.adapter.checks_rules:
        return False
    if node.graph.adapter.read_as_made():
        return False
    if backward is not None:
        return True
    try:
        method = getattr(node.source, "backward", None)
    except Exception:         # a property that raises: no backward to call
        return False
    return inspect.ismethod(method) or inspect.isfunction(method)


def _backward_callable(root, backward, grad):
    """What to call, and how: the output's own ``backward`` method, or ``backward`` given
    (called with the output when it takes one argument)."""
    source = root.source
    if backward is None:
        method = getattr(source, "backward", None)
        if method is None or not callable(method):
            raise AdapterError(f"{type(source).__name__} has no backward() method to watch; pass the function "
                               "that runs your backward pass: backward=my_backward.")
        if grad is None or not _takes_an_argument(method):
            return method          # their backward seeds itself (a non-scalar output too)
        return lambda: method(grad)
    if not callable(backward):
        raise TypeError(f"backward must be a function, got {type(backward).__name__}")
    try:
        required = [p for p in inspect.signature(backward).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        required = []
    if len(required) >= 1:
        return lambda: backward(source)
    return backward


def _has_field(obj, name) -> bool:
    try:
        value = getattr(obj, name)
    except Exception:
        return False
    return not inspect.ismethod(value)


def _takes_an_argument(function) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in parameters)


def observe_backward(out, backward=None, timeout=10.0, *, grad=None, restore=True) -> Observation:
    """Run the student's own backward of ``out`` (``out.backward()``, or ``backward()`` /
    ``backward(out)`` when given) under a tracer and return what it did, step by step.

    ``timeout`` (seconds) stops a backward that is still running then. With ``restore``
    (the default) every field of every node is put back afterwards; ``restore=False``
    leaves what the student's code did, as running their own cell would."""
    root = as_node(out, "observe_backward")     # the adapter registered by this package
    if not isinstance(root, ForeignNode):
        raise TypeError("observe_backward watches another class's backward(); ad_magic's own Tensor is stepped "
                        "with its backward_steps().")
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    graph = root.graph
    if graph.adapter.grad_field(root.source) is None and not any(
            _has_field(root.source, name) for name in GRAD):
        raise AdapterError(f"{type(root.source).__name__} keeps no grad on its nodes (no field that is None or zero "
                           "before backward, or that backward() fills): ad_magic watches each node's grad field, so "
                           "grads kept elsewhere (a dict on a graph object) cannot be observed; keep each node's grad "
                           "on the node (self.grad).")
    nodes = list(graph.order_from(root))
    computed = [n for n in nodes if n.parents]
    if backward is None and computed and not any(graph.adapter.has_backward(n) for n in computed):
        raise AdapterError(f"no node of this graph has a backward rule yet ({graph.adapter.kind}; looked for "
                           f"{'/'.join(RULES)}): give each operation's output a _backward closure first, or, if a "
                           "function of yours runs the whole backward pass, pass it: "
                           "BackwardStepper(out, backward=my_backward).")
    call = _backward_callable(root, backward, grad)
    saved = graph.preserved() if restore else contextlib.nullcontext()
    with saved:
        grads = GradFields(nodes)
        before = list(grads.values)
        rules = rules_of(nodes)
        watcher = _RuleWatcher(grads, rules, timeout, watched_files(nodes, rules, call, backward))
        error = None
        timed_out = False
        with traced(watcher):
            try:
                call()
            except StopObserving:
                timed_out = True
            except RecursionError as exc:
                error = exc
            except Exception as exc:       # the student's own error: shown up to the raise
                error = exc
        seconds = time.monotonic() - watcher.started
        watcher.stack.clear()
        watcher.look_everywhere()
        after = list(grads.values)
    return _assemble(root, nodes, watcher, before, after, error, timed_out, seconds)


class _RuleWatcher(Watcher):
    """The tracer's watcher, with a node's own rule always watched (its code may live
    anywhere: in ad_magic, a rule of the practical's checker) and the line that called each
    rule noted when the rule starts (a finished frame no longer says where its caller was)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.called_at = {}          # a rule's call -> "line N of f" of the code that called it

    def watches(self, code) -> bool:
        return code in self.rules or super().watches(code)

    def enter(self, frame):
        try:
            super().enter(frame)
        finally:                 # also when the time limit stops the code as the rule starts
            call = self.stack[-1] if self.stack else None
            if call is not None and call.frame is frame and call.rule_of is not None:
                caller = frame.f_back
                if caller is not None:
                    self.called_at[call] = f"line {caller.f_lineno} of {caller.f_code.co_name}"


# ------------------------------------------------------------------ from changes to steps

def _assemble(root, nodes, watcher, before, after, error, timed_out, seconds):
    state = list(before)
    position = {id(n): j for j, n in enumerate(nodes)}
    steps, order, calls = [], [], []
    pending = []              # consecutive batches of the same owner: one step
    owner = None

    raised = watcher.raised_in[0].owner() if error is not None and watcher.raised_in else None
    failed = raised if raised is not None and raised.rule_of is not None else None

    def returned_into(call, changes):
        """The grads the rule ``call`` returned, added into its inputs by the code that called it."""
        if call is None or not call.returned or not changes:
            return False
        inputs = {id(p) for p in nodes[call.rule_of].parents}
        return all(id(nodes[j]) in inputs for j, _, _ in changes)

    stopped_in = watcher.stopped_in.owner() if timed_out and watcher.stopped_in is not None else None

    def flush():
        nonlocal pending, owner
        if owner is not None and not (owner is stopped_in and not pending):   # cut off before it did anything
            _steps_of(owner, pending, nodes, state, steps, order, root, position,
                      calls=calls, called_at=watcher.called_at.get(owner, ""),
                      error=error if owner is failed else None,
                      note=STOPPED_NOTE if owner is stopped_in else None)
        pending, owner = [], None

    parents_of = [{position[id(p)] for p in n.parents if id(p) in position} for n in nodes]
    inline = {}               # a consumer whose terms backward() computed itself -> its owner

    def pieces(b, call, changes):
        """The batch, or (outside the nodes' rules, on a line that names the nodes it uses)
        its changes split by the consumer whose chain-rule term each one is."""
        mine = call.owner() if call is not None else None
        named = watcher.named.get(b)
        if returned_into(owner, changes):
            return [(owner, changes)]
        if not named or (mine is not None and mine.rule_of is not None):
            return [(mine if mine is not None and mine.rule_of is not None else None, changes)]
        split, rest = {}, []
        for change in changes:
            c = _consumer(change, named, parents_of, nodes, root)
            if c is None:
                rest.append(change)
            else:
                split.setdefault(inline.setdefault(c, _Inline(c)), []).append(change)
        for j in watcher.unchanged.get(b, ()):      # a term that ran and added nothing (its upstream was 0)
            c = next((c for c in named if j in parents_of[c]), None)
            if c is not None:
                split.setdefault(inline.setdefault(c, _Inline(c)), [])
        return ([(None, rest)] if rest else []) + list(split.items())

    for b, (call, changes) in enumerate(watcher.batches):
        for key, part in pieces(b, call, changes):
            if key is None and returned_into(owner, part):
                key = owner
            if key is not None and key is owner:
                pending.extend(part)
                continue
            flush()
            if key is None:
                _steps_of(None, part, nodes, state, steps, order, root, position)
            else:
                owner, pending = key, list(part)
    flush()
    where_text = None
    if error is not None:
        where_text = where(error)
        if failed is None:
            text = f"your backward raised {type(error).__name__}: {error}" + (f" ({where_text})" if where_text else "")
            steps.append(ObservedStep(len(steps) + 1, "error", None, {}, text, function="backward", note=text,
                                      error=error, where=where_text))
    stopped = None
    if timed_out:
        stopped = _line_text(*watcher.stopped_at) if watcher.stopped_at else None
        steps.append(ObservedStep(len(steps) + 1, "stopped", None, {},
                                  f"stopped after {seconds:.2g} s" + (f", {stopped}" if stopped else ""),
                                  function="backward", note="it did not finish"))
    grads = {n: after[i] for i, n in enumerate(nodes)}
    if timed_out and watcher.runaway:
        stopped = f"its rules had run {watcher.rule_calls} times for {len(nodes)} nodes, {stopped}"
    problems = _problems(root, nodes, steps, before, after, error, where_text, timed_out, stopped,
                         seconds)
    return Observation(root, steps, grads, {n: before[i] for i, n in enumerate(nodes)}, order,
                       None if error is None else (error, where_text), timed_out, problems, seconds, calls)


class _Inline:
    """A node whose chain-rule terms ``backward()`` computed itself (it has no rule of its
    own): what the lines naming it changed in its inputs' grads is judged as its rule."""

    returned = False

    def __init__(self, i):
        self.rule_of = i


def _consumer(change, named, parents_of, nodes, root):
    """The node, among those the line ``named``, whose chain-rule term ``change`` is: one
    that uses the changed node (the first the line names). None for the zeroing, the seed,
    and a change no named node explains."""
    j, _, new = change
    if nodes[j] is root or new is None or not np.any(new):
        return None
    for c in named:
        if j in parents_of[c]:
            return c
    return None


def _steps_of(owner, changes, nodes, state, steps, order, root, position, error=None, note=None, calls=None,
              called_at=""):
    """Turn one owner's changes into steps: a node's rule is one ForeignStep (and one
    RuleCall in ``calls``); what backward() itself did is split into the zeroing, the seed,
    and the rest."""
    if owner is not None:
        i = owner.rule_of
        node = nodes[i]
        if not changes and not node.parents and error is None:
            return               # a leaf's `lambda: None`
        upstream = state[i]
        if calls is not None:
            entry = {node: upstream}
            for p in node.parents:
                if id(p) in position:
                    entry[p] = state[position[id(p)]]
            calls.append(RuleCall(node, entry, called_at))
        touched = {j for j, _, _ in changes} | {position[id(p)] for p in node.parents if id(p) in position} | {i}
        before_d = {id(nodes[j]): state[j] for j in touched}
        for j, _, new in changes:
            if state[j] is None and new is not None:
                before_d[id(nodes[j])] = np.zeros_like(new)    # None: no contribution yet (zero so far)
            state[j] = new
        after_d = {id(nodes[j]): state[j] for j in touched}
        step = ForeignStep(len(steps) + 1, node, before_d, after_d, upstream, error=error, note=note,
                           watched=[nodes[j] for j in sorted(touched)], inline=isinstance(owner, _Inline))
        steps.append(step)
        order.append(node)
        return
    zeros, seed, rest = {}, {}, {}
    first = {}
    for j, old, new in changes:
        first.setdefault(j, old)
        state[j] = new
    for j, old in first.items():
        new = state[j]
        if same_value(old, new):
            continue
        node = nodes[j]
        if node is root and new is not None and np.all(new == 1):
            seed[node] = (old, new)
        elif new is not None and not np.any(new):
            zeros[node] = (old, new)
        else:
            rest[node] = (old, new)
    if zeros:
        last = steps[-1] if steps else None
        if isinstance(last, ObservedStep) and last.kind == "zero" and not (set(zeros) & set(last.changes)):
            steps.pop()          # one zeroing, even when each grad is set by a call of its own (a property)
            zeros = {**last.changes, **zeros}
        shown = ", ".join(label(n) for n in list(zeros)[:3]) + (", …" if len(zeros) > 3 else "")
        steps.append(ObservedStep(len(steps) + 1, "zero", None, zeros,
                                  f"your backward set {len(zeros)} grad(s) to zero ({shown})", function="zeroing"))
    if seed:
        (old, new), = seed.values()
        steps.append(ObservedStep(len(steps) + 1, "seed", root, seed,
                                  f"your backward set the output's grad to {format_value(new)} (the seed)",
                                  function="seed"))
    if rest:
        shown = "; ".join(f"{label(n)}: {format_value(o)} → {format_value(v)}" for n, (o, v) in list(rest.items())[:3])
        steps.append(ObservedStep(len(steps) + 1, "other", None, rest,
                                  f"your code outside the nodes' rules changed {len(rest)} grad(s): {shown}",
                                  function="backward"))


def _line_text(code, line) -> str:
    text = linecache.getline(code.co_filename, line).strip()
    return f"in {code.co_name}, line {line}" + (f" — {text}" if text else "")


# ------------------------------------------------------------------ what went wrong

def _stable_key(node, depth):
    """A key that depends on the graph only (never on memory addresses)."""
    try:
        value = format_value(node.data)
    except Exception:
        value = ""
    return (depth.get(node, 0), node.graph.display.get(node) or node.name or "", node._function or "", value)


def _depths(root, nodes) -> dict:
    """Each node's longest distance from the output (the output 0)."""
    depth = {root: 0}
    for node in reversed(nodes):
        d = depth.get(node)
        if d is None:
            continue
        for p in node.parents:
            if depth.get(p, -1) < d + 1:
                depth[p] = d + 1
    return depth


def _chain_rule(root, nodes, seed):
    """Every grad as the chain rule gives it (the registry's ops, and ops whose derivative
    was measured from the student's forward; NaN where a measured op has a kink), and the
    relative tolerance they hold to; or (None, None) when a node's op is neither."""
    rtol = 1e-6
    grads = {n: np.zeros(n.shape) for n in nodes}
    grads[root] = np.broadcast_to(seed, root.shape).astype(np.float64)
    for node in reversed(nodes):
        if not node.parents:
            continue
        rule = expected(node, grads[node])
        if rule is None or rule.operands is None:
            rule = measured(node, grads[node])      # an op the registry does not know, measured
        if rule is None or rule.operands is None:
            return None, None
        rtol = max(rtol, rule.rtol)
        for parent, contribution in rule.contributions.items():
            if parent in grads:
                grads[parent] = grads[parent] + contribution
    return grads, rtol


def _problems(root, nodes, steps, before, after, error, where_text, timed_out, stopped, seconds):
    problems = []
    depth = _depths(root, nodes)
    position = {n: i for i, n in enumerate(nodes)}
    rule_steps = [s for s in steps if isinstance(s, ForeignStep) and s.error is None and s.note != STOPPED_NOTE]
    # 1. the seed: the output's grad when its own rule ran (or when the first rule ran)
    first_root = next((s for s in rule_steps if s.node is root), None)
    if root.parents and rule_steps:
        upstream = first_root.upstream if first_root is not None else None
        if first_root is not None and (upstream is None or not np.any(upstream)):
            problems.append(f"the output's grad was {format_value(upstream) if upstream is not None else None} "
                            f"when its own rule ran: your backward never seeds it with 1 (out.grad = 1) before "
                            "running the rules, so no gradient flows.")
    # 2. the order: a rule that ran before the rules of all its node's consumers
    consumers = {}
    for node in nodes:
        for p in set(node.parents):
            consumers.setdefault(p, []).append(node)
    ran_at = {}
    for k, s in enumerate(rule_steps):
        ran_at.setdefault(s.node, k)
    early = []
    for node, k in ran_at.items():
        for consumer in consumers.get(node, ()):
            if ran_at.get(consumer, -1) > k:
                early.append((_stable_key(node, depth), _stable_key(consumer, depth), node, consumer))
    if early:
        early.sort(key=lambda e: (e[0], e[1]))
        _, _, node, consumer = early[0]
        problems.append(f"the rule of {_who(node)} ran before the rule of {_who(consumer)}, which uses it: "
                        f"{_who(node)}'s grad was not complete yet; run the rules in reverse topological order "
                        "(every node after all the nodes that use it).")
    # 3. overwriting instead of adding, and other steps that disagree with the chain rule
    overwrote = [s for s in rule_steps if not s.ok and s.note and "overwrote" in s.note]
    if overwrote:
        s = min(overwrote, key=lambda s: _stable_key(s.node, depth))
        problems.append(s.note)    # no step number: their order may follow a set's, which varies
    wrong = [s for s in rule_steps if not s.ok and s not in overwrote]
    if wrong:
        s = min(wrong, key=lambda s: _stable_key(s.node, depth))
        problems.append(s.note)    # no step number: their order may follow a set's, which varies
    # 4. the error and its line; 5. the loop
    if error is not None:
        hint = ""
        if isinstance(error, RecursionError):
            hint = ": a recursive walk of the graph goes deeper than Python allows; walk it with a loop and a stack"
        elif "NoneType" in str(error):
            hint = ": a grad was still None; give every grad a starting value (zero) before adding into it"
        problems.append(f"your backward raised {type(error).__name__}: {error}"
                        + (f" ({where_text})" if where_text else "") + hint + ".")
    if timed_out:
        problems.append(f"your backward was still running after {seconds:.2g} s and was stopped"
                        + (f" ({stopped})" if stopped else "") + ": a loop that does not end?")
    # 6. the result
    if error is None and not timed_out and not problems:     # a wrong result no cause above explains
        truth, rtol = _chain_rule(root, nodes, 1.0) if root.size == 1 else (None, None)
        if truth is not None:
            for node in sorted((n for n in nodes if n.is_leaf and n.requires_grad),
                               key=lambda n: _stable_key(n, depth)):
                got = after[position[node]]
                want = truth[node]
                known = np.isfinite(want)          # NaN: below an op's kink, where any subgradient is right
                if got is None or got.shape != want.shape or not np.allclose(
                        got[known], want[known], rtol=rtol, atol=1e-9 if rtol <= 1e-6 else 1e-6):
                    problems.append(f"in the end {_who(node)}'s grad is "
                                    f"{format_value(got) if got is not None else None}, but the chain rule "
                                    f"gives {format_value(want)}.")
                    break
    return problems


def _who(node) -> str:
    """A node in a finding: its name, else its op and value (two results of one op differ)."""
    if node.graph.display.get(node) or node.name or not node._function:
        return label(node)
    return f"the {node._function} result {format_value(node.data)}"
