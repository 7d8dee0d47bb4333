"""Which of the user's variables hold the tensors of a graph.

The magic labels the graph's nodes with the user's variable names, lists the leaves
(or the ``--wrt`` tensors) in its gradient table, and takes them as the parameters of
``--descent``. Scanning the namespace touches the user's objects (a Module's
``parameters()``), so an object that raises while being looked at is skipped: one
misbehaving object never makes every cell fail.
"""
from __future__ import annotations

import numpy as np
from IPython.core.error import UsageError

from ..engine import Tensor, topological_order
from ..engine.formatting import a_type

__all__ = ["Named", "namespace_names", "resolve_wrt", "leaves", "SavedVariables", "NamedPictures"]

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


def namespace_names(ns, graph_ids, preferred, graph=(), node_of=_tensor):
    """{id(tensor): Named} for the graph's tensors bound in the user namespace.

    Names in `preferred` (those the cell binds) win over older aliases; private names
    (``_``, ``_3``, ``_autodiff_output``) are ignored. A Module's parameters get
    ``module.W``-style labels; a Module whose parameters() raises is skipped. With
    `graph` (the graph's tensors), a constant made from a NumPy array of the namespace
    (``X @ w - Y``) is labelled with the array's variable, ``X``, not ``const₁``.
    ``node_of`` turns a value into the graph's node (another library's graph: the node
    wrapping the student's object), or None.
    """
    from ..engine.nn import Module

    found = {}
    public = sorted(n for n in ns if isinstance(n, str) and not n.startswith("_"))
    in_order = [n for n in preferred if not n.startswith("_")] + public
    for name in in_order:
        node = node_of(ns.get(name, None))
        if node is not None and id(node) in graph_ids and id(node) not in found:
            found[id(node)] = Named(node, name, name)
    found.update(_array_names(ns, in_order, [t for t in graph if id(t) not in found and _is(t, Tensor)]))
    for name in public:
        value = ns.get(name)
        if not _is(value, Module):
            continue
        for i, p in enumerate(_parameters(value) or ()):
            if id(p) in graph_ids and id(p) not in found:
                found[id(p)] = Named(p, f"{name}.{p.name or f'parameters()[{i}]'}", name)
    return found


def _array_names(ns, names, graph):
    """{id(constant): Named} for the constant leaves of `graph` holding an array that a
    variable of `names` holds: the same array (NumPy arrays of floats go into a constant
    as they are), else the one variable whose array has the same shape and values (an
    array of ints becomes a float copy). Two variables with equal arrays: no label."""
    constants = [t for t in graph if t.is_leaf and not t.requires_grad and t.data.ndim > 0]
    if not constants:
        return {}
    arrays = {}                                   # variable name -> its array, first name per object
    for name in names:
        value = ns.get(name, None)
        if _is(value, np.ndarray) and value.ndim > 0 and name not in arrays:
            arrays[name] = value
    found, by_object = {}, {}
    for name, value in arrays.items():
        by_object.setdefault(id(value), name)
    for t in constants:
        name = by_object.get(id(t.data))
        if name is None:
            same = {id(v): n for n, v in arrays.items()
                    if v.shape == t.shape and v.dtype.kind in "biuf" and np.array_equal(v, t.data)}
            name = next(iter(same.values())) if len(same) == 1 else None
        if name is not None:
            found[id(t)] = Named(t, name, name)
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


# ------------------------------------------------------------ a tensor at the end of a cell

class NamedPictures:
    """While the extension is loaded, a Tensor shown at the end of a cell (a bare ``f``) is
    drawn with the names the notebook gives its tensors — ``f``, ``x``, the arrays ``X``,
    ``net.layers[0].W`` — as ``%%autodiff`` draws them, not ``L`` and ``leaf₁``. It is
    IPython's MIME-bundle formatter for Tensor: :meth:`register` puts it in, :meth:`remove`
    takes it out again (``%unload_ext``)."""

    def __init__(self, ip):
        self.ip = ip

    def names(self, tensor) -> dict:
        """{tensor: variable label} for the tensors of ``tensor``'s graph the namespace holds."""
        graph = topological_order(tensor)
        named = namespace_names(self.ip.user_ns, {id(t) for t in graph}, (), graph)
        return {n.tensor: n.label for n in named.values()}

    def __call__(self, tensor):
        from ..drawing import repr_mimebundle

        try:
            names = self.names(tensor)
        except Exception:      # the namespace's own objects misbehaving: draw without names
            names = None
        return repr_mimebundle(tensor, names=names)

    @staticmethod
    def _formatter(ip):
        return ip.display_formatter.mimebundle_formatter

    @classmethod
    def register(cls, ip) -> None:
        cls._formatter(ip).for_type(Tensor, cls(ip))

    @classmethod
    def remove(cls, ip) -> None:
        formatter = cls._formatter(ip)
        if isinstance(formatter.type_printers.get(Tensor), cls):
            formatter.pop(Tensor)
