"""The magic's cell (or the line magic's expression): compiled once, run once.

`Cell` runs the user's code in the user namespace exactly as a normal cell would run
and finds its output: the variable NAME, else the last expression's value, else the
variable ``loss`` the cell assigns. Everything else the magic does (backward, the
gradient table, gradient descent) works on the graph that this one run recorded.

Errors in the user's code keep their own traceback (the cell is compiled under a file
name IPython's traceback printer knows, with the cell's line numbers); mistakes in using
the magic are ``UsageError``s of one sentence.

The one exception to "run once" is ``--check``: finite differences need the output as a
function of each tensor's data, including through hand-written operations that only the
user's code knows how to compute. `Cell.rerun` runs the cell again, silently, with its
assignments to those tensors' variables left out (so they keep the nudged data).
"""
from __future__ import annotations

import ast
import copy
import os

from IPython.core.compilerop import PyCF_MASK
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from ..engine import Tensor
from ..engine.formatting import a_type

__all__ = ["Cell", "CellSyntaxError", "UserCodeError", "OUTPUT_FALLBACK"]

OUTPUT_FALLBACK = "loss"
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


class UserCodeError(Exception):
    """The user's own code raised: carries their exception and the traceback from
    their first frame on, for the magic to re-raise as if the cell had raised it."""

    def __init__(self, exception, traceback):
        super().__init__(exception)
        self.exception, self.traceback = exception, traceback


class Cell:
    """The cell (or the line magic's expression), compiled to run in the user namespace.

    ``run()`` executes it and returns the output, checked to be a Tensor. ``bound``
    lists the names the cell binds at its top level, in order.
    """

    def __init__(self, shell, source, *, raw, expression, magic, output_name=None):
        self.shell, self.magic = shell, magic
        self.output_name = output_name
        self.expression_only = expression
        self.expression_text = source.strip() if expression else None
        # Cached under the running cell's number, so tracebacks say "Cell In[n]".
        running = getattr(getattr(shell, "displayhook", None), "exec_result", None)
        number = getattr(running, "execution_count", None) or shell.execution_count
        self.filename = shell.compile.cache(raw, number, raw_code=raw)
        self.flags = shell.compile.flags & PyCF_MASK
        if expression:
            self.statements = []
            self._expression = self._parse(source.strip(), "eval")
        else:
            # The cached text starts with the %%autodiff line, so a leading newline
            # keeps line numbers in errors and tracebacks equal to the cell's own.
            module = shell.transform_ast(self._parse("\n" + source, "exec"))
            self.statements = module.body
            self._expression = None
            if self.statements and isinstance(self.statements[-1], ast.Expr):
                last = self.statements.pop()
                self._expression = ast.Expression(last.value)
                self.expression_text = ast.get_source_segment("\n" + source, last.value)
        self.bound = _bound_names(self.statements)
        # A class statement in the cell: its objects may be a graph's nodes (see adapters.recording).
        self.defines_class = any(isinstance(n, ast.ClassDef) for s in self.statements for n in ast.walk(s))
        self.last_value = _MISSING
        self._compiled = {}

    def _parse(self, source, mode):
        try:
            return compile(source, self.filename, mode, self.flags | ast.PyCF_ONLY_AST, dont_inherit=True)
        except SyntaxError as exc:
            rendered = self.shell.SyntaxTB.structured_traceback(type(exc), exc, [])
            raise UserCodeError(CellSyntaxError(exc, rendered), None) from None

    def run(self):
        """Execute the cell in the user namespace, once, and return its output Tensor."""
        value = self._execute(frozenset())
        self.last_value = value
        return self._output(value)

    def rerun(self, skip):
        """Execute the cell again without its assignments to the names in `skip`, with
        its prints hidden, and return its output (for --check's finite differences)."""
        with capture_output():
            value = self._execute(frozenset(skip))
        return self._output(value)

    def _execute(self, skip):
        body, expression = self._code(skip)
        shell = self.shell
        try:
            exec(body, shell.user_global_ns, shell.user_ns)
            return _MISSING if expression is None else eval(expression, shell.user_global_ns, shell.user_ns)
        except Exception as exc:
            # Keep the traceback from the user's first frame on (drop this one), and end it
            # at the user's line when ad_magic refused their input in one sentence.
            raise UserCodeError(exc, _users_frames(exc, exc.__traceback__.tb_next)) from None

    def _code(self, skip):
        if skip not in self._compiled:
            statements = self.statements
            if skip:
                statements = _without_assignments(copy.deepcopy(statements), skip)
            body = compile(ast.Module(statements, type_ignores=[]), self.filename, "exec",
                           self.flags, dont_inherit=True)
            expression = None
            if self._expression is not None:
                expression = compile(self._expression, self.filename, "eval", self.flags, dont_inherit=True)
            self._compiled[skip] = (body, expression)
        return self._compiled[skip]

    def _output(self, value):
        ns = self.shell.user_ns
        if self.output_name is not None:
            if self.output_name not in ns:
                raise UsageError(f"{self.magic}: the cell did not define {self.output_name!r}, "
                                 "the output you named.")
            return self._require_tensor(ns[self.output_name], f"the output {self.output_name!r}")
        if self.expression_only:
            return self._require_tensor(value, "the expression")
        if _is_output(value):
            return value
        # `loss` counts only when this cell assigns it: a `loss` left by an earlier cell
        # would not depend on what this cell computes.
        if OUTPUT_FALLBACK in self.bound and _is_output(ns.get(OUTPUT_FALLBACK)):
            return ns[OUTPUT_FALLBACK]
        raise UsageError(
            f"{self.magic}: the cell has no Tensor output; end it with the output's expression, "
            f"assign it to `{OUTPUT_FALLBACK}`, or name it: %%autodiff NAME."
        )

    def _require_tensor(self, value, what):
        if not _is_output(value):
            raise UsageError(f"{self.magic}: {what} is {a_type(value)}, not a Tensor.")
        return value


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # ad_magic/
# What ad_magic raises for a caller's bad input, as one sentence ("add: cannot broadcast ...").
_REFUSALS = (ValueError, TypeError, IndexError)


def _inside_package(tb) -> bool:
    return os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE_DIR + os.sep)


def _users_frames(exc, tb):
    """The traceback ``tb`` ending at the user's last frame, when ``exc`` is ad_magic's
    refusal of their input (raised inside the package): its frames would only push the
    sentence down the page. Any other error keeps every frame."""
    if tb is None or not isinstance(exc, _REFUSALS):
        return tb
    frames = []
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    if not _inside_package(frames[-1]):
        return frames[0]
    last_user = None
    for frame in frames:
        if _inside_package(frame):
            break
        last_user = frame
    if last_user is None:
        return frames[0]
    last_user.tb_next = None
    return frames[0]


def _is_output(value) -> bool:
    """A Tensor, or another library's tensor an adapter can draw (ad_magic.adapters)."""
    from ..adapters import adaptable

    try:
        return isinstance(value, Tensor) or adaptable(value)
    except Exception:   # an object that raises when asked for its attributes
        return False


# ------------------------------------------------------------------ the cell's syntax

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
    if/for/while/with/try blocks (not inside functions or classes): re-run so, the
    cell reads those variables' current data instead of re-creating them."""
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
