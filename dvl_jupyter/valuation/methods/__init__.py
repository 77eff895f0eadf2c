"""Valuation methods, one module each, on one seam (:mod:`.base`).

* ``base``: :class:`~.base.ValuationMethod` (``fit``, ``result``, ``stop``) and
  :class:`~.base.UtilityValuation` for methods that evaluate a utility on subsets;
* ``tmc``: :class:`~.tmc.TMCShapleyValuation`, Truncated Monte Carlo Shapley.
"""

from __future__ import annotations

from .base import UtilityValuation, ValuationMethod
from .tmc import TMCShapleyValuation

__all__ = ["TMCShapleyValuation", "UtilityValuation", "ValuationMethod"]
