"""The ``%%autodiff`` and ``%autodiff`` magics (``%load_ext ad_magic``).

A learner writes a loss in a cell::

    %%autodiff
    x = Tensor(3.0)
    loss = x * x + 4 * x + 2

and sees the computation graph (values, grads, the cell's variable names), a table of
the leaves' gradients and a BackwardStepper. With ``--descent`` the cell becomes the
loss of its parameters and a DescentExplorer shows gradient descent on it.

How the magic treats the cell (it calls the same functions a user would call):

* The cell runs in the user namespace, like a normal cell: its variables stay. Errors in
  the user's own code propagate with the traceback pointing at their line (the cell is
  compiled under a file name IPython's traceback printer knows); mistakes in using the
  magic are ``UsageError``\\ s of one sentence.
* The output is the variable NAME, else the value of the cell's last expression, else
  the variable ``loss`` (when the cell assigns it).
* ``--check`` and ``--descent`` need the cell as a *function of its parameters*. The
  cell is compiled a second time with its assignments to the parameters' variables left
  out (``x = Tensor(3.0)``, also in tuples and inside if/for/with/try blocks; a Module
  given to ``--wrt`` counts as its parameters' variable), so running it again reads the
  parameters' current data instead of re-creating them: ``--check`` nudges a parameter's
  data in place and re-runs it (central differences, through
  :func:`ad_magic.gradcheck.gradcheck`), ``--descent`` re-runs it once per iteration.
  These re-runs are silent (their prints are dropped). After ``--check`` the cell's
  variables are put back as the first run left them; after ``--descent`` they hold the
  final iteration, unless descent failed, in which case everything is put back.
* What the next cell can inspect: ``_autodiff`` (the BackwardStepper or
  DescentExplorer; None with ``--static``), ``_autodiff_output`` (the output tensor)
  and ``_autodiff_grads`` ({name: gradient}).
"""
from __future__ import annotations

import ast
import base64
import copy
import html
import math

import numpy as np
from IPython.core.compilerop import PyCF_MASK
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display
from IPython.utils.capture import capture_output

from .engine import Tensor, topological_order
from .gradcheck import gradcheck
from .render import RenderError

__all__ = ["AutodiffMagics", "CellSyntaxError", "GradientTable", "load_ipython_extension", "unload_ipython_extension"]

OPTIMIZERS = ("sgd", "momentum", "adam")
DEFAULT_LR = 0.1
DEFAULT_STEPS = 50
DEFAULT_OPTIMIZER = "sgd"
OUTPUT_FALLBACK = "loss"
MAX_LABEL_CHARS = 24
CHECK_MAX_ELEMENTS = 2000

# Options that take a value, for splitting "%autodiff [options] EXPR" by hand: the
# expression is Python, which shell-style splitting would mangle.
_VALUED_OPTIONS = ("--wrt", "--lr", "--steps", "--optimizer")
_MISSING = object()


class CellSyntaxError(Exception):
    """A syntax error in the magic's cell or expression. IPython shows it exactly as a
    syntax error in a normal cell (no frames of IPython or of the magic), and the cell
    fails, so "Run all" stops there."""

    def __init__(self, error, rendered):
        super().__init__(f"{type(error).__name__}: {error.msg} (line {error.lineno})")
        self.error, self._rendered = error, rendered

    def _render_traceback_(self):
        return self._rendered


class _UserCodeError(Exception):
    """The user's own code raised: carries their exception and the traceback from
    their first frame on, to re-raise it from the magic as if the cell had raised it."""

    def __init__(self, exception, traceback):
        super().__init__(exception)
        self.exception, self.traceback = exception, traceback


# ------------------------------------------------------------------ the user's code

def _bound_names(statements):
    """Names a block of statements binds at its own scope (not inside functions,
    classes, lambdas or comprehensions), in the order they are bound."""
    names = []

    def visit(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
            return
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.append(node.id)
        elif isinstance(node, ast.NamedExpr):
            names.append(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.extend((a.asname or a.name).split(".")[0] for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    for statement in statements:
        visit(statement)
    return list(dict.fromkeys(names))


def _assigned_names(target):
    """The plain names an assignment target binds (x, (x, y), [x, *rest])."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Tuple, ast.List)):
        return set().union(*(_assigned_names(t) for t in target.elts)) if target.elts else set()
    if isinstance(target, ast.Starred):
        return _assigned_names(target.value)
    return set()


def _without_assignments(statements, names):
    """The statements with every assignment to one of `names` left out, also inside
    if/for/while/with/try blocks (not inside functions or classes).

    This is what makes a cell a function of its parameters: ``x = Tensor(3.0)`` is
    skipped on re-runs, so ``x`` keeps the data the magic gave it.
    """
    kept = []
    for statement in statements:
        if isinstance(statement, ast.Assign):
            if any(_assigned_names(t) & names for t in statement.targets):
                continue
        elif isinstance(statement, (ast.AugAssign, ast.AnnAssign)):
            if _assigned_names(statement.target) & names:
                continue
        elif not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for field in ("body", "orelse", "finalbody"):
                block = getattr(statement, field, None)
                if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                    setattr(statement, field, _without_assignments(block, names) or [_pass_like(block[0])])
            for part in [*getattr(statement, "handlers", ()), *getattr(statement, "cases", ())]:
                part.body = _without_assignments(part.body, names) or [_pass_like(part.body[0])]
        kept.append(statement)
    return kept


def _pass_like(node):
    return ast.copy_location(ast.Pass(), node)


class _Computation:
    """The cell (or the line magic's expression), compiled to run in the user namespace.

    ``run()`` executes it and returns the output as the magic defines it: the variable
    `output_name`, else the last expression's value, else the variable ``loss``.
    ``run(skip=names)`` runs it without its assignments to those names.
    """

    def __init__(self, shell, source, *, raw, expression, magic, output_name=None):
        self.shell, self.magic = shell, magic
        self.output_name = output_name
        self.expression_only = expression
        self.expression_text = source.strip() if expression else None
        # Cached under the running cell's number, so tracebacks say "Cell In[n]".
        running = getattr(getattr(shell, "displayhook", None), "exec_result", None)
        number = getattr(running, "execution_count", None) or shell.execution_count
        filename = shell.compile.cache(raw, number, raw_code=raw)
        self.filename = filename
        self.flags = shell.compile.flags & PyCF_MASK
        if expression:
            self._expression = self._parse(source.strip(), "eval")
            self.statements = []
        else:
            # The cached text starts with the %%autodiff line, so a leading newline
            # keeps line numbers in errors and tracebacks equal to the cell's own.
            module = self._parse("\n" + source, "exec")
            module = shell.transform_ast(module)
            self.statements = module.body
            self._expression = None
            if self.statements and isinstance(self.statements[-1], ast.Expr):
                last = self.statements.pop()
                self._expression = ast.Expression(last.value)
                self.expression_text = ast.get_source_segment("\n" + source, last.value)
        self.bound = _bound_names(self.statements)
        self.last_value = _MISSING
        self._compiled = {}

    def _parse(self, source, mode):
        try:
            return compile(source, self.filename, mode, self.flags | ast.PyCF_ONLY_AST, dont_inherit=True)
        except SyntaxError as exc:
            rendered = self.shell.SyntaxTB.structured_traceback(type(exc), exc, [])
            raise _UserCodeError(CellSyntaxError(exc, rendered), None) from None

    def _code(self, skip):
        key = frozenset(skip)
        if key not in self._compiled:
            statements = self.statements
            if key:
                statements = _without_assignments(copy.deepcopy(statements), key)
            body = compile(ast.Module(statements, type_ignores=[]), self.filename, "exec",
                           self.flags, dont_inherit=True)
            expression = None
            if self._expression is not None:
                expression = compile(self._expression, self.filename, "eval", self.flags, dont_inherit=True)
            self._compiled[key] = (body, expression)
        return self._compiled[key]

    def run(self, *, skip=(), quiet=False):
        """Execute in the user namespace and return the output (not checked yet)."""
        body, expression = self._code(skip)
        shell = self.shell
        value = _MISSING
        try:
            if quiet:
                with capture_output():
                    exec(body, shell.user_global_ns, shell.user_ns)
                    if expression is not None:
                        value = eval(expression, shell.user_global_ns, shell.user_ns)
            else:
                exec(body, shell.user_global_ns, shell.user_ns)
                if expression is not None:
                    value = eval(expression, shell.user_global_ns, shell.user_ns)
        except Exception as exc:
            # Keep the traceback from the user's first frame on (drop this one).
            raise _UserCodeError(exc, exc.__traceback__.tb_next) from None
        self.last_value = value
        return self._output(value)

    def _output(self, value):
        ns = self.shell.user_ns
        if self.output_name is not None:
            if self.output_name not in ns:
                raise UsageError(f"{self.magic}: the cell did not define {self.output_name!r}, "
                                 "the output you named.")
            return self._require_tensor(ns[self.output_name], f"the output {self.output_name!r}")
        if self.expression_only:
            return self._require_tensor(value, "the expression")
        if isinstance(value, Tensor):
            return value
        # `loss` counts only when this cell assigns it: a `loss` left by an earlier cell
        # would not depend on what this cell computes (and would not change on re-runs).
        if OUTPUT_FALLBACK in self.bound and isinstance(ns.get(OUTPUT_FALLBACK), Tensor):
            return ns[OUTPUT_FALLBACK]
        raise UsageError(
            f"{self.magic}: the cell has no Tensor output; end it with the output's expression, "
            f"assign it to `{OUTPUT_FALLBACK}`, or name it: %%autodiff NAME."
        )

    def _require_tensor(self, value, what):
        if not isinstance(value, Tensor):
            raise UsageError(f"{self.magic}: {what} is a {type(value).__name__}, not a Tensor.")
        return value


# ------------------------------------------------------------ names and parameters

class _Named:
    """A tensor of the graph with its label and the variable that holds it."""

    __slots__ = ("tensor", "label", "variable")

    def __init__(self, tensor, label, variable):
        self.tensor, self.label, self.variable = tensor, label, variable


def _namespace_names(ns, graph_ids, preferred):
    """{id(tensor): _Named} for the graph's tensors bound in the user namespace.

    Names the cell itself binds win over older aliases; private names (``_``, ``_3``,
    ``_autodiff_output``) are ignored. A Module's parameters get ``module.W``-style labels.
    """
    from .nn import Module

    found = {}
    public = sorted(n for n in ns if not n.startswith("_"))
    for name in [n for n in preferred if not n.startswith("_")] + public:
        value = ns.get(name, None)
        if isinstance(value, Tensor) and id(value) in graph_ids and id(value) not in found:
            found[id(value)] = _Named(value, name, name)
    for name in public:
        value = ns.get(name)
        if isinstance(value, Module):
            for i, p in enumerate(value.parameters()):
                if id(p) in graph_ids and id(p) not in found:
                    found[id(p)] = _Named(p, f"{name}.{p.name or f'parameters()[{i}]'}", name)
    return found


def _resolve_wrt(spec, ns, graph_ids, named):
    """The tensors --wrt names, as _Named (a Module stands for its parameters)."""
    from .nn import Module

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
        if isinstance(value, Tensor):
            if id(value) not in graph_ids:
                raise UsageError(f"--wrt: the output does not depend on {name!r}.")
            if not value.requires_grad:
                raise UsageError(f"--wrt: {name!r} has requires_grad=False, so it has no gradient.")
            chosen.append(_Named(value, name, name))
        elif isinstance(value, Module):
            params = [p for p in value.parameters() if id(p) in graph_ids]
            if not params:
                raise UsageError(f"--wrt: the output does not depend on the parameters of {name!r}.")
            for p in params:
                label = named[id(p)].label if id(p) in named and named[id(p)].variable == name else \
                    f"{name}.{p.name or 'parameter'}"
                chosen.append(_Named(p, label, name))
        else:
            raise UsageError(f"--wrt: {name!r} is a {type(value).__name__}, not a Tensor.")
    unique = {}
    for item in chosen:
        unique.setdefault(id(item.tensor), item)
    return list(unique.values())


def _leaves(output, named):
    """The leaves backward() differentiates with respect to, labelled."""
    rows, unnamed = [], 0
    for t in topological_order(output, only_grad=True):
        if t._function is None:
            if id(t) in named:
                rows.append(named[id(t)])
            else:
                unnamed += 1
                rows.append(_Named(t, t.name or f"(unnamed leaf {unnamed})", None))
    return rows


class _Saved:
    """Variables of the namespace and parameters' data, to put back after re-runs."""

    def __init__(self, ns, variables, tensors=()):
        self.ns = ns
        self.variables = {n: ns.get(n, _MISSING) for n in variables}
        self.data = [(t, np.array(t._data, copy=True)) for t in tensors]

    def restore(self):
        for name, value in self.variables.items():
            if value is _MISSING:
                self.ns.pop(name, None)
            else:
                self.ns[name] = value
        for t, data in self.data:
            t.data = data


# ------------------------------------------------------------------ what is shown

def _text(array, *, precision=6):
    array = np.asarray(array)
    if array.ndim == 0:
        return f"{float(array):.{precision}g}"
    return np.array2string(array, precision=4, threshold=12, edgeitems=2, separator=", ",
                           max_line_width=60)


class GradientTable:
    """The gradients the magic computed: one row per leaf (or ``--wrt`` tensor).

    Each row: ``label``, ``shape``, ``value``, ``grad`` (backprop) and, after
    ``--check``, ``numeric`` (central differences) and ``rel_error``
    (max |backprop − numeric| / max(|backprop|, |numeric|)), or a ``note`` saying
    why a row could not be checked. Shows as HTML in a notebook, as text elsewhere.
    """

    def __init__(self, output_label, rows, *, checked=False):
        self.output_label, self.rows, self.checked = output_label, rows, checked

    @property
    def grads(self):
        """{label: gradient array}."""
        return {row["label"]: row["grad"] for row in self.rows}

    def _columns(self):
        out = self.output_label if self.output_label.isidentifier() else f"({self.output_label})"
        head = ["tensor", "shape", "value", f"grad ∂{out}/∂tensor"]
        if self.checked:
            head += ["finite differences", "rel. error"]
        body = []
        for row in self.rows:
            cells = [row["label"], str(row["shape"]) if row["shape"] else "scalar",
                     _text(row["value"]), _text(row["grad"])]
            if self.checked:
                if row.get("numeric") is None:
                    cells += ["—", row.get("note", "not checked")]
                else:
                    mark = "ok" if row["passed"] else "MISMATCH"
                    cells += [_text(row["numeric"]), f"{row['rel_error']:.1e} {mark}"]
            body.append(cells)
        return head, body

    def __repr__(self):
        head, body = self._columns()
        widths = [max(len(line) for cells in [head] + body for line in cells[i].splitlines() or [""])
                  for i in range(len(head))]
        lines = []
        for cells in [head] + body:
            split = [c.splitlines() or [""] for c in cells]
            for k in range(max(len(s) for s in split)):
                lines.append("  ".join((s[k] if k < len(s) else "").ljust(w)
                                       for s, w in zip(split, widths)).rstrip())
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def _repr_html_(self):
        head, body = self._columns()
        style = "text-align:left;font-family:monospace;white-space:pre"
        rows = "".join(
            "<tr>" + "".join(f'<td style="{style}">{html.escape(c)}</td>' for c in cells) + "</tr>"
            for cells in body
        )
        heads = "".join(f'<th style="text-align:left">{html.escape(h)}</th>' for h in head)
        return f'<table class="ad-magic-gradients"><thead><tr>{heads}</tr></thead><tbody>{rows}</tbody></table>'


def _show_table(table):
    # Both forms, whatever the frontend's active formatters (a terminal keeps only text).
    display({"text/plain": repr(table), "text/html": table._repr_html_()}, raw=True)


def _show_svg(svg, caption):
    display({"image/svg+xml": svg, "text/plain": caption}, raw=True)


def _show_message(text, *, warning=False):
    color = "#b45309" if warning else "#334155"
    display({"text/plain": text,
             "text/html": f'<p style="color:{color}">{html.escape(text)}</p>'}, raw=True)


def _show_graph(output, names, label):
    from .graph import draw_computation_graph
    from .render import render_svg

    try:
        svg = render_svg(draw_computation_graph(output, names=names).source)
    except RenderError as exc:
        _show_message(f"Graph not drawn: {exc}", warning=True)
        return
    _show_svg(svg, f"<computation graph of {label}>")


# ------------------------------------------------------------------ the magics

@magics_class
class AutodiffMagics(Magics):
    """``%%autodiff`` (a cell) and ``%autodiff`` (one expression)."""

    @cell_magic("autodiff")
    @magic_arguments("%autodiff")
    @argument("name", nargs="?", default=None, metavar="NAME",
              help="The output: this variable of the cell. Default: the cell's last expression, "
                   "else the variable `loss`.")
    @argument("--wrt", default=None, metavar="x,y",
              help="Show (and --check, --descent) the gradients with respect to these variables "
                   "only, separated by commas (Tensors, or Modules for their parameters). "
                   "Default: every leaf of the graph.")
    @argument("--check", action="store_true",
              help="Also compute each gradient by central finite differences (re-running the "
                   "cell with the leaf nudged) and show the relative error.")
    @argument("--static", action="store_true",
              help="Show pictures only, no widget (for nbconvert, PDF, GitHub).")
    @argument("--descent", action="store_true",
              help="Run gradient descent: re-run the cell as the loss of its parameters "
                   "(its leaf tensors bound to variables, or --wrt), update them in place, "
                   "and show a DescentExplorer. The variables end at their final values.")
    @argument("--lr", default=None, type=float,
              help=f"Learning rate for --descent (default {DEFAULT_LR}).")
    @argument("--steps", default=None, type=int,
              help=f"Number of iterations for --descent (default {DEFAULT_STEPS}).")
    @argument("--optimizer", default=None, metavar="|".join(OPTIMIZERS),
              help=f"Optimizer for --descent (default {DEFAULT_OPTIMIZER}).")
    def autodiff_cell(self, line, cell):
        """Run the cell, backpropagate from its output and show the computation graph,
        the gradients and a BackwardStepper.

        The cell runs in your namespace (its variables stay). The output is the
        variable NAME, else the cell's last expression, else the variable `loss` the
        cell assigns; it must be a single value (reduce arrays with .sum() or .mean()).
        Nodes are labelled with your variable names. The widget is kept as `_autodiff`,
        the output as `_autodiff_output`, the gradients as `_autodiff_grads`.
        With --static the graph and the table are shown, without a widget.

        Examples::

            %%autodiff
            x = Tensor(2.0)
            x * x + 5 * x - 1

            %%autodiff loss --descent --lr 0.1 --steps 30
            w = Tensor([1.5, -0.5])
            loss = ((w - 1.0) ** 2).sum()
        """
        __tracebackhide__ = True
        args = _parse(self.autodiff_cell, line, "%%autodiff")
        self._run(args, source=self.shell.transform_cell(cell),
                  raw=f"%%autodiff {line}\n{cell}", expression=False, magic="%%autodiff")

    @no_var_expand
    @line_magic("autodiff")
    @magic_arguments("autodiff")
    @argument("--wrt", default=None, metavar="x,y",
              help="Gradients with respect to these variables only, separated by commas.")
    @argument("--check", action="store_true",
              help="Also compute each gradient by central finite differences and show the "
                   "relative error.")
    @argument("--static", action="store_true", help="Show pictures only, no widget.")
    @argument("--descent", action="store_true",
              help="Run gradient descent on the expression as the loss of its leaf tensors "
                   "(or --wrt) and show a DescentExplorer.")
    @argument("--lr", default=None, type=float,
              help=f"Learning rate for --descent (default {DEFAULT_LR}).")
    @argument("--steps", default=None, type=int,
              help=f"Number of iterations for --descent (default {DEFAULT_STEPS}).")
    @argument("--optimizer", default=None, metavar="|".join(OPTIMIZERS),
              help=f"Optimizer for --descent (default {DEFAULT_OPTIMIZER}).")
    @argument("expression", nargs="*", metavar="EXPR", help="A Python expression whose value is a Tensor.")
    def autodiff_line(self, line):
        """Evaluate one expression, backpropagate from it and show the computation graph,
        the gradients and a BackwardStepper: ``%autodiff [options] EXPR``.

        Options come before the expression. Example: ``%autodiff --check x * x + 1``.
        """
        __tracebackhide__ = True
        options, expression = _split_options(line)
        args = _parse(self.autodiff_line, options, "%autodiff")
        if not expression.strip():
            raise UsageError("%autodiff: give an expression after the options, e.g. %autodiff x * x + 1.")
        self._run(args, source=expression, raw=expression, expression=True, magic="%autodiff")

    # -- one path for both magics ------------------------------------------------------
    def _run(self, args, *, source, raw, expression, magic):
        __tracebackhide__ = True
        try:
            _Run(self.shell, args, source=source, raw=raw, expression=expression, magic=magic).go()
        except _UserCodeError as exc:
            failure = exc
        else:
            return
        # Raised outside the except block, so the user's exception is shown alone,
        # with their frames only, as if their cell had raised it.
        raise failure.exception.with_traceback(failure.traceback)


def _parse(function, argstring, magic):
    try:
        return parse_argstring(function, argstring)
    except UsageError as exc:
        message = str(exc).rstrip(".")
        raise UsageError(f"{magic}: {message} (see {magic}? for the options).") from None


def _split_options(line):
    """Split ``%autodiff`` arguments into (leading options, the expression as written)."""
    rest = line.strip()
    options = []
    while rest.startswith("--"):
        parts = rest.split(None, 1)
        token, rest = parts[0], (parts[1] if len(parts) > 1 else "")
        options.append(token)
        if token in _VALUED_OPTIONS and rest:
            parts = rest.split(None, 1)
            options.append(parts[0])
            rest = parts[1] if len(parts) > 1 else ""
        rest = rest.lstrip()
    return " ".join(options), rest


class _Run:
    """One use of the magic, from the parsed options to what is displayed."""

    def __init__(self, shell, args, *, source, raw, expression, magic):
        self.shell, self.args, self.magic = shell, args, magic
        self.ns = shell.user_ns
        self._validate_options()
        self.computation = _Computation(shell, source, raw=raw, expression=expression, magic=magic,
                                        output_name=getattr(args, "name", None))

    def _validate_options(self):
        a, magic = self.args, self.magic
        if not a.descent:
            given = [f"--{o}" for o in ("lr", "steps", "optimizer") if getattr(a, o) is not None]
            if given:
                raise UsageError(f"{magic}: {', '.join(given)} only apply with --descent.")
            return
        self.lr = DEFAULT_LR if a.lr is None else a.lr
        self.steps = DEFAULT_STEPS if a.steps is None else a.steps
        self.optimizer = (a.optimizer or DEFAULT_OPTIMIZER).lower()
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UsageError(f"{magic}: --lr must be a positive number, got {a.lr:g}.")
        if self.steps < 1:
            raise UsageError(f"{magic}: --steps must be a positive number of iterations, got {a.steps}.")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"{magic}: unknown optimizer {a.optimizer!r}; choose one of "
                             f"{', '.join(OPTIMIZERS)}.")

    # -- the run ---------------------------------------------------------------------
    def go(self):
        computation = self.computation
        output = computation.run()
        self.output = output
        graph = topological_order(output)
        graph_ids = {id(t) for t in graph}
        self.named = _namespace_names(self.ns, graph_ids, computation.bound)
        self.output_label = self._output_label(output)
        if self.args.wrt is not None:
            self.targets = _resolve_wrt(self.args.wrt, self.ns, graph_ids, self.named)
        else:
            self.targets = _leaves(output, self.named)
        self._require_scalar(output)
        if self.args.descent:
            self._descent()
        else:
            self._backward()

    def _output_label(self, output):
        name = self.computation.output_name
        if name is None and id(output) in self.named:
            name = self.named[id(output)].label
        if name is None and self.computation.expression_text:
            # An unnamed output is labelled with its expression when that is short.
            text = " ".join(self.computation.expression_text.split())
            if len(text) <= MAX_LABEL_CHARS and output is self.computation.last_value:
                name = text
        return name or "output"

    def _graph_names(self):
        names = {n.tensor: n.label for n in self.named.values()}
        names[self.output] = self.output_label
        return names

    def _require_scalar(self, output):
        if output.size != 1:
            what = "loss" if self.args.descent else "output"
            raise UsageError(
                f"{self.magic}: the {what} {self.output_label!r} has shape {output.shape}, not a single "
                "value; reduce it with .sum() or .mean(), or name a scalar output."
            )
        if not output.requires_grad:
            raise UsageError(
                f"{self.magic}: the output {self.output_label!r} does not depend on any tensor that "
                "needs a gradient (it is built from constants only, or inside no_grad())."
            )

    # -- backward ----------------------------------------------------------------------
    def _backward(self):
        output = self.output
        output.backward()
        table = self._table()
        if self.args.check:
            self._check(table)
        names = self._graph_names()
        _show_graph(output, names, self.output_label)
        _show_table(table)
        widget = None
        if not self.args.static:
            widget = self._stepper(output, names)
        self._store(widget, output, table.grads)

    def _table(self):
        rows = []
        for item in self.targets:
            t = item.tensor
            rows.append({"label": item.label, "shape": t.shape, "value": t.data.copy(),
                         "grad": _grad_of(t)})
        return GradientTable(self.output_label, rows)

    def _stepper(self, output, names):
        from .widgets import BackwardStepper

        try:
            stepper = BackwardStepper(output, names=names)
        except RenderError as exc:
            _show_message(f"BackwardStepper not shown: {exc}", warning=True)
            return None
        display(stepper)
        return stepper

    def _check(self, table):
        """Finite differences for each checkable row, by re-running the computation with
        the tensor's data nudged (gradcheck's central differences)."""
        table.checked = True
        checkable, variables = [], set()
        for item, row in zip(self.targets, table.rows):
            if item.variable is None:
                row["note"] = "not bound to a variable: cannot be nudged"
            elif item.tensor._function is not None:
                row["note"] = "computed from other tensors: cannot be nudged"
            else:
                checkable.append((item, row))
                variables.add(item.variable)
        if not checkable:
            return
        n = sum(item.tensor.size for item, _ in checkable)
        if n > CHECK_MAX_ELEMENTS:
            raise UsageError(
                f"{self.magic}: --check re-runs the cell twice per element and these tensors have "
                f"{n} elements (at most {CHECK_MAX_ELEMENTS}); choose fewer with --wrt."
            )
        computation = self.computation
        skip = frozenset(variables)
        saved = _Saved(self.ns, set(computation.bound) | {OUTPUT_FALLBACK}, ())

        def rerun(*tensors):
            return computation.run(skip=skip, quiet=True)

        try:
            with np.errstate(all="ignore"):
                report = gradcheck(rerun, *(item.tensor for item, _ in checkable))
        finally:
            saved.restore()
            self.output.backward()
        for (item, row), result in zip(checkable, report.rows):
            row["numeric"] = result["numeric"].reshape(item.tensor.shape)
            row["rel_error"] = result["max_rel_error"]
            row["passed"] = result["passed"]

    # -- descent -----------------------------------------------------------------------
    def _descent(self):
        from .widgets import DescentExplorer

        params = self.targets
        if self.args.wrt is None:
            params = [p for p in params if p.variable is not None]
            if not params:
                raise UsageError(
                    f"{self.magic}: the loss has no parameters to descend on: bind its leaf tensors "
                    "to variables (x = Tensor(...)) or name them with --wrt."
                )
        for p in params:
            if p.tensor._function is not None:
                raise UsageError(
                    f"{self.magic}: --descent needs leaf tensors, but {p.label!r} is computed from "
                    "other tensors."
                )
        computation = self.computation
        skip = frozenset(p.variable for p in params)
        tensors = [p.tensor for p in params]
        if self.args.check:
            self.output.backward()
            self.targets = params
            table = self._table()
            self._check(table)
            _show_table(table)

        labelled = []   # tensors of the first iteration given a display name (for a while)

        def loss_fn():
            # The explorer also calls this with the parameters' data replaced by grids of
            # values (to draw the loss landscape), so the output is not checked here.
            out = computation.run(skip=skip, quiet=True)
            if not labelled and isinstance(out, Tensor):
                labelled.extend(self._label_first_graph(out))
            return out

        # If anything fails (the user's code at some iteration, an interrupt), the
        # parameters and the cell's variables go back to where the first run left them.
        saved = _Saved(self.ns, set(computation.bound) | {OUTPUT_FALLBACK}, tensors)
        try:
            with np.errstate(all="ignore"):
                explorer = DescentExplorer(loss_fn, tensors, lr=self.lr, steps=self.steps,
                                           optimizer=self.optimizer,
                                           names={p.tensor: p.label for p in params})
                # Once more at the final parameters, so the cell's variables match them
                # (the explorer also evaluated the loss elsewhere to draw its landscape).
                final = computation.run(skip=skip, quiet=True)
                final.backward()
        except RenderError as exc:
            saved.restore()
            _show_message(f"Gradient descent not shown: {exc}", warning=True)
            return
        except BaseException:
            saved.restore()
            raise
        finally:
            for t in labelled:
                t.name = None
        self.output = final
        self._show_descent(explorer, params, final)
        self._store(explorer, final, {p.label: _grad_of(p.tensor) for p in params})

    def _label_first_graph(self, out):
        """Name the unnamed tensors of the first iteration's graph after the cell's
        variables (and the output after the output's label), as the backward graph is.

        The explorer lays its graph out once, from the first iteration, and keeps those
        labels; the names are taken off again once it is built (see _descent), so no
        tensor of the user's keeps a name it was not given.
        """
        graph_ids = {id(t) for t in topological_order(out)}
        named = _namespace_names(self.ns, graph_ids, self.computation.bound)
        labels = [(n.tensor, n.label) for n in named.values()]
        labels.append((out, self.output_label))
        given = []
        for t, label in labels:
            if t.name is None and not any(t is g for g in given):
                t.name = label
                given.append(t)
        return given

    def _show_descent(self, explorer, params, final):
        losses = explorer.losses
        last = len(losses) - 1
        values = _parameter_summary(params)
        how = f"{self.optimizer}, lr={self.lr:g}"
        if explorer.stopped:
            head = f"Gradient descent ({how}) stopped at iteration {last}"
        else:
            head = f"Gradient descent ({how}), {last} iterations"
        _show_message(f"{head}: loss {losses[0]:.4g} → {final.item():.4g}; {values}.")
        if explorer.stopped:
            _show_message(str(explorer.stopped), warning=True)
        if self.args.static:
            _show_svg(explorer.svg(last), f"<computation graph at iteration {last}>")
            png = base64.b64encode(explorer.png(last)).decode("ascii")
            display({"image/png": png, "text/plain": f"<loss curve, iteration {last}>"}, raw=True)
        else:
            display(explorer)

    def _store(self, widget, output, grads):
        """What the next cell can inspect: the widget, the output, the gradients."""
        self.ns["_autodiff"] = widget
        self.ns["_autodiff_output"] = output
        self.ns["_autodiff_grads"] = grads


def _parameter_summary(params, small=4, listed=6):
    """One line on where the parameters ended: values of the small ones, names of the rest."""
    shown = [f"{p.label} = {' '.join(_text(p.tensor.data, precision=4).split())}"
             for p in params if p.tensor.size <= small]
    rest = [p.label for p in params if p.tensor.size > small]
    if rest:
        names = ", ".join(rest) if len(rest) <= listed else f"{len(rest)} tensors"
        shown.append(f"updated in place: {names}")
    return "; ".join(shown)


def _grad_of(t):
    return np.array(t.grad, copy=True) if t.grad is not None else np.zeros_like(t.data)


# ------------------------------------------------------------------ the extension

def load_ipython_extension(ip):
    """``%load_ext ad_magic``: register ``%%autodiff`` and ``%autodiff``.

    Also gives Tensor its graph picture (importing the rendering module). Loading
    twice only registers the magics again.
    """
    from . import graph  # noqa: F401  (Tensor._repr_svg_)

    ip.register_magics(AutodiffMagics)


def unload_ipython_extension(ip):
    """``%unload_ext ad_magic``: remove what load_ipython_extension added."""
    manager = ip.magics_manager
    instance = manager.registry.get(AutodiffMagics.__name__)
    for kind in ("line", "cell"):
        table = manager.magics[kind]
        function = table.get("autodiff")
        if function is not None and isinstance(getattr(function, "__self__", None), AutodiffMagics):
            del table["autodiff"]
    if isinstance(instance, AutodiffMagics):
        del manager.registry[AutodiffMagics.__name__]
