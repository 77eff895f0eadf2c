"""dvl_jupyter: which training points help or hurt your model, inside Jupyter.

``%load_ext dvl_jupyter`` registers the ``%%shapley``, ``%shapley``, ``%shapley_cache`` and
``%shapley_panel`` magics (:mod:`dvl_jupyter.magics`); ``dvl_jupyter.panel()`` opens the
widget panel. Importing the package imports neither IPython nor torch: the engine
(:mod:`dvl_jupyter.valuation`) works in plain Python.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension", "panel"]


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext dvl_jupyter``: register the magics (loading twice is harmless)."""
    from .magics import load

    load(ip)


def unload_ipython_extension(ip: Any) -> None:
    """``%unload_ext dvl_jupyter``: remove the magics and their ``%config`` entry again."""
    from .magics import unload

    unload(ip)


class _CallableModule(types.ModuleType):
    """The type of ``dvl_jupyter.panel``: a module that can also be called.

    DESIGN promises ``dvl_jupyter.panel()``, and the panel lives in the module
    ``dvl_jupyter/panel.py``. Importing a submodule binds its name on the package, so a plain
    ``panel`` function here would be replaced by the module as soon as anything imports it.
    Making the module callable gives one object that works both ways:
    ``dvl_jupyter.panel()``, ``from dvl_jupyter import panel; panel()`` and
    ``from dvl_jupyter.panel import ...``.
    """

    def __call__(self, namespace: dict[str, Any] | None = None) -> Any:
        return self.panel(namespace)


class _Package(types.ModuleType):
    """This package's module type: makes ``panel`` callable whenever it gets bound."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "panel" and type(value) is types.ModuleType:
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


def __getattr__(name: str) -> Any:
    # Lazy: `import dvl_jupyter` stays cheap; ipywidgets is imported on the first use of panel.
    if name == "panel":
        return importlib.import_module(f"{__name__}.panel")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"panel"})


sys.modules[__name__].__class__ = _Package
