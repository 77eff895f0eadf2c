"""The container for data values: running means, variances and counts per data point.

A Monte Carlo valuation method produces, for every training point, a stream of samples (marginal
contributions). `ValuationResult` keeps only what is needed to summarise such a stream, updated
in place with Welford's algorithm: the running mean (the value), the sample variance and the
number of samples. Two results of independent runs over the same data can be merged with ``+``
as if all their samples had been pooled, so runs can be split, resumed and combined freely.

The arrays are positional: position ``i`` of ``values``, ``variances``, ``counts``, ``indices``
and ``names`` all describe the same data point, whatever sorting or slicing was applied.

The file format (npz without pickle, and JSON) lives in :mod:`dvl_jupyter.valuation.result_io`.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    import os

    import pandas as pd

__all__ = ["Status", "ValuationResult", "SortKey", "set_rich_display"]

SortKey = Literal["value", "variance", "stderr", "count", "index", "name"]
_SORT_KEYS: tuple[str, ...] = ("value", "variance", "stderr", "count", "index", "name")


class Status(Enum):
    """State of a computation or of a stopping criterion.

    A status is *truthy* when the computation should stop (``Converged`` or ``Failed``) and falsy
    while it is ``Pending``, so ``while not is_done(result): ...`` reads naturally.

    Statuses combine the way the criteria producing them do:

    - ``a | b`` (either says stop): ``Converged`` if either is ``Converged``, else ``Failed`` if
      either is ``Failed``, else ``Pending``. (pyDVL's table gives ``Failed | Pending == Pending``;
      we take ``Failed`` so that ``|`` always stops when one side stops.)
    - ``a & b`` (both say stop): ``Failed`` if either is ``Failed``, else ``Pending`` if either
      is ``Pending``, else ``Converged``.
    - ``~a``: ``~Pending == Converged``, ``~Converged == Failed``, ``~Failed == Converged``.

    Examples
    --------
    >>> Status.Converged | Status.Pending
    <Status.Converged: 'converged'>
    >>> Status.Converged & Status.Pending
    <Status.Pending: 'pending'>
    >>> bool(Status.Pending), bool(~Status.Pending)
    (False, True)
    """

    Pending = "pending"
    Converged = "converged"
    Failed = "failed"

    def __or__(self, other: Status) -> Status:
        if not isinstance(other, Status):
            return NotImplemented
        if Status.Converged in (self, other):
            return Status.Converged
        if Status.Failed in (self, other):
            return Status.Failed
        return Status.Pending

    def __and__(self, other: Status) -> Status:
        if not isinstance(other, Status):
            return NotImplemented
        if Status.Failed in (self, other):
            return Status.Failed
        if Status.Pending in (self, other):
            return Status.Pending
        return Status.Converged

    def __invert__(self) -> Status:
        return Status.Failed if self is Status.Converged else Status.Converged

    def __bool__(self) -> bool:
        return self is not Status.Pending


def _as_status(status: Status | str, name: str = "status") -> Status:
    """Accept a `Status` or its string value ("pending", "converged", "failed")."""
    if isinstance(status, Status):
        return status
    if isinstance(status, str):
        for member in Status:
            if status.lower() in (member.value, member.name.lower()):
                return member
    allowed = ", ".join(f"Status.{m.name}" for m in Status)
    raise ValueError(f"{name} must be one of {allowed} (or its string value); got {status!r}.")


def _welford_merge(
    mean_a: NDArray[np.float64],
    var_a: NDArray[np.float64],
    n_a: NDArray[np.int64],
    mean_b: NDArray[np.float64],
    var_b: NDArray[np.float64],
    n_b: NDArray[np.int64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    """Combine two sets of (mean, sample variance, count) as if their samples were pooled.

    Chan et al.'s parallel formula. Where both counts are 0 there are no samples to weigh, so the
    mean is the plain average of the two means and the variance is 0.
    """
    n = n_a + n_b
    delta = mean_b - mean_a
    safe_n = np.maximum(n, 1)
    mean = np.where(n > 0, mean_a + delta * (n_b / safe_n), 0.5 * (mean_a + mean_b))
    m2_a = np.where(n_a >= 2, var_a * (n_a - 1), 0.0)
    m2_b = np.where(n_b >= 2, var_b * (n_b - 1), 0.0)
    m2 = m2_a + m2_b + delta**2 * (n_a * n_b / safe_n)
    var = np.where(n >= 2, m2 / np.maximum(n - 1, 1), 0.0)
    return mean, var, n


class ValuationResult:
    """Values of data points, with the variance and number of samples behind each.

    Parameters
    ----------
    values : array-like of float, shape (n,)
        Estimated value of each data point (the running mean of its samples).
    variances : array-like of float, shape (n,), optional
        Sample variance (ddof=1) of each point's samples. Defaults to zeros.
    counts : array-like of int, shape (n,), optional
        Number of samples behind each value. Defaults to ones: a value given without counts
        counts as a single sample, so merging it with another result weighs it fairly.
    indices : array-like of int, shape (n,), optional
        Data index of each point (its position in the training set). Defaults to ``0..n-1``.
        Must be unique: ``+`` merges results by these.
    names : array-like, shape (n,), optional
        Human-readable name of each point, stored as strings. Defaults to ``str(index)``.
    algorithm : str
        Name of the method that produced the values, e.g. ``"tmc_shapley"``.
    status : Status
        Whether the computation converged, failed or is still pending.
    meta : dict, optional
        JSON-able extra information (evaluations, cache hits, elapsed seconds, seed, ...).

    Raises
    ------
    ValueError
        If an array has the wrong shape, counts or variances are negative, or indices repeat.

    Notes
    -----
    ``stderr = sqrt(variances / max(counts, 1))``. The array properties return read-only views
    so a result can only change through :meth:`update` (which keeps the three statistics
    consistent); use ``.copy()`` on an array to get a writable one.

    Examples
    --------
    >>> r = ValuationResult.zeros(3)
    >>> r.update(np.array([0, 2]), np.array([1.0, -1.0]))
    >>> r.values
    array([ 1.,  0., -1.])
    """

    __slots__ = (
        "_values",
        "_variances",
        "_counts",
        "_indices",
        "_names",
        "_algorithm",
        "_status",
        "_meta",
        "_display_data",
    )

    def __init__(
        self,
        values: ArrayLike,
        variances: ArrayLike | None = None,
        counts: ArrayLike | None = None,
        indices: ArrayLike | None = None,
        names: ArrayLike | None = None,
        algorithm: str = "",
        status: Status | str = Status.Pending,
        meta: dict[str, Any] | None = None,
    ) -> None:
        vals = np.array(values, dtype=np.float64, copy=True)
        if vals.ndim != 1:
            raise ValueError(
                f"values must be a 1-D array of floats, one per data point; got shape {vals.shape}."
                " Flatten it (np.ravel) or pass one value per point."
            )
        n = vals.shape[0]

        if variances is None:
            var = np.zeros(n, dtype=np.float64)
        else:
            var = np.array(variances, dtype=np.float64, copy=True)
            _check_shape("variances", var, n)
            if np.any(var < 0):
                raise ValueError(
                    "variances must be >= 0 (they are sample variances); got a minimum of "
                    f"{np.nanmin(var)}. Pass the variances, not e.g. log-variances."
                )

        if counts is None:
            cnt = np.ones(n, dtype=np.int64)
        else:
            raw = np.asarray(counts)
            if raw.size and not (
                np.issubdtype(raw.dtype, np.integer)
                or (np.issubdtype(raw.dtype, np.floating) and np.all(np.mod(raw, 1) == 0))
            ):
                raise ValueError(
                    f"counts must be whole numbers (numbers of samples); got dtype {raw.dtype}"
                    " with fractional entries. Pass integer counts."
                )
            cnt = np.array(raw, dtype=np.int64, copy=True)
            _check_shape("counts", cnt, n)
            if np.any(cnt < 0):
                raise ValueError(
                    f"counts must be >= 0; got a minimum of {cnt.min()}. Counts are numbers of "
                    "samples behind each value."
                )

        if indices is None:
            idx = np.arange(n, dtype=np.int64)
        else:
            raw = np.asarray(indices)
            if raw.size and not np.issubdtype(raw.dtype, np.integer):
                raise ValueError(
                    f"indices must be integers (data indices); got dtype {raw.dtype}. "
                    "Pass e.g. np.arange(n) or the training set's indices."
                )
            idx = np.array(raw, dtype=np.int64, copy=True)
            _check_shape("indices", idx, n)
            if np.unique(idx).size != n:
                raise ValueError(
                    "indices must be unique (results are merged by data index); got "
                    f"{n - np.unique(idx).size} repeated entries. Pass one entry per data point."
                )

        if names is None:
            nms = idx.astype(str)
        else:
            nms = np.array(names, copy=True).astype(str)
            _check_shape("names", nms, n)

        if not isinstance(algorithm, str):
            raise TypeError(
                f"algorithm must be a str naming the method; got {type(algorithm).__name__}."
            )
        if meta is not None and not isinstance(meta, dict):
            raise TypeError(f"meta must be a dict (JSON-able) or None; got {type(meta).__name__}.")

        self._values = vals
        self._variances = var
        self._counts = cnt
        self._indices = idx
        self._names = nms
        self._algorithm = algorithm
        self._status = _as_status(status)
        self._meta: dict[str, Any] = copy.deepcopy(meta) if meta else {}
        self._display_data: Any = None

    # ------------------------------------------------------------------ construction

    @classmethod
    def zeros(
        cls,
        indices: ArrayLike | int,
        names: ArrayLike | None = None,
        algorithm: str = "",
    ) -> ValuationResult:
        """An empty result to be filled by :meth:`update`: values, variances and counts all 0.

        Parameters
        ----------
        indices : array-like of int, or int
            Data indices of the points; an int ``n`` means ``0..n-1``.
        names : array-like, optional
            Names of the points; default ``str(index)``.
        algorithm : str
            Name of the method that will fill it.
        """
        if isinstance(indices, (int, np.integer)) and not isinstance(indices, bool):
            if indices < 0:
                raise ValueError(f"indices as a count must be >= 0; got {indices}.")
            idx = np.arange(int(indices), dtype=np.int64)
        else:
            idx = np.asarray(indices)
        n = idx.shape[0] if idx.ndim else 1
        return cls(
            values=np.zeros(n),
            variances=np.zeros(n),
            counts=np.zeros(n, dtype=np.int64),
            indices=idx,
            names=names,
            algorithm=algorithm,
        )

    @classmethod
    def _unchecked(
        cls,
        values: NDArray[np.float64],
        variances: NDArray[np.float64],
        counts: NDArray[np.int64],
        indices: NDArray[np.int64],
        names: NDArray[np.str_],
        algorithm: str,
        status: Status,
        meta: dict[str, Any],
        display_data: Any = None,
    ) -> ValuationResult:
        """Build from arrays already validated and owned by the caller (no copies, no checks)."""
        obj = cls.__new__(cls)
        obj._values = values
        obj._variances = variances
        obj._counts = counts
        obj._indices = indices
        obj._names = names
        obj._algorithm = algorithm
        obj._status = status
        obj._meta = meta
        obj._display_data = display_data
        return obj

    # ------------------------------------------------------------------ properties

    @property
    def values(self) -> NDArray[np.float64]:
        """Running mean of each point's samples (read-only view)."""
        return _readonly(self._values)

    @property
    def variances(self) -> NDArray[np.float64]:
        """Sample variance (ddof=1) of each point's samples; 0 while count < 2 (read-only)."""
        return _readonly(self._variances)

    @property
    def counts(self) -> NDArray[np.int64]:
        """Number of samples behind each value (read-only view)."""
        return _readonly(self._counts)

    @property
    def indices(self) -> NDArray[np.int64]:
        """Data index of each point (read-only view)."""
        return _readonly(self._indices)

    @property
    def names(self) -> NDArray[np.str_]:
        """Name of each point, as strings (read-only view)."""
        return _readonly(self._names)

    @property
    def display_data(self) -> Any:
        """The training data the values are about, kept only to show them (or None).

        Set by the notebook runner so that a displayed result can show the images and labels
        of its points (a ``Dataset`` whose ``indices`` match the result's). It is shared, not
        copied, by slicing, sorting and ``copy()``; it is neither saved nor compared.
        """
        return self._display_data

    @display_data.setter
    def display_data(self, data: Any) -> None:
        self._display_data = data

    @property
    def stderr(self) -> NDArray[np.float64]:
        """Standard error of each value: ``sqrt(variances / max(counts, 1))``."""
        return np.sqrt(self._variances / np.maximum(self._counts, 1))

    @property
    def algorithm(self) -> str:
        """Name of the method that produced the values."""
        return self._algorithm

    @property
    def status(self) -> Status:
        """Whether the computation converged, failed or is pending (settable)."""
        return self._status

    @status.setter
    def status(self, value: Status | str) -> None:
        self._status = _as_status(value)

    @property
    def meta(self) -> dict[str, Any]:
        """JSON-able extra information; the dict itself, so it can be filled in place."""
        return self._meta

    # ------------------------------------------------------------------ updates

    def update(self, positions: ArrayLike, samples: ArrayLike) -> None:
        """Add one sample to each listed point, with Welford's numerically stable update.

        Vectorised over points: ``positions[k]`` receives ``samples[k]``. Positions are
        positional (``0..len(self)-1``), not data indices, and must be unique within a call
        (several samples for one point need several calls).

        Parameters
        ----------
        positions : array-like of int, shape (k,)
        samples : array-like of float, shape (k,)

        Raises
        ------
        ValueError
            If shapes differ, positions repeat or are out of range.
        """
        pos = np.atleast_1d(np.asarray(positions))
        x = np.atleast_1d(np.asarray(samples, dtype=np.float64))
        if pos.size == 0 and x.size == 0:
            return
        if not np.issubdtype(pos.dtype, np.integer):
            raise ValueError(
                f"positions must be integers (positions 0..{len(self) - 1}); got dtype "
                f"{pos.dtype}. Use np.asarray(positions, dtype=int)."
            )
        if pos.ndim != 1 or x.shape != pos.shape:
            raise ValueError(
                "positions and samples must be 1-D arrays of the same length (one sample per "
                f"position); got shapes {pos.shape} and {x.shape}."
            )
        n = len(self)
        if pos.min() < 0 or pos.max() >= n:
            raise ValueError(
                f"positions must lie in 0..{n - 1}; got {pos.min()}..{pos.max()}. Positions "
                "are positions in this result, not data indices."
            )
        if np.unique(pos).size != pos.size:
            raise ValueError(
                "positions must be unique within one update() call; to add several samples "
                "to one point, call update() once per sample."
            )
        c = self._counts[pos] + 1
        mean = self._values[pos]
        delta = x - mean
        new_mean = mean + delta / c
        m2 = np.where(c >= 3, self._variances[pos] * (c - 2), 0.0) + delta * (x - new_mean)
        self._values[pos] = new_mean
        self._variances[pos] = np.where(c >= 2, m2 / np.maximum(c - 1, 1), 0.0)
        self._counts[pos] = c

    # ------------------------------------------------------------------ container protocol

    def __len__(self) -> int:
        return int(self._values.shape[0])

    def __getitem__(self, key: int | slice | ArrayLike) -> ValuationResult:
        """Positional selection, always returning a new `ValuationResult`.

        ``key`` may be an int (negative counts from the end), a slice, an array of ints or a
        boolean mask of length ``len(self)``.
        """
        return self._take(self._positions(key))

    def _positions(self, key: Any) -> NDArray[np.intp] | slice:
        n = len(self)
        if isinstance(key, slice):
            return key
        if isinstance(key, (bool, np.bool_)):
            raise TypeError(
                "a ValuationResult is indexed by position (int, slice, int array or boolean "
                "mask); got a single bool."
            )
        if isinstance(key, (int, np.integer)):
            i = operator.index(key)
            if not -n <= i < n:
                raise IndexError(f"position {i} is out of range for a result of length {n}.")
            return np.array([i % n], dtype=np.intp)
        arr = np.asarray(key)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise IndexError(
                    f"a boolean mask must have shape ({n},), one entry per point; got {arr.shape}."
                )
            return np.flatnonzero(arr)
        if arr.size == 0:
            return np.zeros(0, dtype=np.intp)
        if not np.issubdtype(arr.dtype, np.integer) or arr.ndim != 1:
            raise TypeError(
                "a ValuationResult is indexed by position: an int, a slice, a 1-D array of ints "
                f"or a boolean mask; got {type(key).__name__} of dtype {arr.dtype}."
            )
        if arr.min() < -n or arr.max() >= n:
            raise IndexError(f"positions {arr.min()}..{arr.max()} out of range for length {n}.")
        return arr.astype(np.intp)

    def _take(self, pos: NDArray[np.intp] | slice) -> ValuationResult:
        def pick(a: np.ndarray) -> np.ndarray:
            # Fancy indexing copies; a slice gives a view, so copy it explicitly.
            return a[pos].copy()

        return ValuationResult._unchecked(
            pick(self._values),
            pick(self._variances),
            pick(self._counts),
            pick(self._indices),
            pick(self._names),
            self._algorithm,
            self._status,
            copy.deepcopy(self._meta),
            self._display_data,
        )

    def copy(self) -> ValuationResult:
        """A deep copy: arrays and meta are not shared with the original."""
        return self._take(slice(None))

    # ------------------------------------------------------------------ sorting

    def sort(
        self,
        reverse: bool = False,
        key: SortKey = "value",
        inplace: bool = False,
    ) -> ValuationResult:
        """Sort points by ``key``, keeping every array aligned.

        The sort is stable in both directions: points with equal keys keep their relative order
        (also with ``reverse=True``). NaN values go last when ascending, first when descending.

        Parameters
        ----------
        reverse : bool
            Descending order (highest value first) if True.
        key : {"value", "variance", "stderr", "count", "index", "name"}
            What to sort by.
        inplace : bool
            Reorder this result and return it, instead of returning a sorted copy.

        Returns
        -------
        ValuationResult
            The sorted result (``self`` if ``inplace``).
        """
        if key not in _SORT_KEYS:
            raise ValueError(f"key must be one of {', '.join(map(repr, _SORT_KEYS))}; got {key!r}.")
        k = {
            "value": self._values,
            "variance": self._variances,
            "stderr": self.stderr,
            "count": self._counts,
            "index": self._indices,
            "name": self._names,
        }[key]
        if reverse:
            # Stable descending: sort the reversed array, then map back and reverse.
            order = (len(k) - 1 - np.argsort(k[::-1], kind="stable"))[::-1]
        else:
            order = np.argsort(k, kind="stable")
        if not inplace:
            return self._take(order)
        for name in ("_values", "_variances", "_counts", "_indices", "_names"):
            setattr(self, name, getattr(self, name)[order])
        return self

    # ------------------------------------------------------------------ merging

    def __add__(self, other: ValuationResult) -> ValuationResult:
        """Merge two results by data index, as if all their samples had been pooled.

        The result holds the union of both index sets: points of ``self`` first in their order,
        then those only in ``other``. For shared indices the means and variances are combined
        with Chan's parallel formula and counts add. The status is ``self.status | other.status``,
        the algorithm is kept if both agree (else ``"a+b"``), meta is ``self``'s over ``other``'s.

        Raises
        ------
        ValueError
            If a shared index has different names in the two results.
        """
        if not isinstance(other, ValuationResult):
            return NotImplemented
        pos_in_self = {int(i): p for p, i in enumerate(self._indices)}
        shared_o: list[int] = []
        shared_s: list[int] = []
        only_o: list[int] = []
        for p, i in enumerate(other._indices):
            q = pos_in_self.get(int(i))
            if q is None:
                only_o.append(p)
            else:
                shared_o.append(p)
                shared_s.append(q)
        so, ss, oo = (np.array(a, dtype=np.intp) for a in (shared_o, shared_s, only_o))
        differ = np.flatnonzero(self._names[ss] != other._names[so])
        if differ.size:
            k = differ[0]
            raise ValueError(
                "cannot merge results whose names differ for the same data index: index "
                f"{self._indices[ss[k]]} is {str(self._names[ss[k]])!r} in one and "
                f"{str(other._names[so[k]])!r} in the other. Merge results of the same "
                "training set."
            )
        values = self._values.copy()
        variances = self._variances.copy()
        counts = self._counts.copy()
        values[ss], variances[ss], counts[ss] = _welford_merge(
            self._values[ss],
            self._variances[ss],
            self._counts[ss],
            other._values[so],
            other._variances[so],
            other._counts[so],
        )
        if self._algorithm == other._algorithm or not other._algorithm:
            algorithm = self._algorithm
        elif not self._algorithm:
            algorithm = other._algorithm
        else:
            algorithm = f"{self._algorithm}+{other._algorithm}"
        return ValuationResult._unchecked(
            np.concatenate([values, other._values[oo]]),
            np.concatenate([variances, other._variances[oo]]),
            np.concatenate([counts, other._counts[oo]]),
            np.concatenate([self._indices, other._indices[oo]]),
            np.concatenate([self._names, other._names[oo]]),
            algorithm,
            self._status | other._status,
            copy.deepcopy({**other._meta, **self._meta}),
            self._display_data if self._display_data is not None else other._display_data,
        )

    def __radd__(self, other: Any) -> ValuationResult:
        """Let ``sum(results)`` work: ``0 + result`` is a copy of the result."""
        if isinstance(other, (int, float)) and other == 0:
            return self.copy()
        return NotImplemented

    # ------------------------------------------------------------------ views

    def to_dataframe(self, column: str | None = None) -> pd.DataFrame:
        """The result as a pandas DataFrame indexed by data index, in the current order.

        Parameters
        ----------
        column : str, optional
            Prefix for the statistics' columns, so several methods' results can be joined:
            ``column="tmc"`` gives ``tmc``, ``tmc_stderr``, ``tmc_variance``, ``tmc_count``.
            Default: ``value``, ``stderr``, ``variance``, ``count``.

        Returns
        -------
        pandas.DataFrame
            Columns ``name`` and the four statistics; index named ``index``.
        """
        import pandas as pd

        if column is None:
            cols = ("value", "stderr", "variance", "count")
        else:
            cols = (column, f"{column}_stderr", f"{column}_variance", f"{column}_count")
        return pd.DataFrame(
            {
                "name": self._names.copy(),
                cols[0]: self._values.copy(),
                cols[1]: self.stderr,
                cols[2]: self._variances.copy(),
                cols[3]: self._counts.copy(),
            },
            index=pd.Index(self._indices.copy(), name="index"),
        )

    def allclose(self, other: ValuationResult, rtol: float = 1e-9, atol: float = 1e-12) -> bool:
        """Same indices, names and counts in the same order, and close values and variances."""
        if not isinstance(other, ValuationResult) or len(self) != len(other):
            return False
        return bool(
            np.array_equal(self._indices, other._indices)
            and np.array_equal(self._names, other._names)
            and np.array_equal(self._counts, other._counts)
            and np.allclose(self._values, other._values, rtol=rtol, atol=atol, equal_nan=True)
            and np.allclose(self._variances, other._variances, rtol=rtol, atol=atol, equal_nan=True)
        )

    def __repr__(self) -> str:
        n = len(self)
        head = ", ".join(f"{v:.4g}" for v in self._values[:4]) + (", ..." if n > 4 else "")
        algo = f"algorithm={self._algorithm!r}, " if self._algorithm else ""
        return (
            f"ValuationResult({algo}status={self._status.name}, n={n}, "
            f"values=[{head}], total_updates={int(self._counts.sum())})"
        )

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Rich display in Jupyter (JSON for the labextension, PNG, HTML, text).

        Drawn by the renderer registered with :func:`set_rich_display` (the notebook side's
        :func:`dvl_jupyter.display.mimebundle`, registered when the package is imported), so
        the engine itself never imports matplotlib or anything from Jupyter; without one, the
        text.
        """
        if _RICH_DISPLAY is None:
            return {"text/plain": repr(self)}
        return _RICH_DISPLAY(self, include=include, exclude=exclude)

    # ------------------------------------------------------------------ I/O (the format: result_io)

    # The format is imported when used: the container itself does no I/O.
    def _parts(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        from . import result_io

        arrays = {"values": self._values, "variances": self._variances,
                  "counts": self._counts, "indices": self._indices, "names": self._names}
        return arrays, result_io.header(self._algorithm, self._status.value, self._meta)

    @classmethod
    def _from_parts(cls, arrays: dict[str, np.ndarray], head: dict[str, Any]
                    ) -> ValuationResult:
        from . import result_io

        return cls(**{k: arrays[k] for k in result_io.ARRAYS},
                   algorithm=head.get("algorithm", ""),
                   status=_as_status(head.get("status", Status.Pending.value)),
                   meta=head.get("meta") or {})

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to an ``.npz`` file that loads without pickle (:mod:`.result_io`).

        Written to a temporary name and renamed, so an interrupted save leaves no half file;
        ``path`` is used as given. Raises ``TypeError`` if ``meta`` is not JSON-able.
        """
        from . import result_io

        return result_io.write(path, *self._parts())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ValuationResult:
        """Load a result written by :meth:`save`, refusing anything that would need pickle."""
        from . import result_io

        return cls._from_parts(*result_io.read(path))

    def to_json_dict(self) -> dict[str, Any]:
        """The result as plain JSON types (NaN as None), e.g. for a run manifest."""
        from . import result_io

        return result_io.to_json(*self._parts())

    @classmethod
    def from_json_dict(cls, d: dict[str, Any]) -> ValuationResult:
        """Rebuild a result from :meth:`to_json_dict`'s output."""
        from . import result_io

        return cls._from_parts(*result_io.from_json(d))


_RICH_DISPLAY: Callable[..., dict[str, Any]] | None = None


def set_rich_display(render: Callable[..., dict[str, Any]] | None) -> None:
    """Register how results display themselves: ``render(result, include=, exclude=)`` returns
    a MIME bundle. The package root registers :func:`dvl_jupyter.display.mimebundle`."""
    global _RICH_DISPLAY
    _RICH_DISPLAY = render


def _check_shape(name: str, arr: np.ndarray, n: int) -> None:
    if arr.shape != (n,):
        raise ValueError(
            f"{name} must have shape ({n},), one entry per value; got shape {arr.shape}. "
            f"Pass {name} aligned with values, or leave it out for the default."
        )


def _readonly(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.flags.writeable = False
    return view
