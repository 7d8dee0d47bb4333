"""The ``%%autodiff`` and ``%autodiff`` magics (``%load_ext ad_magic``).

A learner writes a loss in a cell::

    %%autodiff
    x = Tensor(3.0)
    loss = x * x + 4 * x + 2

and sees the computation graph (values, grads, the cell's variable names), a table of
the leaves' gradients and a BackwardStepper. With ``--descent`` a DescentExplorer shows
gradient descent on that loss.

The magic calls the same functions a user would call, in three steps, one module each:

* :mod:`ad_magic.magic.cell` runs the cell (or the line's expression) once in the user
  namespace and finds its output; :mod:`ad_magic.magic.variables` finds which variables hold
  the graph's tensors (labels, leaves, ``--wrt``, the parameters).
* This module backpropagates (``Tensor.backward``), checks (``--check``: finite
  differences through :func:`ad_magic.engine.gradcheck.gradcheck`, re-running the cell with the
  tensor nudged) or descends (``--descent``: the DescentExplorer replays the recorded
  graph with ``Tensor.forward``; the cell is not run again).
* :mod:`ad_magic.magic.report` shows the gradient table, the descent summary and the graph.

After ``--check`` the cell's variables are put back as its run left them. After
``--descent`` the parameters hold their final values and the graph's tensors the final
forward values; if descent fails, their data and grads are put back. What the next cell
can inspect: ``_autodiff`` (the BackwardStepper or DescentExplorer; None with
``--static``), ``_autodiff_output`` (the output tensor) and ``_autodiff_grads``
({name: gradient}).
"""
from __future__ import annotations

import contextlib
import difflib
import keyword
import os
import re
import shlex

import numpy as np
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import MagicHelpFormatter, argument, kwds, magic_arguments
from IPython.display import display
from IPython.utils.process import arg_split

from ..drawing.names import complete_names
from ..drawing.render import RenderError
from ..engine import Tensor, optim, topological_order
from ..engine.backprop import replay_order
from ..engine.gradcheck import gradcheck
from .cell import OUTPUT_FALLBACK, Cell, CellSyntaxError, UserCodeError
from .report import GradientTable, grad_of, show_descent_pictures, show_graph, show_message, show_table
from .variables import NamedPictures, SavedVariables, leaves, namespace_names, resolve_wrt

__all__ = ["AutodiffMagics", "CellSyntaxError", "GradientTable", "load_ipython_extension", "unload_ipython_extension"]

DEFAULT_LR = 0.1
DEFAULT_STEPS = 50
DEFAULT_OPTIMIZER = "sgd"
MAX_STEPS = 10_000          # each iteration replays the graph and keeps copies: more would stall the kernel
MAX_LABEL_CHARS = 24
CHECK_MAX_ELEMENTS = 2000

MODES = ("reverse", "forward")


# ------------------------------------------------------------------ the options

# Declared once, for both magics (argparse %-formats help strings: no bare % here).
_OPTIONS = (
    argument("--wrt", default=None, metavar="x,y",
             help="Gradients (and --check, --descent) with respect to these variables only, "
                  "separated by commas: Tensors, or Modules for their parameters. "
                  "Default: every leaf of the graph."),
    argument("--check", action="store_true",
             help="Also compute each gradient by central finite differences and show the "
                  "relative error (the code is re-run, silently, with the tensor nudged)."),
    argument("--static", action="store_true",
             help="Show pictures only, no widget (for nbconvert, PDF, GitHub)."),
    argument("--export", default=None, metavar="PATH.html",
             help="Also write the stepper's timeline (forward then backward pass) as one "
                  "self-contained HTML page at PATH.html, for slides or a course page."),
    argument("--descent", action="store_true",
             help="Run gradient descent on the output as the loss of its parameters (its leaf "
                  "tensors bound to variables, or --wrt) and show a DescentExplorer. The code "
                  "runs once; each iteration replays the graph it recorded. The parameters end "
                  "at their final values."),
    argument("--lr", default=None, type=float,
             help=f"Learning rate for --descent (default {DEFAULT_LR})."),
    argument("--steps", default=None, type=int,
             help=f"Number of iterations for --descent (default {DEFAULT_STEPS}, at most {MAX_STEPS})."),
    argument("--optimizer", default=None, metavar="|".join(optim.OPTIMIZERS) + "[,...]",
             help=f"Optimizer for --descent (default {DEFAULT_OPTIMIZER}): {', '.join(optim.OPTIMIZERS)}; "
                  "a comma list races them from the same start (one picture, a path and a loss "
                  "curve each, live learning-rate and beta sliders)."),
    argument("--mode", default="reverse", metavar="reverse|forward",
             help="What the stepper steps through: reverse (default: the forward pass, then "
                  "backpropagation) or forward (forward mode: each value with its tangent, one "
                  "pass per input, and what each pass costs beside reverse mode)."),
    argument("--order", default=1, type=int, metavar="1|2",
             help="2: step through the graph of the gradient (recorded with create_graph=True) "
                  "with respect to one scalar input (--wrt x), whose backward pass gives the "
                  "second derivative."),
)


# Read from the declarations above, for splitting "%autodiff [options] EXPR" (the options are
# read shell-style, the expression is Python, which shell-style splitting would mangle) and
# for the did-you-mean of a mistyped option.
_OPTION_NAMES = tuple(name for option in _OPTIONS for name in option.args)
_VALUED_OPTIONS = tuple(name for option in _OPTIONS for name in option.args
                        if option.kwds.get("action") not in ("store_true", "store_false"))


class _PlainHelp(MagicHelpFormatter):
    """IPython's help formatter with a plain usage line: ``%%autodiff?`` is read in a
    pager, where IPython's reST prefix ("::") would show as is."""

    def add_usage(self, usage, actions, groups, prefix="Usage: %"):
        super().add_usage(usage, actions, groups, prefix)


def _autodiff_arguments(prog, positional):
    """Give a magic the shared options and its own positional argument: the parser
    that parse_argstring uses and the help that ``%%autodiff?`` shows."""
    def decorate(function):
        for declaration in reversed((positional, *_OPTIONS)):
            function = declaration(function)
        function = kwds(formatter_class=_PlainHelp)(function)   # a new dict per magic: the parser writes to it
        return magic_arguments(prog)(function)
    return decorate


# ------------------------------------------------------------------ the magics

@magics_class
class AutodiffMagics(Magics):
    """%%autodiff (a cell) and %autodiff (one expression)."""

    @cell_magic("autodiff")
    @_autodiff_arguments("%autodiff", argument(
        "name", nargs="?", default=None, metavar="NAME",
        help="The output: this variable of the cell. Default: the cell's last expression, "
             "else the variable `loss`."))
    def autodiff_cell(self, line, cell):
        """Run the cell, backpropagate from its output and show the gradients and a
        BackwardStepper: the computation graph stepped through its forward pass, then its
        backward pass (slider, Previous/Next, Play, the arrow keys; click a node for its
        card). The stepping runs in the browser, also after the kernel is shut down.

        The cell runs in your namespace, like any cell: its variables stay. The output
        is the variable NAME, else the cell's last expression, else the variable `loss`
        the cell assigns; it must be a single value (reduce an array with .sum() or
        .mean()). Nodes are labelled with your variable names. The next cell can use
        _autodiff (the widget), _autodiff_output (the output tensor) and
        _autodiff_grads (the gradients by name). With --static: pictures, no widget.
        With --export PATH.html the same timeline is also written as one self-contained
        page (no network needed), for slides or a course page.

        With --descent the cell runs once, like any cell: its prints and other side
        effects happen once. Each iteration then replays the graph that run recorded
        (Tensor.forward), so Python control flow in the cell, such as an `if` on a
        value or a loop count, is fixed by that first run. The parameters end at their
        final values and the cell's tensors show the final forward values.

        With --check the cell is re-run twice per element of each checked tensor,
        silently, with its assignments to that tensor's variable left out.

        Examples:

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
    @_autodiff_arguments("autodiff", argument(
        "expression", nargs="*", metavar="EXPR", help="A Python expression whose value is a Tensor."))
    def autodiff_line(self, line):
        """Evaluate one expression, backpropagate from it and show the computation graph,
        the gradients and a BackwardStepper.

        Options work as in the cell magic (see %%autodiff?), before the expression or
        after it (`%autodiff loss --descent`: from the first of the magic's own options
        after the expression, the rest of the line is options); with --descent the
        expression is evaluated once and its graph replayed at each iteration.

        Example:

            %autodiff --check x * x + 1
        """
        __tracebackhide__ = True
        options, expression = _split_options(line, "%autodiff")
        expression, trailing = _trailing_options(expression, "%autodiff")
        args = _parse(self.autodiff_line, options + trailing, "%autodiff")
        if not expression.strip():
            raise UsageError("%autodiff: give an expression after the options, e.g. %autodiff x * x + 1.")
        self._run(args, source=expression, raw=expression, expression=True, magic="%autodiff")

    # -- one path for both magics ------------------------------------------------------
    def _run(self, args, *, source, raw, expression, magic):
        __tracebackhide__ = True
        try:
            _Run(self.shell, args, source=source, raw=raw, expression=expression, magic=magic).go()
        except UserCodeError as exc:
            failure = exc
        else:
            return
        # Raised outside the except block, so the user's exception is shown alone,
        # with their frames only, as if their cell had raised it.
        raise failure.exception.with_traceback(failure.traceback)


def _parse(function, options, magic):
    """The magic's options: ``options`` is the line (split here) or its words."""
    argv = _words(options, magic) if isinstance(options, str) else list(options)
    try:
        return function.parser.parse_args(argv)
    except UsageError as exc:
        message = str(exc).rstrip(".")
        raise UsageError(f"{magic}: {message}{_did_you_mean(argv)} (see {magic}? for the options).") from None


def _did_you_mean(argv) -> str:
    """A hint for the first word that looks like a mistyped option (``--setps``)."""
    for word in argv:
        if word.startswith("-") and word.split("=")[0] not in _OPTION_NAMES:
            close = difflib.get_close_matches(word.split("=")[0], _OPTION_NAMES, n=1, cutoff=0.6)
            if close:
                return f"; did you mean {close[0]}?"
    return ""


_TRAILING = re.compile(r"(?:^|(?<=\s))(--[A-Za-z][\w-]*)")


def _trailing_options(expression, magic):
    """(the expression, the option words after it): ``%autodiff loss --descent --lr 0.1``.
    Options start at the first of the magic's own option names (or a near miss of one,
    for its did-you-mean) written after a space; Python has no ``--name`` of its own there
    that a learner would write (``x --y`` is x minus minus y: write ``x + y``)."""
    for match in _TRAILING.finditer(expression):
        word = match.group(1)
        if word in _OPTION_NAMES or difflib.get_close_matches(word, _OPTION_NAMES, n=1, cutoff=0.75):
            return expression[:match.start(1)].rstrip(), _words(expression[match.start(1):], magic)
    return expression, []


# The line is split as IPython's own magics split theirs (parse_options, %%writefile):
# shell-style, so "a path with spaces" and "sgd, adam" are one word each, their quotes gone.
_POSIX = os.name == "posix"


def _words(line, magic):
    """``line`` split into words, shell-style."""
    try:
        words = arg_split(line, posix=_POSIX, strict=True)
    except ValueError as exc:        # shlex: "No closing quotation"
        raise UsageError(f"{magic}: cannot read the options ({exc}); close every quote.") from None
    return words if _POSIX else [_unquote(w) for w in words]


def _unquote(word):
    """A word without the quotes around it (as %%writefile strips them where the split keeps them)."""
    if len(word) >= 2 and word[0] == word[-1] and word[0] in "'\"":
        return word[1:-1]
    return word


def _first_word(text, magic):
    """(the first word of ``text``, split shell-style, and the rest of ``text`` as written)."""
    lexer = shlex.shlex(text, posix=_POSIX)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        word = lexer.get_token()
    except ValueError as exc:
        raise UsageError(f"{magic}: cannot read the options ({exc}); close every quote.") from None
    rest = text[lexer.instream.tell():]
    return (word if _POSIX else _unquote(word)), rest.lstrip()


def _split_options(line, magic="%autodiff"):
    """Split ``%autodiff`` arguments into (the leading options' words, the expression as
    written): the options are read shell-style, the expression (Python) is left alone."""
    rest = line.strip()
    options = []
    while rest.startswith("--"):
        word, rest = _first_word(rest, magic)
        options.append(word)
        if word in _VALUED_OPTIONS and rest:
            value, rest = _first_word(rest, magic)
            options.append(value)
    return options, rest


# ------------------------------------------------------------------ one use of the magic

class _Run:
    """One use of the magic, from the parsed options to what is displayed."""

    def __init__(self, shell, args, *, source, raw, expression, magic):
        self.shell, self.args, self.magic = shell, args, magic
        self.ns = shell.user_ns
        self.recording = None          # what the cell was seen building (set when it runs)
        self._validate_options()
        self.cell = Cell(shell, source, raw=raw, expression=expression, magic=magic,
                         output_name=getattr(args, "name", None))

    def _validate_options(self):
        """Every option checked before the cell runs: one UsageError for the first mistake."""
        a, magic = self.args, self.magic
        name = getattr(a, "name", None)
        if name is not None and (not name.isidentifier() or keyword.iskeyword(name)):
            hint = (" (a comma list with spaces in it must be quoted: --optimizer \"sgd, adam\", or written "
                    "without spaces: --optimizer sgd,adam)" if "," in name else
                    " (a path with spaces in it must be quoted: --export \"my slides/t.html\")"
                    if any(c in name for c in "/\\.") else "")
            raise UsageError(f"{magic}: the output name {name!r} is not a Python variable name{hint}.")
        if a.wrt is not None and not all(item.strip() for item in a.wrt.split(",")):
            raise UsageError(f"{magic}: --wrt {a.wrt!r} has an empty name; separate names by commas, e.g. "
                             "--wrt x,y (quote a list with spaces: --wrt \"x, y\").")
        self._validate_export()
        self._validate_mode()
        if not a.descent:
            given = [f"--{o}" for o in ("lr", "steps", "optimizer") if getattr(a, o) is not None]
            if given:
                listed = given[0] if len(given) == 1 else f"{', '.join(given[:-1])} and {given[-1]}"
                verb = "applies" if len(given) == 1 else "apply"
                raise UsageError(f"{magic}: {listed} only {verb} with --descent; add --descent, or leave "
                                 f"{'it' if len(given) == 1 else 'them'} out.")
            return
        # The engine's own checks of each value, before the cell runs (descent checks them again
        # with the loss, in the same functions): their sentence as a UsageError.
        with _usage_errors(magic):
            self.lr = optim.check_lr(DEFAULT_LR if a.lr is None else a.lr, magic, "--lr")
            self.steps = optim.check_steps(DEFAULT_STEPS if a.steps is None else a.steps, magic, "--steps")
            self.optimizers = _optimizer_list(a.optimizer or DEFAULT_OPTIMIZER, magic)
            optim.optimizer_classes(self.optimizers, f"{magic} --optimizer")
        self.optimizer = self.optimizers[0]
        if self.steps > MAX_STEPS:
            raise UsageError(f"{magic}: --steps {a.steps} is above the limit of {MAX_STEPS} iterations; "
                             "ask for fewer, or call ad_magic.optim.descend from code.")

    def _validate_mode(self):
        """--mode and --order: which timeline the stepper shows."""
        a, magic = self.args, self.magic
        mode = str(a.mode).strip().lower()
        if mode not in MODES:
            close = difflib.get_close_matches(mode, MODES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"{magic}: unknown --mode {a.mode!r}; choose reverse or forward.{hint}")
        a.mode = mode
        if a.order not in (1, 2):
            raise UsageError(f"{magic}: --order must be 1 or 2, got {a.order}.")
        stepped = [o for o, on in (("--mode forward", mode == "forward"), ("--order 2", a.order == 2)) if on]
        if len(stepped) == 2:
            raise UsageError(f"{magic}: --mode forward and --order 2 are two different timelines; use one of them.")
        if stepped and (a.descent or a.static):
            raise UsageError(f"{magic}: {stepped[0]} chooses what the stepper shows; it does not apply with "
                             f"{'--descent' if a.descent else '--static'}.")

    def _validate_export(self):
        """--export: a page the stepper can write, checked before the cell runs."""
        path = getattr(self.args, "export", None)
        if path is None:
            return
        if self.args.descent:
            raise UsageError(f"{self.magic}: --export writes the stepper's timeline; it does not apply with "
                             "--descent.")
        from ..widgets.export import check_target

        try:
            check_target(path, "--export")
        except (OSError, ValueError) as exc:
            raise UsageError(f"{self.magic} {exc}") from None

    def go(self):
        from ..adapters import recording

        # While the cell runs, watch the user's classes build their graph (which call made
        # which node from which inputs), for graphs a student's objects do not hold whole.
        with recording(self.ns, files=[self.cell.filename], expect_classes=self.cell.defines_class) as seen:
            output = self.cell.run()
        self.recording = seen
        if not isinstance(output, Tensor):   # another library's tensor: through its adapter
            from .foreign import run_foreign

            return run_foreign(self, output)
        self.output = output
        graph = topological_order(output)
        graph_ids = {id(t) for t in graph}
        self.named = namespace_names(self.ns, graph_ids, self.cell.bound, graph)
        self.output_label = self._output_label(output)
        # One name per tensor for everything the cell shows (table, picture, stepper).
        self.names = complete_names(output, {**{n.tensor: n.label for n in self.named.values()},
                                             output: self.output_label})
        if self.args.wrt is not None:
            self.targets = resolve_wrt(self.args.wrt, self.ns, graph_ids, self.named)
        else:
            self.targets = leaves(output, self.named, self.names)
        self._require_scalar(output)
        if self.args.descent:
            self._descent()
        else:
            self._backward()

    def _output_label(self, output):
        name = self.cell.output_name
        if name is None and id(output) in self.named:
            name = self.named[id(output)].label
        if name is None and self.cell.expression_text:
            # An unnamed output is labelled with its expression when that is short.
            text = " ".join(self.cell.expression_text.split())
            if len(text) <= MAX_LABEL_CHARS and output is self.cell.last_value:
                name = text
        return name or "output"

    def _graph_names(self):
        return dict(self.names)

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
        widget = None
        if self.args.static:
            show_graph(output, names, self.output_label)
            show_table(table)
        else:
            # One picture: the stepper's graph (its final state is the widget's own
            # fallback picture where widgets do not run), after the table.
            show_table(table)
            widget = self._stepper(output, names)
            if widget is None:
                show_graph(output, names, self.output_label)
        if self.args.export is not None:
            self._export(widget, output, names)
        self._store(widget, output, table.grads)

    def _table(self):
        rows = [{"label": item.label, "shape": item.tensor.shape, "value": np.array(item.tensor.data, copy=True),
                 "grad": grad_of(item.tensor)} for item in self.targets]
        return GradientTable(self.output_label, rows)

    def _stepper(self, output, names):
        from ..widgets import BackwardStepper

        timeline, shown = None, output
        if self.args.mode == "forward" or self.args.order == 2:
            from .higher_order import second_order_output, timeline_for

            if self.args.order == 2:
                shown, names = second_order_output(self, output, names)
            timeline = timeline_for(self, shown, names)
        try:
            stepper = BackwardStepper(shown, names=names, forward=True, timeline=timeline)
        except RenderError as exc:
            show_message(f"BackwardStepper not shown: {exc}", warning=True)
            return None
        display(stepper)
        return stepper

    def _export(self, stepper, output, names):
        """--export PATH.html: the timeline as one self-contained page."""
        from ..widgets.export import save_html
        from ..widgets.timeline import Timeline

        try:
            timeline = stepper.timeline if stepper is not None else Timeline(output, names=names, forward=True)
            path = save_html(timeline, self.args.export)
        except (OSError, ValueError) as exc:
            raise UsageError(f"{self.magic} --export: {str(exc).split(': ', 1)[-1]}") from None
        except RenderError as exc:
            show_message(f"Timeline not exported: {exc}", warning=True)
            return
        show_message(f"Timeline written to {path}")

    def _check(self, table):
        """Finite differences for each checkable row, by re-running the cell with the
        tensor's data nudged (gradcheck's central differences)."""
        table.checked = True
        checkable, variables = [], set()
        for item, row in zip(self.targets, table.rows):
            if item.variable is None:
                row["note"] = "not bound to a variable: cannot be nudged"
            elif not item.tensor.is_leaf:
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
        cell = self.cell
        skip = frozenset(variables)
        saved = SavedVariables(self.ns, set(cell.bound) | {OUTPUT_FALLBACK})
        try:
            with np.errstate(all="ignore"):
                # A tensor the re-run makes anew (bound by :=, for or with) would not move
                # when the first run's is nudged: say so rather than show a false mismatch.
                reached = {id(t) for t in topological_order(cell.rerun(skip))}
                for item, row in checkable:
                    if id(item.tensor) not in reached:
                        row["note"] = "made anew when the cell re-runs (:=, for, with): cannot be nudged"
                checkable = [(item, row) for item, row in checkable if id(item.tensor) in reached]
                if checkable:
                    report = gradcheck(lambda *tensors: cell.rerun(skip), *(item.tensor for item, _ in checkable))
        finally:
            saved.restore()
            self.output.backward()
        if not checkable:
            return
        for (item, row), result in zip(checkable, report.rows):
            row["numeric"] = result["numeric"].reshape(item.tensor.shape)
            row["rel_error"] = result["max_rel_error"]
            row["passed"] = result["passed"]

    # -- descent -----------------------------------------------------------------------
    def _parameters(self):
        """The tensors descent updates: --wrt, else the leaves bound to variables."""
        params = self.targets
        if self.args.wrt is None:
            params = [p for p in params if p.variable is not None]
            if not params:
                raise UsageError(
                    f"{self.magic}: the loss has no parameters to descend on: bind its leaf tensors "
                    "to variables (x = Tensor(...)) or name them with --wrt."
                )
        for p in params:
            if not p.tensor.is_leaf:
                raise UsageError(
                    f"{self.magic}: --descent needs leaf tensors, but {p.label!r} is computed from "
                    "other tensors."
                )
        return params

    def _descent(self):
        from ..widgets import DescentExplorer

        params = self._parameters()
        output = self.output
        try:
            # A graph that cannot be replayed, said in the magic's words before the explorer
            # starts (a check of its structure: nothing is run, the descent replays it).
            replay_order(output)
        except ValueError as exc:
            reason = str(exc).removeprefix("forward: ").split(";")[0]
            raise UsageError(f"{self.magic}: --descent cannot replay the graph the cell recorded ({reason}); "
                             "use built-in operations, or give ad_magic.optim.descend a function that "
                             "builds the loss.") from None
        if self.args.check:
            output.backward()
            self.targets = params
            table = self._table()
            self._check(table)
            show_table(table)
        names = self._graph_names()
        names.update({p.tensor: p.label for p in params})
        # The explorer updates the parameters and replays the graph in place. It owns that
        # state: afterwards the graph is at the final parameters, grads included (also after
        # drawing the loss landscape away from the path), and if anything fails (an error,
        # an interrupt) it puts every tensor of the graph back before the error goes on.
        try:
            with np.errstate(all="ignore"), _usage_errors(self.magic):
                if len(self.optimizers) > 1:
                    explorer = _race(output, [p.tensor for p in params], self.optimizers, lr=self.lr,
                                     steps=self.steps, names=names)
                else:
                    explorer = DescentExplorer(output, [p.tensor for p in params], lr=self.lr,
                                               steps=self.steps, optimizer=self.optimizer, names=names)
        except RenderError as exc:
            show_message(f"Gradient descent not shown: {exc}", warning=True)
            return
        self._show_descent(explorer, params)
        self._store(explorer, output, {p.label: grad_of(p.tensor) for p in params})

    def _show_descent(self, explorer, params):
        """The explorer: its header says how the runs went and follows its live sliders.
        With --static (no widget, nothing moves), the same lines as text, then pictures."""
        if self.args.static:
            for text, stopped in explorer.summary_lines():
                show_message(text, warning=stopped)
            show_descent_pictures(explorer, len(explorer.losses) - 1)
        else:
            display(explorer)

    def _store(self, widget, output, grads):
        """What the next cell can inspect: the widget, the output, the gradients."""
        self.ns["_autodiff"] = widget
        self.ns["_autodiff_output"] = output
        self.ns["_autodiff_grads"] = grads


# ------------------------------------------------------------------ --optimizer a,b,c: a race

def _optimizer_list(text, magic):
    """``--optimizer``'s value as a list of names: one, or a comma list to race (which
    names exist is the engine's to say: ``optim.optimizer_classes``)."""
    names = [name.strip().lower() for name in str(text).split(",")]
    if any(not name for name in names):
        raise UsageError(f"{magic}: --optimizer {text!r} has an empty name; separate names by commas, "
                         f"e.g. --optimizer {','.join(optim.OPTIMIZERS)} (quote a list with spaces: "
                         f"--optimizer \"sgd, adam\").")
    return names


@contextlib.contextmanager
def _usage_errors(magic):
    """The engine's DescentInputError (one sentence) as the magic's UsageError."""
    try:
        yield
    except optim.DescentInputError as exc:
        text = str(exc).rstrip(".")
        if not text.startswith(magic):
            text = f"{magic}: {text.removeprefix('descend: ')}"
        raise UsageError(f"{text}.") from None


def _race(output, params, optimizers, *, lr, steps, names):
    """The explorer of a race: every optimizer from the cell's values, on its graph."""
    from ..widgets import DescentExplorer

    return DescentExplorer.compare(output, params, optimizers=optimizers, lr=lr, steps=steps, names=names)


# ------------------------------------------------------------------ the extension

def load_ipython_extension(ip):
    """``%load_ext ad_magic``: register ``%%autodiff`` and ``%autodiff``.
    Loading twice only registers the magics again. A Tensor at the end of a cell is then
    drawn with the notebook's variable names (``NamedPictures``)."""
    ip.register_magics(AutodiffMagics)
    NamedPictures.register(ip)


def unload_ipython_extension(ip):
    """``%unload_ext ad_magic``: remove what load_ipython_extension added."""
    NamedPictures.remove(ip)
    manager = ip.magics_manager
    instance = manager.registry.get(AutodiffMagics.__name__)
    for kind in ("line", "cell"):
        table = manager.magics[kind]
        function = table.get("autodiff")
        if function is not None and isinstance(getattr(function, "__self__", None), AutodiffMagics):
            del table["autodiff"]
    if isinstance(instance, AutodiffMagics):
        del manager.registry[AutodiffMagics.__name__]
