"""dvl_jupyter: which training points help or hurt your model, inside Jupyter.

``%load_ext dvl_jupyter`` registers the ``%%shapley``, ``%shapley``, ``%shapley_cache`` and
``%shapley_panel`` magics (:mod:`dvl_jupyter.magics`); ``dvl_jupyter.panel()`` opens the
widget panel (:mod:`dvl_jupyter.widget_panel`). The engine (:mod:`dvl_jupyter.valuation`)
works in plain Python; importing the package imports neither IPython nor torch.

Results display themselves through :mod:`dvl_jupyter.display`, which this module registers
with the engine (imported only when a result is first displayed): the engine never imports
the notebook side.
"""

from __future__ import annotations

from typing import Any

from .valuation._version import __version__
from .valuation.result import set_rich_display

__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension", "panel"]


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext dvl_jupyter``: register the magics (loading twice is harmless)."""
    from .magics import load

    load(ip)


def unload_ipython_extension(ip: Any) -> None:
    """``%unload_ext dvl_jupyter``: remove the magics and their ``%config`` entry again."""
    from .magics import unload

    unload(ip)


def panel(namespace: dict[str, Any] | None = None) -> Any:
    """Open the valuation panel over the notebook's variables (``%shapley_panel``).

    Returns a :class:`~dvl_jupyter.widget_panel.ShapleyPanel`, which displays as its widget
    when it is a cell's last expression; keep a reference (``p = panel()``) to reach
    ``p.result`` from code.
    """
    from .widget_panel import panel as open_panel

    return open_panel(namespace)


def _rich_display(result: Any, include: Any = None, exclude: Any = None) -> dict[str, Any]:
    from .display import mimebundle

    return mimebundle(result, include=include, exclude=exclude)


set_rich_display(_rich_display)
