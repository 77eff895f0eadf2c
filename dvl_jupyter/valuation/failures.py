"""What went wrong in one evaluation, said about the user's code, never about the engine's.

An evaluation runs code the user gave: a utility function, a model's ``fit``, a scoring
function. When that code raises, or returns something that is not a finite number, the
culprit is the user's function, and the message must say so and which step failed (fitting
on the whole training set, scoring it on the test set...). :class:`Failure` is that record:
small, picklable (it travels back from joblib's workers inside an
:class:`~dvl_jupyter.valuation.evaluators.EvaluationBatch`), and it keeps the user's own
traceback as text, with the engine's frames left out, so that ``--debug`` can show it.

NaN and infinities are never values: :func:`as_value` turns a return value into a float or
says why it is none, and a non-finite one is a counted failure like an exception.
"""

from __future__ import annotations

import numbers
import pickle
import traceback
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from .exceptions import PACKAGE_DIR, UserCodeError, describe_value
from .utils import plural

__all__ = ["Failure", "NotANumber", "Outcome", "as_value", "callable_name", "user_traceback"]

#: What each step is, in a sentence's words.
_STEPS = {"fit": "Fitting the model", "score": "Scoring the fitted model",
          "utility": "Evaluating the utility"}


class NotANumber(TypeError):
    """User code returned something that is not a finite number (the message says what)."""


def as_value(value: Any) -> float:
    """``value`` as a float if it is a real number (a Python or numpy number, a 0-d array or
    tensor); else :class:`NotANumber`, saying what it was. NaN and infinities come back as
    they are: the caller counts them (they are never values)."""
    if isinstance(value, (numbers.Real, np.bool_)):
        return float(value)
    item = getattr(value, "item", None)
    shape = getattr(value, "shape", None)
    if callable(item) and shape is not None and len(shape) == 0:
        inner = item()
        if isinstance(inner, numbers.Real):
            return float(inner)
    raise NotANumber(f"returned {describe_value(value)}, not a number")


def callable_name(fn: Any) -> str:
    """A function's name as a user wrote it (``score_fn``, ``<lambda>``, ``MyScorer``)."""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if name is None:
        name = type(fn).__name__
    return str(name).rsplit("<locals>.", 1)[-1]  # a function defined in a function: its name


def _is_engine(frame: traceback.FrameSummary) -> bool:
    return bool(frame.filename) and frame.filename.startswith(PACKAGE_DIR)


def _trim(te: traceback.TracebackException, seen: set[int]) -> None:
    if id(te) in seen:
        return
    seen.add(id(te))
    te.stack = traceback.StackSummary.from_list([f for f in te.stack if not _is_engine(f)])
    for chained in (te.__cause__, te.__context__):
        if chained is not None:
            _trim(chained, seen)


def user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` as text, with the frames of dvl_jupyter itself left out:
    what the user's code (and the libraries it called) did, not how the engine got there."""
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    _trim(te, set())
    return "".join(te.format())


def _picklable(exc: BaseException) -> BaseException | None:
    try:
        pickle.dumps(exc)
    except Exception:  # noqa: BLE001 - some user exceptions do not pickle; the text stays
        return None
    return exc


@dataclass
class Failure:
    """One failed evaluation: which step, whose code, what happened, on how many points.

    Attributes
    ----------
    step
        ``"fit"`` (the model's fit raised), ``"score"`` (scoring the fitted model raised or
        gave no finite number) or ``"utility"`` (a plain utility function did).
    culprit
        The user's function, in words: ``"LogisticRegression.fit"``, ``"scoring
        'neg_log_loss'"``, ``"the scoring function 'f1'"``, ``"the utility function 'u'"``.
    error
        What happened, one line: ``"ValueError: ..."`` or ``"returned nan"``.
    size
        Points in the subset it was evaluated on.
    traceback
        The user's traceback as text (engine frames left out); "" when it returned a value.
    exception
        The exception itself when it pickles (so it can be re-raised), else None.
    non_finite
        It returned NaN or an infinity (no exception).
    """

    step: str
    culprit: str
    error: str
    size: int = 0
    traceback: str = ""
    exception: BaseException | None = None
    non_finite: bool = False

    @classmethod
    def raised(cls, step: str, culprit: str, exc: BaseException, size: int) -> Failure:
        text = " ".join(str(exc).split())
        if len(text) > 300:
            text = text[:297] + "..."
        error = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        return cls(step, culprit, error, size, user_traceback(exc), _picklable(exc))

    @classmethod
    def returned(cls, step: str, culprit: str, value: Any, size: int) -> Failure:
        """It returned ``value``: a NaN or infinity, or something that is not a number."""
        if isinstance(value, float):
            return cls(step, culprit, f"returned {value}", size, non_finite=True)
        return cls(step, culprit, f"returned {describe_value(value)}, not a number", size)

    def where(self, n_train: int | None = None) -> str:
        if n_train is not None and self.size == n_train:
            return f"the whole training set ({self.size} points)"
        if self.size == 0:
            return "the empty set"
        return f"a subset of {plural(self.size, 'training point')}"

    def sentence(self, n_train: int | None = None) -> str:
        """``"Fitting the model on the whole training set (30 points) failed:
        LogisticRegression.fit raised ValueError: ..."``."""
        verb = "gave" if self.error.startswith("returned ") else "raised"
        what = self.error[len("returned "):] if verb == "gave" else self.error
        if self.step == "score":
            head = f"Scoring the model fitted on {self.where(n_train)} failed"
        else:
            head = f"{_STEPS.get(self.step, 'Evaluating')} on {self.where(n_train)} failed"
        return f"{head}: {self.culprit} {verb} {what}"

    def to_error(self, n_train: int | None = None, hint: str = "") -> UserCodeError:
        """The error that stops a run on this failure (its traceback is the user's)."""
        message = self.sentence(n_train).rstrip(".") + "."
        if hint:
            message += " " + hint
        return UserCodeError(message, culprit=self.culprit, step=self.step,
                             original=self.exception, user_traceback=self.traceback)

    def raise_error(self, n_train: int | None = None, hint: str = "") -> NoReturn:
        error = self.to_error(n_train, hint)
        if error.original is not None:
            raise error from error.original
        raise error


@dataclass
class Outcome:
    """One evaluation: its value, and what went wrong (if anything).

    ``failure`` set: the value is the default, and the failure is counted. ``one_class``: the
    model could not be fitted on a subset with a single class, an expected case of Monte
    Carlo sampling (it scored the default, as in pyDVL), counted apart from failures.
    """

    value: float
    failure: Failure | None = None
    one_class: bool = False
