"""Valuation methods, one module each, on one seam (:mod:`.base`).

* ``base``: :class:`~.base.ValuationMethod` (``fit``, ``result``, ``stop``) and
  :class:`~.base.UtilityValuation` for methods that evaluate a utility on subsets;
* ``tmc``: :class:`~.tmc.TMCShapleyValuation`, Truncated Monte Carlo Shapley;
* ``knn_shapley``: :class:`~.knn_shapley.KNNShapleyValuation`, exact Shapley values of a
  nearest-neighbour classifier in closed form.
"""

from __future__ import annotations

from .base import UtilityValuation, ValuationMethod
from .knn_shapley import KNNShapleyValuation, knn_shapley_from_ranking, knn_shapley_values
from .tmc import TMCShapleyValuation

__all__ = [
    "KNNShapleyValuation",
    "TMCShapleyValuation",
    "UtilityValuation",
    "ValuationMethod",
    "knn_shapley_from_ranking",
    "knn_shapley_values",
]
