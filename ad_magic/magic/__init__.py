"""The magic: ``%%autodiff`` and ``%autodiff`` (``%load_ext ad_magic``), the top layer.

It runs a cell once (:mod:`.cell`), finds the variables that hold the graph's tensors
(:mod:`.variables`), shows the graph, the gradient table and the descent summary
(:mod:`.report`), a student's own graph through the adapters (:mod:`.foreign`), and
opens the widgets (:mod:`.magics`). It may import every layer below it — the engine,
drawing, the adapters, the widgets, the practical — and IPython; nothing imports it
but ``ad_magic``'s ``load_ipython_extension``.
"""
from __future__ import annotations

from .magics import AutodiffMagics, load_ipython_extension, unload_ipython_extension

__all__ = ["AutodiffMagics", "load_ipython_extension", "unload_ipython_extension"]
