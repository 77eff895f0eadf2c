"""Errors raised by the valuation engine.

Hierarchy::

    DvlError                      root of everything we raise on purpose
    ├── DvlValueError(ValueError) an argument has a value we cannot use
    ├── DvlTypeError(TypeError)   an argument has a type we cannot use
    │   └── DvlParameterError     a setting breaks its constraint table (also a DvlValueError)
    ├── FastPathUnsupported       ``batched=True`` was asked for a net the fast path cannot train
    └── UserCodeError(ValueError) code the user gave (a utility, a scoring function, a model's
                                  fit) raised or returned something that is not a number

Engine errors subclass the builtin ``ValueError``/``TypeError`` so that code written against
pyDVL or scikit-learn (``except ValueError``) keeps working; the notebook side turns every
``DvlError`` into a short ``UsageError``.

A :class:`UserCodeError` names the user's function as the culprit and keeps what is needed to
show *its* traceback rather than the engine's: the original exception (when it could cross
the process boundary) and the traceback text with the engine's frames left out. It pickles,
so it survives the trip back from a joblib worker.
"""

from __future__ import annotations

import os
import pickle
import sys
import warnings
from typing import Any

__all__ = [
    "DvlError",
    "DvlValueError",
    "DvlTypeError",
    "DvlParameterError",
    "FastPathUnsupported",
    "UserCodeError",
    "describe_value",
    "warn_user",
]


class DvlError(Exception):
    """Root of the errors dvl_jupyter raises on purpose (bad input, unsupported setups)."""


class DvlValueError(DvlError, ValueError):
    """An argument has a value the engine cannot use; the message names it and the fix."""


class DvlTypeError(DvlError, TypeError):
    """An argument has a type the engine cannot use; the message names it and the fix."""


class DvlParameterError(DvlValueError, DvlTypeError):
    """A setting breaks its constraint table (:mod:`~dvl_jupyter.valuation.params`).

    Both a ``ValueError`` and a ``TypeError``, as scikit-learn's ``InvalidParameterError``:
    whether ``jobs="two"`` is a wrong type or a wrong value is not worth a caller's ``except``.
    """


class FastPathUnsupported(DvlError, ValueError):
    """The fast path was required (``batched=True``) for a model it cannot train."""


class UserCodeError(DvlError, ValueError):
    """Code the user gave raised, or returned something that is not a finite number.

    The message names the culprit (``"the utility function 'u'"``, ``"LogisticRegression.fit"``,
    ``"scoring 'neg_log_loss'"``) and the step (fitting, scoring...). A ``ValueError`` too, so
    that ``except ValueError`` around a ``fit`` keeps working.

    Attributes
    ----------
    culprit
        Who failed, in words.
    step
        ``"fit"``, ``"score"`` or ``"utility"``.
    original
        The user's exception (None when it returned a bad value, or when it could not be
        pickled back from a worker).
    user_traceback
        The traceback of the user's code as text, without the engine's frames ("" if none).
    """

    def __init__(self, message: str, *, culprit: str = "", step: str = "",
                 original: BaseException | None = None, user_traceback: str = "") -> None:
        super().__init__(message)
        self.culprit = culprit
        self.step = step
        self.original = original
        self.user_traceback = user_traceback

    def __reduce__(self) -> Any:
        original = self.original
        if original is not None:
            try:
                pickle.dumps(original)
            except Exception:  # noqa: BLE001 - an unpicklable user exception stays behind
                original = None
        return (_rebuild_user_code_error,
                (str(self), self.culprit, self.step, original, self.user_traceback))

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for it: the user's own traceback, then this message."""
        lines = self.user_traceback.rstrip("\n").splitlines() if self.user_traceback else []
        return [*lines, f"{type(self).__name__}: {self}"]


def _rebuild_user_code_error(message: str, culprit: str, step: str,
                             original: BaseException | None,
                             user_traceback: str) -> UserCodeError:
    return UserCodeError(message, culprit=culprit, step=step, original=original,
                         user_traceback=user_traceback)


#: Frames from here (the package) and from these modules are the machinery between a warning
#: and the user's own code.
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_MACHINERY_MODULES = ("IPython.", "ipykernel.", "traitlets.", "joblib.", "contextlib.")


def _is_machinery(frame: Any) -> bool:
    if os.path.abspath(frame.f_code.co_filename).startswith(PACKAGE_DIR):
        return True
    module = frame.f_globals.get("__name__", "")
    return isinstance(module, str) and (module + ".").startswith(_MACHINERY_MODULES)


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` pointing at the user's line (the cell or script that started the
    run), never at a line inside dvl_jupyter, IPython or joblib."""
    frame = sys._getframe(1)
    level = 2  # stacklevel 2 is warn_user's caller
    while frame is not None and _is_machinery(frame):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level if frame is not None else 2)


def describe_value(value: object) -> str:
    """A short ``type value`` description for error messages (never a 10-line repr)."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"
