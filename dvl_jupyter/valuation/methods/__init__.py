"""Valuation methods, one module each, on one seam (:mod:`.base`).

* ``base``: :class:`~.base.ValuationMethod` (``fit``, ``result``, ``stop``) and
  :class:`~.base.UtilityValuation` for methods that evaluate a utility on subsets;
* ``tmc``: :class:`~.tmc.TMCShapleyValuation`, Truncated Monte Carlo Shapley;
* ``knn_shapley``: :class:`~.knn_shapley.KNNShapleyValuation`, exact Shapley values of a
  nearest-neighbour classifier in closed form;
* ``loo``: :class:`~.loo.LOOValuation`, leave-one-out values;
* ``data_oob``: :class:`~.data_oob.DataOOBValuation`, out-of-bag values of a bagged model;
* ``semivalue``: :class:`~.semivalue.SemivalueValuation`, the sampling loop of the semivalues
  below, and their coefficients;
* ``msr_banzhaf``: :class:`~.msr_banzhaf.MSRBanzhafValuation`, Banzhaf values with maximum
  sample reuse;
* ``beta_shapley``: :class:`~.beta_shapley.BetaShapleyValuation`, the Beta(alpha, beta)
  semivalue by a permutation-free sampler.
"""

from __future__ import annotations

from .base import UtilityValuation, ValuationMethod
from .beta_shapley import BetaShapleyValuation
from .data_oob import DataOOBValuation, neg_l2_distance, point_wise_accuracy
from .knn_shapley import KNNShapleyValuation, knn_shapley_from_ranking, knn_shapley_values
from .loo import LOOValuation
from .msr_banzhaf import MSRBanzhafValuation
from .semivalue import SemivalueValuation
from .tmc import TMCShapleyValuation

__all__ = [
    "BetaShapleyValuation",
    "DataOOBValuation",
    "KNNShapleyValuation",
    "LOOValuation",
    "MSRBanzhafValuation",
    "SemivalueValuation",
    "TMCShapleyValuation",
    "UtilityValuation",
    "ValuationMethod",
    "knn_shapley_from_ranking",
    "knn_shapley_values",
    "neg_l2_distance",
    "point_wise_accuracy",
]
