"""One run configuration, with one table of what each setting may be, checked in one place.

The ``%%shapley`` magic (its options, its body and its ``%config`` traits), the widget panel's
form and plain Python all describe a run as a :class:`RunConfig`; :meth:`RunConfig.validate`
checks it against :attr:`RunConfig._parameter_constraints` (scikit-learn's habit, see
:mod:`dvl_jupyter.valuation.params`), and :meth:`RunConfig.check` checks one setting, for the
magic's traits. So ``jobs = -5`` gets the same one-line message whichever door it came in by.
Nothing here imports IPython or ipywidgets.
"""

from __future__ import annotations

import keyword
import numbers
import os
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from .valuation import StoppingCriterion, TruncationPolicy
from .valuation.cachedir import DEFAULT_CACHE_DIR, CacheDirectory
from .valuation.dataset import Dataset, as_dataset
from .valuation.exceptions import DvlError, DvlParameterError
from .valuation.params import (
    BATCHED,
    FLAG,
    SEED,
    STOPPING,
    TRUNCATION,
    InstanceOf,
    Interval,
    Options,
    Satisfies,
    check_param,
    validate_params,
)

__all__ = ["BACKENDS", "RunConfig", "check_output_name"]

#: joblib backends a run may use.
BACKENDS = ("loky", "threading", "dask", "ray")


def _is_pair(value: Any) -> bool:
    low, high = value
    return float(low) <= float(high)


def _is_data(value: Any) -> bool:
    as_dataset(value, "data")
    return True


class _Data(Satisfies):
    """An ``(x, y)`` pair that makes a Dataset; a refused pair gets the Dataset's own reason
    (lengths that differ, a list where an array is wanted), not just "must be a pair"."""

    def __init__(self) -> None:
        super().__init__(_is_data, "an (x, y) tuple of arrays")

    def hint_for(self, value: Any) -> str:
        if not (isinstance(value, tuple) and len(value) == 2):
            return ""
        try:
            as_dataset(value, "data")
        except DvlError as exc:
            return str(exc)
        return ""


_DATA = [InstanceOf(Dataset, "a Dataset"), _Data()]


@dataclass
class RunConfig:
    """Everything a run needs; defaults are the reference notebook's settings.

    Constructing one only stores; :meth:`validate` (called by the runner before anything
    starts) checks every setting against :attr:`_parameter_constraints`.
    """

    model: Any = None
    train: Dataset | tuple[Any, Any] | None = None
    test: Dataset | tuple[Any, Any] | None = None
    scoring: Any = "accuracy"
    default: float = 0.0
    range: tuple[float, float] | None = None
    #: None: the method's default (TMC: RelativeTruncation(0.05, 0.3); NoTruncation() for none)
    truncation: TruncationPolicy | None = None
    #: None: the method's default (TMC: MinUpdates(100))
    stopping: StoppingCriterion | None = None
    #: A short name ("tmc", "knn", ...) or a method object (see dvl_jupyter.method_choice)
    method: Any = "tmc"
    jobs: int = 1
    backend: str = "loky"
    cache: str | os.PathLike[str] | CacheDirectory | None = DEFAULT_CACHE_DIR
    seed: int | None = None
    batched: bool | str = "auto"
    scheduler: str | None = None  # dask: address of a scheduler, e.g. tcp://10.0.0.5:8786
    utility: Any = None  # a ready utility replaces model/test/scoring
    #: True: a failing fit or scoring scores ``default`` and is counted (pyDVL's default);
    #: False: the first one stops the run with its own traceback (the magic's --debug).
    catch_errors: bool = True
    #: Any text mixed into the cache's key: change it when something the key cannot see
    #: changed (see the README's "What the cache key covers").
    cache_key: str | None = None
    #: Coupled training randomness (see dvl_jupyter.valuation.coupling): every fit starts
    #: from the same weights and minibatch order restricted from one per epoch.
    coupled_training: bool = True

    #: What each setting may be: the one table every front end is checked against.
    _parameter_constraints: ClassVar[dict[str, Any]] = {
        "train": (_DATA, "Set `train = <Dataset or (x, y)>`."),
        "scoring": [None, InstanceOf(str, "a scoring name such as 'accuracy'"),
                    Satisfies(callable, "a callable (model, X, y) -> float")],
        "default": [Interval(numbers.Real, None, None)],
        "range": [None, Satisfies(_is_pair, "a (low, high) pair of numbers with low <= high")],
        "truncation": TRUNCATION,
        "stopping": [*STOPPING, None],
        "jobs": [Interval(numbers.Integral, -1, None, exclude=(0,),
                          description="a positive integer or -1 (all cores)")],
        "backend": [Options(BACKENDS)],
        "cache": [None, InstanceOf((str, os.PathLike, CacheDirectory), "a directory")],
        "seed": SEED,
        "batched": BATCHED,
        "scheduler": [None, InstanceOf(str, "an address such as tcp://10.0.0.5:8786")],
        "catch_errors": FLAG,
        "cache_key": [None, InstanceOf(str, "a text")],
        "coupled_training": FLAG,
    }

    @classmethod
    def check(cls, name: str, value: Any) -> Any:
        """Check one setting (e.g. a ``%config`` trait); returns it, or raises the message."""
        spec = cls._parameter_constraints[name]
        constraints, hint = spec if isinstance(spec, tuple) else (spec, "")
        return check_param(name, value, constraints, hint)

    def validate(self) -> RunConfig:
        """Check every setting; the first broken rule raises its one-line message. (What a
        method needs, a model or test data, is checked when the method is built.)"""
        from .method_choice import method_entry

        validate_params({f.name: getattr(self, f.name) for f in fields(self)},
                        self._parameter_constraints)
        if self.scheduler is not None and self.backend != "dask":
            raise DvlParameterError(
                f"scheduler is a dask scheduler's address, used with backend 'dask' only; "
                f"got backend {self.backend!r}. Set backend 'dask' (--backend dask), or "
                "leave scheduler unset."
            )
        if self.test is not None:
            check_param("test", self.test, _DATA)
        method_entry(self.method)
        return self

    def settings(self) -> dict[str, Any]:
        """A JSON-able summary for run records and the result's metadata."""
        # a method object is recorded by its short name, as the same method given by name is
        from .method_choice import method_entry

        method = self.method if isinstance(self.method, str) else method_entry(self.method)[0].name
        return {
            "method": method,
            "model": type(self.model).__name__ if self.model is not None else None,
            "scoring": self.scoring if isinstance(self.scoring, str) else repr(self.scoring),
            "truncation": repr(self.truncation),
            "stopping": str(self.stopping),
            "jobs": self.jobs,
            "backend": self.backend,
            "scheduler": self.scheduler,
            "seed": self.seed,
            "batched": self.batched,
            "catch_errors": self.catch_errors,
            "cache_key": self.cache_key,
            "coupled_training": self.coupled_training,
            "n_train": len(as_dataset(self.train, "train")) if self.train is not None else None,
        }


def check_output_name(name: str, setting: str = "-o") -> str:
    """The one rule for where a result goes: a Python variable name that is not a keyword."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise DvlParameterError(
            f"{setting} must be a Python variable name (letters, digits and _, not a keyword);"
            f" got {name!r}."
        )
    return name
