"""ad_magic.engine.formatting: one way to write numbers, arrays and tables."""
import math
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ad_magic.engine.formatting import escape, format_array, format_number, format_value, html_table, text_table


@pytest.mark.parametrize("value, text", [
    (3, "3.0"), (3.0, "3.0"), (0.25, "0.25"), (-1.5e-07, "-1.5e-07"), (123456.7, "1.235e+05"),
    (2.0 / 3.0, "0.6667"), (1e6, "1e+06"), (-2.0, "-2.0"), (-0.0, "0.0"),
    (math.inf, "inf"), (-math.inf, "-inf"), (math.nan, "nan"),
    (np.float32(0.1), "0.1"), (np.array(2.5), "2.5"), (np.array([[4.0]]), "4.0"),
])
def test_format_number_reads_like_a_learner_writes(value, text):
    assert format_number(value) == text


@pytest.mark.parametrize("value", ["x", None, object(), np.array([1.0, 2.0]), 1 + 2j])
def test_format_number_never_raises(value):
    assert format_number(value) == "?"


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=7, max_value=12))
def test_format_number_with_width_fits_and_stays_close(value, width):
    text = format_number(value, width)
    assert len(text) <= width
    if math.isfinite(value):
        assert abs(Decimal(text) - Decimal(value)) <= abs(Decimal(value)) / 2
    else:
        assert text == str(value)


def test_format_number_with_width_keeps_as_many_digits_as_fit():
    assert format_number(123456.7, 9) == "1.235e+05"
    assert format_number(123456.7, 7) == "1.235e5"
    assert format_number(123456.7, 5) == "1.2e5"
    assert format_number(0.000123456, 7) == "0.00012"
    assert format_number(3.0, 9) == "3.0"       # a fitting number prints as without width
    assert format_number(500000.0, 6) == "500000"


def test_format_value_scalars_and_summaries():
    assert format_value(np.array(0.5)) == "0.5"
    assert format_value(np.array([7.0])) == "7.0"
    assert format_value(np.arange(12.0).reshape(3, 4)) == "(3, 4) mean 5.5 [0.0, 11.0]"
    assert format_value(np.ones(8)) == "(8,) all 1.0"
    assert format_value(np.zeros((0, 2))) == "(0, 2) empty"
    assert format_value(np.arange(8.0), shape=False) == "mean 3.5 [0.0, 7.0]"
    assert format_value(np.array([1.0, np.nan] * 4)) == "(8,) mean nan [nan, nan]"
    assert format_value(np.array([123456.7, 0.0] * 4), 5) == "(8,) mean 6.2e4 [0.0, 1.2e5]"


def test_format_value_shows_small_arrays_whole():
    # The case: a vector of three entries reads as itself, not as a summary.
    assert format_value(np.array([1.0, -2.0, 3.0])) == "[1.0, -2.0, 3.0]"
    assert format_value(np.array([1.0, -2.0, 3.0]), shape=False) == "[1.0, -2.0, 3.0]"
    assert format_value(np.arange(4.0).reshape(2, 2)) == "[[0.0, 1.0], [2.0, 3.0]]"
    assert format_value(np.arange(6.0)) == "[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]"
    assert format_value(np.arange(7.0)) == "(7,) mean 3.0 [0.0, 6.0]"
    assert format_value(np.array([1.0, np.nan])) == "[1.0, nan]"
    assert format_value(np.array([123456.7, 0.0]), 5) == "[1.2e5, 0.0]"


def test_format_array_is_complete_for_small_and_bounded_for_big_arrays():
    assert format_array(np.array(2.0)) == "2.0"
    assert format_array(np.array([1.0, 0.25])) == "[1.0, 0.25]"
    assert format_array(np.arange(6.0).reshape(2, 3)) == "[[0.0, 1.0, 2.0],\n [3.0, 4.0, 5.0]]"
    big = format_array(np.arange(10_000.0))
    assert "..." in big and len(big) < 80 and big.startswith("[0.0, 1.0") and big.endswith("9999.0]")


def test_escape_makes_markup_and_control_characters_visible():
    assert escape('<script>"&\'') == "&lt;script&gt;&quot;&amp;&#x27;"
    assert escape("a\nb\tc\x00") == "a\\nb\\tc\\x00"
    assert escape(3) == "3"


def test_html_table_escapes_everything_and_keeps_lines():
    out = html_table(["name", "<b>"], [["x\ny", "1 < 2"], ["<i>", "3.0"]], css_class='t"x')
    assert "<b>" not in out and "<i>" not in out
    assert "&lt;b&gt;" in out and "1 &lt; 2" in out and "x<br>y" in out
    assert 'class="t&quot;x"' in out and "font-family:monospace" in out
    assert out.count("<tr>") == 3 and out.count("<td ") == 4 and out.count("<th ") == 2
    assert "monospace" not in html_table(["a"], [["1"]], monospace=False)


def test_text_table_aligns_columns_and_spreads_multiline_cells():
    out = text_table(["tensor", "value"], [["x", "[[1.0, 2.0],\n [3.0, 4.0]]"], ["a\tb", "2.0"]])
    assert out.splitlines() == [
        "tensor  value",
        "------  ------------",
        "x       [[1.0, 2.0],",
        "         [3.0, 4.0]]",
        "a\\tb    2.0",
    ]


def test_a_number_that_rounds_to_a_whole_one_reads_like_it():
    """5 and 5.0000000001 (backprop beside finite differences) print alike."""
    assert format_number(5.0000000001) == format_number(5.0) == "5.0"
    assert format_number(-2.99999999) == "-3.0"
