"""The valuation engine: plain Python, no Jupyter.

pyDVL's names and meanings (``ModelUtility``, ``TMCShapleyValuation``, ``MinUpdates``...), so
code written for pyDVL runs with only its imports changed. Nothing here imports IPython or
ipywidgets; the notebook side lives one package up.
"""

from .callbacks import RunStats, TqdmProgress, ValuationCallback
from .dataset import Dataset
from .evaluation import (
    DetectionScores,
    RemovalCurve,
    detection_scores,
    flip_labels,
    removal_curve,
)
from .exceptions import DvlError, DvlTypeError, DvlValueError, FastPathUnsupported
from .result import Status, ValuationResult
from .samplers import PermutationSampler
from .scorers import Scorer, SkorchSupervisedScorer, SupervisedScorer
from .stopping import (
    AbsoluteStandardError,
    HistoryDeviation,
    MaxChecks,
    MaxTime,
    MaxUpdates,
    MinUpdates,
    RankCorrelation,
    StoppingCriterion,
)
from .tmc import FailedFitsWarning, TMCShapleyValuation
from .truncation import FixedTruncation, NoTruncation, RelativeTruncation, TruncationPolicy
from .utility import FunctionUtility, ModelUtility

__all__ = [
    "AbsoluteStandardError",
    "Dataset",
    "DetectionScores",
    "DvlError",
    "DvlTypeError",
    "DvlValueError",
    "FailedFitsWarning",
    "FastPathUnsupported",
    "FixedTruncation",
    "FunctionUtility",
    "HistoryDeviation",
    "MaxChecks",
    "MaxTime",
    "MaxUpdates",
    "MinUpdates",
    "ModelUtility",
    "NoTruncation",
    "PermutationSampler",
    "RankCorrelation",
    "RelativeTruncation",
    "RemovalCurve",
    "RunStats",
    "Scorer",
    "SkorchSupervisedScorer",
    "Status",
    "StoppingCriterion",
    "SupervisedScorer",
    "TMCShapleyValuation",
    "TqdmProgress",
    "TruncationPolicy",
    "ValuationCallback",
    "ValuationResult",
    "detection_scores",
    "flip_labels",
    "removal_curve",
]
