"""Which of the user's variables hold the tensors of a graph.

The magic labels the graph's nodes with the user's variable names, lists the leaves
(or the ``--wrt`` tensors) in its gradient table, and takes them as the parameters of
``--descent``. Scanning the namespace touches the user's objects (a Module's
``parameters()``), so an object that raises while being looked at is skipped: one
misbehaving object never makes every cell fail.
"""
from __future__ import annotations

from IPython.core.error import UsageError

from ..engine import Tensor, topological_order
from ..engine.formatting import a_type

__all__ = ["Named", "namespace_names", "resolve_wrt", "leaves", "SavedVariables"]

_MISSING = object()


class Named:
    """A tensor of the graph with its label and the variable that holds it (or None)."""

    __slots__ = ("tensor", "label", "variable")

    def __init__(self, tensor, label, variable):
        self.tensor, self.label, self.variable = tensor, label, variable


def _is(value, kind):
    """isinstance(value, kind), False if the object raises when asked (a broken __class__)."""
    try:
        return isinstance(value, kind)
    except Exception:
        return False


def _parameters(module):
    """The module's parameters, or None when its parameters() raises."""
    try:
        return [p for p in module.parameters() if _is(p, Tensor)]
    except Exception:   # e.g. RecursionError from a module that refers back to its owner
        return None


def _tensor(value):
    """A namespace value as a node of ad_magic's own graphs: the Tensor itself, or None."""
    return value if _is(value, Tensor) else None


def namespace_names(ns, graph_ids, preferred, node_of=_tensor):
    """{id(tensor): Named} for the graph's tensors bound in the user namespace.

    Names in `preferred` (those the cell binds) win over older aliases; private names
    (``_``, ``_3``, ``_autodiff_output``) are ignored. A Module's parameters get
    ``module.W``-style labels; a Module whose parameters() raises is skipped.
    ``node_of`` turns a value into the graph's node (another library's graph: the node
    wrapping the student's object), or None.
    """
    from ..engine.nn import Module

    found = {}
    public = sorted(n for n in ns if isinstance(n, str) and not n.startswith("_"))
    for name in [n for n in preferred if not n.startswith("_")] + public:
        node = node_of(ns.get(name, None))
        if node is not None and id(node) in graph_ids and id(node) not in found:
            found[id(node)] = Named(node, name, name)
    for name in public:
        value = ns.get(name)
        if not _is(value, Module):
            continue
        for i, p in enumerate(_parameters(value) or ()):
            if id(p) in graph_ids and id(p) not in found:
                found[id(p)] = Named(p, f"{name}.{p.name or f'parameters()[{i}]'}", name)
    return found


def resolve_wrt(spec, ns, graph_ids, named, node_of=_tensor):
    """The tensors --wrt names, as Named (a Module stands for its parameters); ``node_of``
    as in :func:`namespace_names`."""
    from ..engine.nn import Module

    items = [s.strip() for s in spec.strip().strip("'\"").split(",")]   # IPython keeps quotes
    if not any(items):
        raise UsageError("--wrt: give variable names separated by commas, e.g. --wrt x,y.")
    chosen = []
    for name in items:
        if not name:
            continue
        if not name.isidentifier():
            raise UsageError(f"--wrt: {name!r} is not a variable name; separate names with commas, "
                             "e.g. --wrt x,y.")
        if name not in ns:
            raise UsageError(f"--wrt: there is no variable named {name!r}.")
        value = ns[name]
        node = node_of(value)
        if node is not None:
            if id(node) not in graph_ids:
                raise UsageError(f"--wrt: the output does not depend on {name!r}.")
            if not node.requires_grad:
                raise UsageError(f"--wrt: {name!r} has requires_grad=False, so it has no gradient.")
            chosen.append(Named(node, name, name))
        elif _is(value, Module):
            params = _parameters(value)
            if params is None:
                raise UsageError(f"--wrt: {name}.parameters() raised an error, so its parameters "
                                 "are unknown; name its tensors instead.")
            params = [p for p in params if id(p) in graph_ids]
            if not params:
                raise UsageError(f"--wrt: the output does not depend on the parameters of {name!r}.")
            for p in params:
                mine = id(p) in named and named[id(p)].variable == name
                label = named[id(p)].label if mine else f"{name}.{p.name or 'parameter'}"
                chosen.append(Named(p, label, name))
        else:
            raise UsageError(f"--wrt: {name!r} is {a_type(value)}, not a Tensor.")
    unique = {}
    for item in chosen:
        unique.setdefault(id(item.tensor), item)
    return list(unique.values())


def leaves(output, named, names=None, order=None):
    """The leaves backward() differentiates with respect to, labelled: by their variable,
    else by ``names`` ({tensor: name}: the name the picture and the stepper give them).
    ``order``: the graph's nodes, parents first (default: the engine's order of ``output``)."""
    rows, unnamed = [], 0
    names = {id(t): n for t, n in (names or {}).items()}
    for t in topological_order(output, only_grad=True) if order is None else order:
        if t.is_leaf:
            if id(t) in named:
                rows.append(named[id(t)])
            else:
                unnamed += 1
                rows.append(Named(t, names.get(id(t)) or t.name or f"(unnamed leaf {unnamed})", None))
    return rows


# ------------------------------------------------------------ putting things back

class SavedVariables:
    """Variables of the namespace, to put back after --check's re-runs rebound them."""

    def __init__(self, ns, variables):
        self.ns = ns
        self.variables = {n: ns.get(n, _MISSING) for n in variables}

    def restore(self):
        for name, value in self.variables.items():
            if value is _MISSING:
                self.ns.pop(name, None)
            else:
                self.ns[name] = value
