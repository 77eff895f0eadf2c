"""Counterparts of the helpers that pyDVL's notebooks import from their ``support`` package.

pyDVL's example notebooks import a few helpers that are not part of pyDVL itself but of the
notebooks' own ``support`` package (``support.common.filecache``,
``support.datasets.load_digits_dataset``, ``support.banzhaf.SimpleCNN``). The loader and the
CNN live where they belong here (:func:`dvl_jupyter.datasets.load_digits_dataset`,
:class:`dvl_jupyter.models.SimpleCNN`); this module holds the rest, so that such a notebook runs
with only its imports changed (the README lists each import and its counterpart).

- :func:`filecache`: keeps a function's :class:`~dvl_jupyter.valuation.ValuationResult` in a
  file, so re-running a notebook reloads the values instead of recomputing them. Unlike
  pyDVL's, which pickles whatever the function returns, it stores only results, as ``.npz``
  archives read without pickle (loading a file never runs code).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dvl_jupyter.valuation.exceptions import DvlTypeError, DvlValueError, describe_value
from dvl_jupyter.valuation.result import ValuationResult

__all__ = ["filecache", "cache_path"]


def cache_path(path: str | os.PathLike[str]) -> Path:
    """The file :func:`filecache` uses for ``path``: the same name with the suffix ``.npz``.

    The suffix is replaced rather than kept because the file *is* an ``.npz`` archive, not a
    pickle, whatever name the notebook gives (the reference notebook says
    ``"shapley_skorch_result.pkl"``). It also means a pickle that pyDVL wrote under that name
    is never read, nor overwritten.
    """
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise DvlTypeError(
            f"filecache path must be a file name (str or pathlib.Path); got "
            f"{describe_value(path)}. Use e.g. filecache('result.npz')."
        )
    p = Path(path)
    if p.name in ("", ".", ".."):
        raise DvlValueError(
            f"filecache path must name a file; got {os.fspath(path)!r}. "
            "Use e.g. filecache('result.npz')."
        )
    return p.with_suffix(".npz")


def filecache(
    path: str | os.PathLike[str],
) -> Callable[[Callable[..., ValuationResult]], Callable[..., ValuationResult]]:
    """Wrap a function that returns a ``ValuationResult`` so that its result is kept on disk.

    The first call runs the function and saves what it returns with
    :meth:`ValuationResult.save` to :func:`cache_path` ``(path)`` (``path`` with its suffix
    replaced by ``.npz``); later calls, in this kernel or another, load that file with
    :meth:`ValuationResult.load` and do not run the function. This is the reference
    notebook's ``filecache`` (pyDVL's ``notebooks/support/common.py``) without pickle:

    - Only a ``ValuationResult`` is stored. Any other return value is a ``DvlTypeError``
      naming its type; nothing is written and the value is not returned, so a mistake such as
      ``lambda d: valuation.fit(d)`` (the valuation, not its ``.result``) shows on the first
      run instead of silently never caching. The computed values are not lost:
      ``valuation.result`` still holds them.
    - As in pyDVL, the arguments are *not* part of the key: the file is reloaded whatever the
      arguments, data or settings are now. Delete the file, or call the wrapped function with
      ``_force_rebuild=True``, after changing them. For a cache keyed by content (model, data,
      scorer, subset), pass ``cache=`` to ``ModelUtility`` instead.

    The wrapped function takes pyDVL's two extra keyword arguments: ``_silent=True`` hides the
    one-line message printed when the file is loaded, and ``_force_rebuild=True`` runs the
    function and overwrites the file.

    Parameters
    ----------
    path
        File to keep the result in; its suffix is replaced by ``.npz``.

    Returns
    -------
    Callable
        A decorator.

    Raises
    ------
    DvlTypeError
        (When called) if the function returns anything but a ``ValuationResult``.
    DvlValueError
        (When called) if the file exists but is not a readable saved result; it is left as it
        is (delete it or pass ``_force_rebuild=True``).

    Examples
    --------
    >>> cached_fit = filecache("shapley_result.npz")(lambda d: valuation.fit(d).result)
    >>> result = cached_fit(train)  # doctest: +SKIP
    """
    file = cache_path(path)

    def decorator(fun: Callable[..., ValuationResult]) -> Callable[..., ValuationResult]:
        if not callable(fun):
            raise DvlTypeError(
                f"filecache({os.fspath(path)!r}) wraps a function; got {describe_value(fun)}. "
                "Use filecache(path)(lambda d: valuation.fit(d).result)."
            )

        @functools.wraps(fun)
        def wrapper(*args: Any, _silent: bool = False, _force_rebuild: bool = False,
                    **kwargs: Any) -> ValuationResult:
            if file.exists() and not _force_rebuild:
                try:
                    result = ValuationResult.load(file)
                except ValueError as exc:
                    raise DvlValueError(
                        f"filecache: {file} exists but is not a readable saved result ({exc}). "
                        "Delete it, or call with _force_rebuild=True to recompute and overwrite "
                        "it."
                    ) from None
                if not _silent:
                    print(f"Found cached file: {file.name}.")
                return result
            result = fun(*args, **kwargs)
            if not isinstance(result, ValuationResult):
                raise DvlTypeError(
                    f"filecache({os.fspath(path)!r}) stores only a ValuationResult, but the "
                    f"function returned {describe_value(result)}; nothing was written. Return "
                    "the result, e.g. filecache(path)(lambda d: valuation.fit(d).result)."
                )
            file.parent.mkdir(parents=True, exist_ok=True)
            result.save(file)
            return result

        return wrapper

    return decorator
