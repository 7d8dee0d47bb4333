"""Fitting a graph's picture to a notebook output: its size, and the HTML frame that
shows it fitted to the output's width with zoom buttons (every ad_magic graph has it:
a tensor's display, ``draw_computation_graph``'s Digraph in HTML, the widgets).
"""
from __future__ import annotations

import html
import re

__all__ = ["FIT_WIDTH_PT", "MIN_SCALE", "svg_size", "fit_scale", "fitted_svg", "inline_svg", "graph_html"]

FIT_WIDTH_PT = 705.0     # the width a picture is fitted to: 940 px, a notebook output of 1,000 px
MIN_SCALE = 0.6          # fitting never shrinks labels below 60 % (11 pt -> 8.8 px): it scrolls
_SVG_SIZE_ATTRS = re.compile(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"')


def svg_size(svg: str) -> tuple:
    """The (width, height) in points dot gave the SVG; (0, 0) when it says none."""
    m = _SVG_SIZE_ATTRS.search(svg)
    return (float(m.group(1)), float(m.group(2))) if m else (0.0, 0.0)


def fit_scale(width: float, height: float = 0.0, room: float = FIT_WIDTH_PT) -> float:
    """The scale a picture of ``width`` points is shown at in ``room`` points: never
    enlarged, shrunk to fit, but not below MIN_SCALE (beyond, it scrolls)."""
    if width <= 0:
        return 1.0
    return max(MIN_SCALE, min(1.0, room / width))


def fitted_svg(svg: str, room: float = FIT_WIDTH_PT) -> str:
    """``svg`` with its width and height scaled to fit ``room`` points (see
    :func:`fit_scale`); its viewBox, hence its drawing, unchanged."""
    width, height = svg_size(svg)
    scale = fit_scale(width, height, room)
    if scale >= 1.0:
        return svg
    return _SVG_SIZE_ATTRS.sub(f'<svg width="{width * scale:.0f}pt" height="{height * scale:.0f}pt"', svg, count=1)


_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.S)


def inline_svg(svg: str) -> str:
    """The SVG without XML prolog, doctype and comments before ``<svg``: ready to be
    put inline in an HTML page."""
    return _PROLOG.sub("", svg, count=1)


# The zoom buttons are inline handlers (no <script>): they work wherever the HTML is
# shown, in a notebook output, an ipywidgets HTML and a page alike.
_SVG_OF = "var s=this.closest('.ad-graph').querySelector('.ad-graph-viewport svg[data-shown]');"
_ZOOM = (_SVG_OF + "var w=s.getBoundingClientRect().width*{factor};"
         "s.style.minWidth='0';s.style.maxWidth='none';s.style.maxHeight='none';s.style.width=w+'px';"
         "this.closest('.ad-graph').dataset.fit='manual';")
# Fit: the whole graph in the output's width and in most of the window's height.
_FIT = (_SVG_OF + "s.style.minWidth='0';s.style.maxWidth='{width:.0f}px';s.style.width='100%';"
        "s.style.maxHeight='80vh';this.closest('.ad-graph').dataset.fit='whole';")
_BUTTON = ('<button type="button" class="{cls}" title="{title}" onclick="{js}" style="font:12px sans-serif;'
           'padding:0 8px;border:1px solid #9ca3af;border-radius:2px;background:#f3f4f6;color:#111827;'
           'cursor:pointer">{text}</button>')


# A click on a module's box (an open module's outline or title: dot's cluster; a collapsed
# one: the node dot.py gives the id module_fN) shows the other picture, modules the other way.
_TOGGLE = ("var g=event.target.closest&&event.target.closest('g.cluster,g[id^=module_]');if(!g)return;"
           "var v=this.querySelectorAll('svg[data-modules]');if(v.length<2)return;"
           "for(var i=0;i<v.length;i++){var on=!v[i].hasAttribute('data-shown');"
           "if(on)v[i].setAttribute('data-shown','');else v[i].removeAttribute('data-shown');"
           "v[i].style.display=on?'block':'none';}")


def _fitted_style(svg: str, shown: bool = True) -> str:
    width = svg_size(svg)[0] * 4 / 3
    marker, display = ('data-shown="" ', "block") if shown else ("", "none")
    return svg.replace("<svg ", f'<svg {marker}style="display:{display};'
                       f'width:100%;max-width:{width:.0f}px;min-width:{min(width, width * MIN_SCALE):.0f}px;'
                       'height:auto" ', 1)


def graph_html(svg: str, nodes: int | None = None, other: str | None = None) -> str:
    """The SVG inline in HTML, fitted to the width it gets: shrunk to fit the output
    (never enlarged), but never below MIN_SCALE (readable labels); beyond that it scrolls
    sideways, and a hint says so. Buttons zoom out, fit the whole graph (however small)
    and zoom in. ``other`` is the same graph with its modules the other way (collapsed or
    expanded): a click on a module's box switches to it, and back."""
    svg = inline_svg(svg)
    width_pt, height_pt = svg_size(svg)
    if width_pt <= 0:
        return svg
    width = width_pt * 4 / 3
    svg = _fitted_style(svg)
    toggle = ""
    if other is not None and svg_size(inline_svg(other))[0] > 0:
        svg = (svg.replace("<svg ", '<svg data-modules="asked" ', 1)
               + _fitted_style(inline_svg(other), shown=False).replace("<svg ", '<svg data-modules="other" ', 1))
        toggle = f' onclick="{html.escape(_TOGGLE, quote=True)}" title="Click a module box to open or close it"'
    scrolls = width * MIN_SCALE > FIT_WIDTH_PT * 4 / 3
    hint = ('<span class="ad-graph-hint" style="margin-right:auto;color:#b45309">At a readable size this graph '
            'is wider than the output: scroll sideways for the rest, or press Fit to see it whole.</span>'
            if scrolls else "")
    buttons = "".join(_BUTTON.format(cls=cls, title=title, js=html.escape(js, quote=True), text=text)
                      for cls, title, js, text in (
                          ("ad-graph-out", "Zoom out", _ZOOM.format(factor=0.8), "−"),
                          ("ad-graph-fit", "Show the whole graph", _FIT.format(width=width), "Fit"),
                          ("ad-graph-in", "Zoom in", _ZOOM.format(factor=1.25), "+")))
    return (f'<div class="ad-graph" data-fit="auto" data-width="{width:.0f}" style="max-width:100%">'
            f'<div class="ad-graph-tools" style="display:flex;gap:2px;align-items:center;justify-content:flex-end;'
            f'font:12px sans-serif;margin:0 0 2px">{hint}{buttons}</div>'
            f'<div class="ad-graph-viewport" style="overflow:auto;max-width:100%"{toggle}>{svg}</div></div>')
