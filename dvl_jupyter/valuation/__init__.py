"""The valuation engine: plain Python, no Jupyter.

pyDVL's names and meanings (``ModelUtility``, ``TMCShapleyValuation``, ``MinUpdates``...), so
code written for pyDVL runs with only its imports changed. Nothing here imports IPython or
ipywidgets; the notebook side lives one package up.
"""

from .cachedir import CacheDirectory
from .callbacks import RunStats, TqdmProgress, ValuationCallback
from .comparison import MethodComparison, compare
from .dataset import Dataset, RawData
from .driver import FailedFitsWarning
from .ending import RunEnd
from .evaluation import (
    DetectionScores,
    RemovalCurve,
    detection_scores,
    flip_labels,
    removal_curve,
)
from .exceptions import (
    DvlError,
    DvlParameterError,
    DvlTypeError,
    DvlValueError,
    FastPathUnsupported,
    UserCodeError,
)
from .methods import (
    BetaShapleyValuation,
    DataOOBValuation,
    KNNShapleyValuation,
    LOOValuation,
    MSRBanzhafValuation,
    TMCShapleyValuation,
    UtilityValuation,
    ValuationMethod,
)
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
    RankReliability,
    StoppingCriterion,
)
from .truncation import FixedTruncation, NoTruncation, RelativeTruncation, TruncationPolicy
from .utility import FunctionUtility, ModelUtility, Utility

__all__ = [
    "AbsoluteStandardError",
    "BetaShapleyValuation",
    "CacheDirectory",
    "DataOOBValuation",
    "Dataset",
    "DetectionScores",
    "DvlError",
    "DvlParameterError",
    "DvlTypeError",
    "DvlValueError",
    "FailedFitsWarning",
    "FastPathUnsupported",
    "UserCodeError",
    "FixedTruncation",
    "FunctionUtility",
    "HistoryDeviation",
    "KNNShapleyValuation",
    "LOOValuation",
    "MSRBanzhafValuation",
    "MethodComparison",
    "MaxChecks",
    "MaxTime",
    "MaxUpdates",
    "MinUpdates",
    "ModelUtility",
    "NoTruncation",
    "PermutationSampler",
    "RankCorrelation",
    "RankReliability",
    "RawData",
    "RelativeTruncation",
    "RemovalCurve",
    "RunEnd",
    "RunStats",
    "Scorer",
    "SkorchSupervisedScorer",
    "Status",
    "StoppingCriterion",
    "SupervisedScorer",
    "TMCShapleyValuation",
    "TqdmProgress",
    "TruncationPolicy",
    "Utility",
    "UtilityValuation",
    "ValuationCallback",
    "ValuationMethod",
    "ValuationResult",
    "compare",
    "detection_scores",
    "flip_labels",
    "removal_curve",
]
