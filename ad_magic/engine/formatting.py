"""How ad_magic writes numbers, arrays and tables: one way, everywhere.

The graph, the widgets and the magic all print values through these functions, so a
value reads the same in a node label, a caption and a gradient table.

- :func:`format_number` — one number as a learner reads it: ``3.0``, ``0.25``,
  ``-1.5e-07``, ``1.235e+05``, ``inf``, ``nan`` (four significant digits, whole numbers
  keep their ``.0`` so they read as floats); with ``width``, at most that many characters.
- :func:`format_value` — a scalar as a number; a small array (up to six entries) whole,
  ``[1.0, -2.0, 3.0]``; a larger one as its shape and ``mean m [min, max]`` (``all v``
  when constant, ``empty`` when empty).
- :func:`format_array` — the full text of an array for a table, bounded in size.
- :func:`escape` — text made safe for HTML and SVG, control characters shown as escapes.
- :func:`html_table` and :func:`text_table` — the same table as HTML or aligned text.

Nothing here raises on a strange value: a number that cannot be read prints as ``?``.
"""
from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence

import numpy as np

__all__ = ["format_number", "format_value", "format_array", "whole_array", "short_repr", "escape", "html_table",
           "text_table",
           "with_article", "a_type"]

SIGNIFICANT_DIGITS = 4
WHOLE_ARRAY = 6         # arrays of up to this many entries are shown whole by format_value
ARRAY_THRESHOLD = 12     # arrays with more elements are summarised by their edges
ARRAY_EDGE_ITEMS = 2
ARRAY_LINE_WIDTH = 60
UNKNOWN = "?"


# --------------------------------------------------------------------------- numbers

def _as_float(x) -> float | None:
    """``x`` as a Python float (a number, a NumPy scalar or a one-element array), or None."""
    try:
        if isinstance(x, np.ndarray):
            if x.size != 1:
                return None
            x = x.reshape(-1)[0]
        return float(x)
    except (TypeError, ValueError, OverflowError):
        return None


def _readable(value: float) -> str:
    if not math.isfinite(value):
        return str(value)                       # inf, -inf, nan
    if value == 0:
        return "0.0"                            # also -0.0: a sign on zero only confuses
    if value == int(value) and abs(value) < 1e6:
        return f"{value:.1f}"
    text = f"{value:.{SIGNIFICANT_DIGITS}g}"
    # 5.0000001 rounds to "5": show it as 5.0 like an exact 5, so equal-looking values read alike
    return text + ".0" if text.lstrip("-").isdigit() else text


_EXPONENT = re.compile(r"e([-]?)\+?0*(\d)")


def format_number(x, width: int | None = None) -> str:
    """``x`` as a learner reads it: ``3.0``, ``0.25``, ``-1.5e-07``, ``1.235e+05``, ``inf``.

    Up to four significant digits; a whole number below a million keeps ``.0``. With
    ``width``, the text has at most ``width`` characters, keeping as many significant
    digits as fit (any finite float fits in 7 characters: ``-1e-100``). Anything that is not one
    real number prints as ``?``.
    """
    value = _as_float(x)
    if value is None:
        return UNKNOWN
    text = _readable(value)
    if width is None or len(text) <= width:
        return text
    if value == int(value) and abs(value) < 1e6 and len(str(int(value))) <= width:
        return str(int(value))
    for digits in range(SIGNIFICANT_DIGITS, 0, -1):
        shorter = f"{value:.{digits}g}"
        for text in (shorter, _EXPONENT.sub(r"e\1\2", shorter)):   # then 1e-7 for 1e-07
            if len(text) <= width:
                return text
    return _EXPONENT.sub(r"e\1\2", f"{value:.0e}")


def format_value(array, width: int | None = None, *, shape: bool = True) -> str:
    """A scalar (or one-element array) as a number; a small array whole; a larger one as
    its shape and a summary.

    ``[1.0, -2.0, 3.0]`` and ``[[1.0, 2.0], [3.0, 4.0]]`` for up to WHOLE_ARRAY entries
    (the brackets show the shape); ``(2, 4) mean 0.5 [0.1, 0.9]``, ``(8,) all 1.0`` when
    every element is equal, ``(0,) empty`` when it has none. ``width`` bounds each number
    (see :func:`format_number`); ``shape=False`` leaves the shape out of a summary.
    """
    try:
        array = np.asarray(array)
    except Exception:
        return UNKNOWN
    if array.size == 1:
        return format_number(array, width)
    if 0 < array.size <= WHOLE_ARRAY:
        return whole_array(array, width)
    prefix = f"{tuple(array.shape)} " if shape else ""
    if array.size == 0:
        return prefix + "empty"
    try:
        with np.errstate(all="ignore"):
            mean, low, high = float(array.mean()), float(array.min()), float(array.max())
    except (TypeError, ValueError):
        return prefix + UNKNOWN
    if low == high:
        return f"{prefix}all {format_number(low, width)}"
    return (f"{prefix}mean {format_number(mean, width)} "
            f"[{format_number(low, width)}, {format_number(high, width)}]")


def whole_array(array, width: int | None = None) -> str:
    """Every entry of ``array`` on one line, nested as its shape: ``[[1.0, 2.0], [3.0, 4.0]]``
    (each number as :func:`format_number` writes it, at most ``width`` characters)."""
    try:
        array = np.asarray(array)
        if array.ndim == 0:
            return format_number(array, width)
        return "[" + ", ".join(whole_array(row, width) for row in array) + "]"
    except Exception:
        return UNKNOWN


def format_array(array) -> str:
    """The values of ``array`` as text for a table: every element of a small array,
    the first and last few of a big one (``...`` between), numbers as
    :func:`format_number` writes them, lines at most ~60 characters."""
    try:
        array = np.asarray(array)
        if array.ndim == 0:
            return format_number(array) if array.dtype.kind in "biuf" else printable(array)
        formatter = {"float_kind": format_number} if array.dtype.kind == "f" else None
        return np.array2string(array, threshold=ARRAY_THRESHOLD, edgeitems=ARRAY_EDGE_ITEMS,
                               separator=", ", max_line_width=ARRAY_LINE_WIDTH, formatter=formatter)
    except Exception:
        return UNKNOWN


# --------------------------------------------------------------------------- text

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_NAMES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def short_repr(value, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for a sentence about a user's object;
    a repr that raises gives ``<TypeName>`` instead (a message never fails to be written)."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(text) -> str:
    """``text`` with control characters as visible escapes (``\\n``, ``\\x00``): it stays
    on one line, and an SVG holding it stays valid XML."""
    return _CONTROL.sub(lambda m: _CONTROL_NAMES.get(m.group(), f"\\x{ord(m.group()):02x}"), str(text))


def escape(text) -> str:
    """``text`` made safe for HTML and SVG: it prints literally, never as markup, and
    control characters show as visible escapes (``\\n``)."""
    return html.escape(printable(text), quote=True)


# --------------------------------------------------------------------------- tables

def _cell_lines(cell) -> list:
    """A cell's lines: cells may span several lines; each line is shown printable."""
    text = "" if cell is None else str(cell)
    return [printable(line) for line in text.split("\n")]


_CELL_STYLE = "text-align:left;vertical-align:top;padding:2px 12px 2px 0;white-space:pre"


def html_table(header: Sequence, rows: Sequence[Sequence], *, css_class: str | None = None,
               monospace: bool = True) -> str:
    """An HTML table of ``header`` (one string per column) and ``rows`` (lists of strings).

    A cell may hold several lines; spaces are kept (so array text stays aligned) and
    everything is escaped. ``css_class`` names the table for a notebook's styles.
    """
    def cell(tag, value):
        return f'<{tag} style="{_CELL_STYLE}">' + "<br>".join(html.escape(line, quote=True)
                                                            for line in _cell_lines(value)) + f"</{tag}>"
    style = "border-collapse:collapse" + (";font-family:monospace" if monospace else "")
    klass = f' class="{escape(css_class)}"' if css_class else ""
    head = ("<thead><tr>" + "".join(cell("th", h) for h in header) + "</tr></thead>") if header else ""
    body = "".join("<tr>" + "".join(cell("td", c) for c in row) + "</tr>" for row in rows)
    return f'<table{klass} style="{style}">{head}<tbody>{body}</tbody></table>'


def text_table(header: Sequence, rows: Sequence[Sequence]) -> str:
    """The same table as plain text: columns aligned, a rule of dashes under the header,
    a multi-line cell spread over as many lines (control characters shown as escapes)."""
    table = [[_cell_lines(c) for c in row] for row in ([list(header)] if header else []) + [list(r) for r in rows]]
    if not table:
        return ""
    columns = max(len(row) for row in table)
    for row in table:
        row.extend([[""]] * (columns - len(row)))
    widths = [max(len(line) for row in table for line in row[i]) for i in range(columns)]
    lines = []
    for r, row in enumerate(table):
        for k in range(max(len(c) for c in row)):
            lines.append("  ".join((c[k] if k < len(c) else "").ljust(w)
                                   for c, w in zip(row, widths)).rstrip())
        if r == 0 and header:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ------------------------------------------------------------------ words in sentences

# Words spelled with a vowel but said with a consonant (a uint8, a unicode, a one-hot, a Euler).
_CONSONANT_SOUND = re.compile(r"^(?:uni|use|usu|uint|ufunc|uti|one|once|eu)", re.I)
# Words spelled with a consonant but said with a vowel (an hour, an honest, an xarray).
_VOWEL_SOUND = re.compile(r"^(?:hour|honest|honou?r|heir|x(?!y))", re.I)
# Acronyms read letter by letter: an MLP, an RNN, an SVG, but a GPU.
_VOWEL_LETTERS = set("AEFHILMNORSX")
# How a word may start with two consonants and be read as one syllable (a float, a str);
# other pairs are read letter by letter (an ndarray, an mse_loss).
_ONSETS = ("sc", "sh", "sk", "sl", "sm", "sn", "sp", "sq", "st", "sw", "fl", "fr", "fj", "rh", "sr")


def with_article(word: str) -> str:
    """``word`` with "a" or "an" as it is read: ``an int``, ``a float``, ``an ndarray``,
    ``a uint8``, ``an MLP``, ``a Tensor``."""
    word = str(word)
    letters = word.lstrip("_")
    if not letters:
        return f"a {word}"
    if letters.isupper() and 1 < len(letters) <= 5 and letters.isalpha():
        vowel = letters[0] in _VOWEL_LETTERS
    elif _CONSONANT_SOUND.match(letters):
        vowel = False
    elif _VOWEL_SOUND.match(letters):
        vowel = True
    elif (letters[0].upper() in _VOWEL_LETTERS and letters[1:2].isalpha() and letters[1].lower() not in "aeiouy"
          and letters[:2].lower() not in _ONSETS):
        vowel = True      # the first letter is read as a letter: "en-dee-array"
    else:
        vowel = letters[0].lower() in "aeio" or (letters[0].lower() == "u" and len(letters) > 1)
    return f"{'an' if vowel else 'a'} {word}"


def a_type(value) -> str:
    """The type of ``value`` with its article, for a sentence: ``an int``, ``a list``."""
    return with_article(type(value).__name__)
