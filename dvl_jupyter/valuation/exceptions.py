"""Errors raised by the valuation engine.

Hierarchy::

    DvlError                      root of everything we raise on purpose
    ├── DvlValueError(ValueError) an argument has a value we cannot use
    ├── DvlTypeError(TypeError)   an argument has a type we cannot use
    │   └── DvlParameterError     a setting breaks its constraint table (also a DvlValueError)
    └── FastPathUnsupported       ``batched=True`` was asked for a net the fast path cannot train

Engine errors subclass the builtin ``ValueError``/``TypeError`` so that code written against
pyDVL or scikit-learn (``except ValueError``) keeps working; the notebook side turns every
``DvlError`` into a short ``UsageError``.
"""

from __future__ import annotations

__all__ = [
    "DvlError",
    "DvlValueError",
    "DvlTypeError",
    "DvlParameterError",
    "FastPathUnsupported",
    "describe_value",
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


def describe_value(value: object) -> str:
    """A short ``type value`` description for error messages (never a 10-line repr)."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"
