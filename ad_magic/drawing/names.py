"""What the widgets call each tensor: the user's names, else a name that cannot clash.

The ``%%autodiff`` magic passes the cell's variable names; a user may pass a dict keyed
either way (``{x: "x"}`` or ``{"x": x}``). :func:`normalize_names` turns either into
``{tensor: name}``. :func:`complete_names` adds a name for every other tensor of the
graph, so a caption, a rule line, a card and the picture call one tensor by one name:

* an unnamed intermediate value is called after its operation and a subscript, in the
  order the forward pass computes them: ``mul₁``, ``mul₂``, ``tanh₁``; an unnamed leaf
  ``leaf₁``, an unnamed array constant ``const₁``. A subscript digit cannot be typed in
  a Python name (``mul₁`` is read as ``mul1``), so such a name never clashes with one of
  the user's variables — nor with the letters ``a``, ``b``, ``out`` of the registry's
  formulas, which are replaced by the tensors' names wherever a rule is shown;
* an unnamed output is ``L`` (the loss), unless another tensor is called ``L``;
* a one-element constant keeps its value as its name in the text (``5.0``): the picture
  draws it by its value already;
* two tensors given the same name are told apart by a subscript (``W``, ``W₂``).

:class:`DisplayNames` answers "what is this tensor called?" (:meth:`~DisplayNames.ref`:
the same name, bracketed when it is an expression, for use inside a formula).
"""
from __future__ import annotations

import re

from ..engine.formatting import format_number
from .nodes import graph_order, is_node, node_names

__all__ = ["normalize_names", "complete_names", "DisplayNames", "subscript", "LOSS"]

LOSS = "L"                    # what the captions call the output: ∂L/∂x
_LOSS_ELSEWHERE = "ℒ"         # ... when a tensor other than the output is called L
_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_NOT_A_WORD = re.compile(r"\W+")
_BACKWARD = re.compile(r"Backward\d*$")
# A name that reads as one term inside a formula: a Python name, dotted or indexed
# (model.W, parameters()[0]), a number, a generated name (mul₁). Anything else
# (an expression such as "a * b + c") is bracketed where a formula uses it.
_ONE_TERM = re.compile(r"^(?:[^\W\d][\w.]*(?:\(\))?(?:\[[^\]\s]*\])*|\d[\w.]*|\([^()]*\))$")


def subscript(n: int) -> str:
    """``n`` in subscript digits (``12`` -> ``₁₂``)."""
    return str(n).translate(_SUBSCRIPTS)


def normalize_names(names, node=None) -> dict:
    """{tensor: name} from a ``names=`` argument: the one reading every entry point
    (drawings, `GraphView`, the stepper, the explorer) gives it.

    ``names`` is None or a dict keyed either way: ``{x: "speed"}`` or ``{"speed": x}``.
    With ``node`` (the graph's output), objects of another library's graph are re-keyed
    by that graph's nodes. Anything but a dict, or an entry with a tensor on neither
    side, is a TypeError in one sentence.
    """
    if names is None:
        return {}
    if not hasattr(names, "items") or isinstance(names, type):
        raise TypeError(f'names must be a dict mapping tensors to names ({{x: "x"}}) or names to tensors '
                        f'({{"x": x}}), got {type(names).__name__}')
    for key, value in names.items():
        if not (is_node(key) or is_node(value)) and not _foreign(key, value, node):
            raise TypeError(f"names: the entry {_short(key)}: {_short(value)} has a tensor on neither side; "
                            'map a tensor to its name ({x: "x"}) or a name to its tensor ({"x": x})')
    if node is not None:
        names = node_names(node, names)
    out = {}
    for key, value in names.items():
        if is_node(key) and value is not None:
            out[key] = str(value)
        elif is_node(value) and key is not None:
            out.setdefault(value, str(key))
    return out


def _foreign(key, value, node) -> bool:
    """Could this entry name a node of another library's graph (a micrograd Value, a
    student's Tensor, a PyTorch tensor)? Only a plain name beside a plain value cannot."""
    plain = (str, bytes, int, float, complex, bool, type(None))
    return node is not None and not (isinstance(key, plain) and isinstance(value, plain))


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _order(output) -> list:
    """Every node of ``output``'s graph, parents before children, ``output`` last."""
    return graph_order(output)


def _is_constant(t) -> bool:
    return t.is_leaf and not t.requires_grad


def _operation(t) -> str:
    """The word a generated name starts with: the operation's registry name when known
    (a foreign node's ``*`` is ``mul``), else its function's name (PyTorch's
    ``MulBackward0``: ``mul``), else ``op``."""
    word = getattr(t, "kind", None) or t._function or ""
    word = _BACKWARD.sub("", str(word))              # PyTorch's MulBackward0 is a mul
    word = _NOT_A_WORD.sub("", word)
    if word[:1].isupper() and word[1:2].islower():
        word = word[0].lower() + word[1:]
    return word if word and not word[0].isdigit() else "op"


def complete_names(output, names=None) -> dict:
    """{tensor: name} for every tensor of ``output``'s graph but the one-element
    constants (drawn by their value): ``names`` (either direction; ``tensor.name``
    where a tensor has none), then generated names (see the module's doc)."""
    given = normalize_names(names)
    by_id = {id(t): str(n) for t, n in given.items() if str(n).strip()}
    order = _order(output)
    chosen, taken, counts = {}, set(), {}

    def generated(word):
        n = counts.get(word, 0)
        while True:
            n += 1
            name = f"{word}{subscript(n)}"
            if name not in taken:
                counts[word] = n
                return name

    # The user's names first (their own tensors keep exactly the name they gave)...
    for t in order:
        name = by_id.get(id(t)) or (str(t.name) if t.name is not None and str(t.name).strip() else None)
        if name is None:
            continue
        if name in taken:     # two tensors called alike: the later ones get a subscript
            n = 2
            while f"{name}{subscript(n)}" in taken:
                n += 1
            name = f"{name}{subscript(n)}"
        chosen[id(t)] = name
        taken.add(name)
    # ... then the output, as the loss, and a name for every other node.
    if id(output) not in chosen and LOSS not in taken:
        chosen[id(output)] = LOSS
        taken.add(LOSS)
    for t in order:
        if id(t) in chosen:
            continue
        if t.is_leaf:
            if _is_constant(t) and t.size == 1:
                continue
            name = generated("const" if _is_constant(t) else "leaf")
        else:
            name = generated(_operation(t))
        chosen[id(t)] = name
        taken.add(name)
    return {t: chosen[id(t)] for t in order if id(t) in chosen}


def bracketed(name: str) -> str:
    """``name`` as one term of a formula: an expression such as ``a * b`` in brackets."""
    return name if _ONE_TERM.match(name) else f"({name})"


class DisplayNames:
    """Display names: the user's names, else ``tensor.name``, else (with ``output``)
    the generated names of :func:`complete_names`, else the value of a one-element
    constant (``3.0``), else None."""

    def __init__(self, names: dict, output=None):
        if output is not None:
            names = complete_names(output, names)
        self.names = dict(names)      # {tensor: name}: what the picture writes in each box
        self._by_id = {id(t): n for t, n in names.items()}
        self.output = output
        used_elsewhere = any(n == LOSS for t, n in names.items() if t is not output)
        self.loss = _LOSS_ELSEWHERE if used_elsewhere else LOSS

    def __call__(self, t) -> str | None:
        name = self._by_id.get(id(t)) or t.name
        if name:
            return str(name)
        if _is_constant(t) and t.size == 1:
            return format_number(t.item())
        return None

    def ref(self, t) -> str | None:
        """The name as one term of a formula (``(a * b + c)``, ``x``, ``(-1.0)``)."""
        name = self(t)
        return None if name is None else bracketed(name)

    def grad(self, t) -> str:
        """``∂L/∂x``: the symbol of ``t``'s gradient."""
        return f"∂{self.loss}/∂{self.ref(t)}"
