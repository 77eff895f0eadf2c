"""Parameter constraints: what each setting may be, written once as a table, checked in one place.

scikit-learn's habit: a class lists ``_parameter_constraints`` (setting name -> the kinds of
value it accepts), its constructor only stores, and :func:`validate_params` checks the table
when the work starts. Every failure has the same shape: which setting, what it may be, what it
got, and, where there is one, how to fix it::

    jobs must be an integer in [-1, inf) other than 0 (-1: all cores); got int -5.

The notebook side checks its run configuration through the same tables, so a rule gives one
message whether the value came from a magic's option, ``%config``, the panel or plain Python.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .exceptions import DvlParameterError, describe_value
from .stopping import StoppingCriterion
from .truncation import TruncationPolicy

__all__ = [
    "Constraint",
    "Interval",
    "Options",
    "InstanceOf",
    "Satisfies",
    "check_param",
    "validate_params",
    "STOPPING",
    "TRUNCATION",
    "SEED",
    "BATCHED",
    "FLAG",
]


class Constraint:
    """One kind of accepted value; ``str(c)`` says which, in words."""

    def is_satisfied_by(self, value: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def hint_for(self, value: Any) -> str:
        """A fix for a refused ``value`` this constraint recognises (e.g. a class given where
        an instance is wanted), or ``""``."""
        return ""

    def __str__(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


class _NoneConstraint(Constraint):
    def is_satisfied_by(self, value: Any) -> bool:
        return value is None

    def __str__(self) -> str:
        return "None"


class Interval(Constraint):
    """A number of ``kind`` (``numbers.Integral`` or ``numbers.Real``) in an interval.

    ``closed`` is ``"both"``, ``"left"``, ``"right"`` or ``"neither"``; ``None`` bounds are
    infinite. ``exclude`` lists values inside the interval that are still refused (``jobs``
    may be -1 or positive, never 0); ``description`` replaces the generated words. Booleans
    are never numbers here, and NaN and infinities are never accepted.
    """

    def __init__(
        self,
        kind: type,
        left: float | None,
        right: float | None,
        closed: str = "both",
        exclude: Iterable[float] = (),
        description: str | None = None,
    ) -> None:
        self.kind = kind
        self.left = -math.inf if left is None else left
        self.right = math.inf if right is None else right
        self.closed = closed
        self.exclude = tuple(exclude)
        self.description = description

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        v = float(value)
        if not math.isfinite(v) or v in self.exclude:  # NaN and infinities are never values
            return False
        low_ok = v >= self.left if self.closed in ("both", "left") else v > self.left
        high_ok = v <= self.right if self.closed in ("both", "right") else v < self.right
        return low_ok and high_ok

    def __str__(self) -> str:
        if self.description is not None:
            return self.description
        noun = "an integer" if self.kind is numbers.Integral else "a number"
        if self.left == -math.inf and self.right == math.inf:
            text = noun if self.kind is numbers.Integral else "a finite number"
        elif self.right == math.inf and self.closed in ("both", "left"):
            text = f"{noun} >= {_num(self.left)}"
        elif self.right == math.inf:
            text = f"{noun} > {_num(self.left)}"
        else:
            lo = "[" if self.closed in ("both", "left") else "("
            hi = "]" if self.closed in ("both", "right") else ")"
            text = f"{noun} in {lo}{_num(self.left)}, {_num(self.right)}{hi}"
        if self.exclude:
            text += " other than " + ", ".join(_num(e) for e in self.exclude)
        return text


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


class Options(Constraint):
    """One of a fixed set of values (strings, booleans...), compared with ``==``."""

    def __init__(self, options: Iterable[Any]) -> None:
        self.options = tuple(options)

    def is_satisfied_by(self, value: Any) -> bool:
        for option in self.options:
            # `True == 1` in Python: booleans match only themselves, so 1 is not True.
            if isinstance(option, bool) or isinstance(value, bool):
                if value is option:
                    return True
            elif isinstance(value, (str, numbers.Number)) and value == option:
                return True
        return False

    def __str__(self) -> str:
        items = [repr(o) for o in self.options]
        return "one of " + ", ".join(items) if len(items) > 2 else " or ".join(items)


class InstanceOf(Constraint):
    """An instance of some types, described in words (``"a stopping criterion"``).

    Passing one of the classes itself (``MinUpdates`` instead of ``MinUpdates(100)``) gets a
    hint saying to call it.
    """

    def __init__(self, types: type | tuple[type, ...], description: str) -> None:
        self.types = types
        self.description = description

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, self.types)

    def hint_for(self, value: Any) -> str:
        if isinstance(value, type) and issubclass(value, self.types):
            return (f"That is the class {value.__name__} itself: create one by calling it "
                    "with its arguments.")
        return ""

    def __str__(self) -> str:
        return self.description


class Satisfies(Constraint):
    """Anything ``predicate(value)`` accepts, described in words."""

    def __init__(self, predicate: Callable[[Any], bool], description: str) -> None:
        self.predicate = predicate
        self.description = description

    def is_satisfied_by(self, value: Any) -> bool:
        try:
            return bool(self.predicate(value))
        except Exception:  # noqa: BLE001 - a predicate that cannot judge a value refuses it
            return False

    def __str__(self) -> str:
        return self.description


def _as_constraint(c: Any) -> Constraint:
    if c is None:
        return _NoneConstraint()
    if isinstance(c, Constraint):
        return c
    raise TypeError(f"not a constraint: {c!r}")  # a bug in a table, not user input


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def check_param(name: str, value: Any, constraints: Iterable[Any], hint: str = "") -> Any:
    """Return ``value`` if one of ``constraints`` accepts it, else raise a one-line error.

    The error is a :class:`~dvl_jupyter.valuation.exceptions.DvlParameterError` (both a
    ``ValueError`` and a ``TypeError``, as scikit-learn's ``InvalidParameterError``):
    ``"<name> must be <what> or <what>; got <type> <value>.<hint>"``.
    """
    parsed = [_as_constraint(c) for c in constraints]
    if any(c.is_satisfied_by(value) for c in parsed):
        return value
    what = _join([str(c) for c in parsed])
    hints = [h for h in (c.hint_for(value) for c in parsed) if h] + ([hint] if hint else [])
    tail = "".join(f" {h}" for h in hints)
    if value is None:  # a setting that has no default and was not given
        raise DvlParameterError(f"{name} is required: it must be {what}.{tail}")
    raise DvlParameterError(f"{name} must be {what}; got {describe_value(value)}.{tail}")


def validate_params(
    params: Mapping[str, Any],
    table: Mapping[str, tuple[list[Any], str] | list[Any]],
    prefix: str = "",
) -> None:
    """Check every entry of ``params`` that ``table`` names (``name -> constraints`` or
    ``name -> (constraints, hint)``); ``prefix`` goes before the name (``"MinUpdates."``)."""
    for name, spec in table.items():
        if name not in params:
            continue
        constraints, hint = spec if isinstance(spec, tuple) else (spec, "")
        check_param(prefix + name, params[name], constraints, hint)


# -- the shared vocabulary: constraints several tables use, so they read the same everywhere --
STOPPING = [InstanceOf(StoppingCriterion,
                       "a stopping criterion such as MinUpdates(100) | MaxTime(600)")]
TRUNCATION = [InstanceOf(TruncationPolicy, "NoTruncation(), FixedTruncation(fraction), "
                                           "RelativeTruncation(rtol, burn_in_fraction)"), None]
SEED = [None, Interval(numbers.Integral, 0, None)]
BATCHED = [Options(["auto", True, False])]
FLAG = [Options([True, False])]
