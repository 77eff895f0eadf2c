"""Training and test data as the engine sees them.

A :class:`Dataset` holds features ``x`` and targets ``y`` of the same length, as numpy arrays
or torch tensors of any trailing shape (images stay images, so a CNN gets what it expects).
Valuation works on *positions* 0..n-1 of a dataset; ``indices`` are the data indices reported
in results (positions by default) and ``names`` label the points in plots and tables.

:meth:`Dataset.data` returns a :class:`RawData`: pyDVL's ``.x``, ``.y`` and ``.cpu()``, and at
the same time the ``(x, y)`` pair this package has always returned, so code written for either
library works unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .exceptions import DvlTypeError, DvlValueError, describe_value

__all__ = ["Dataset", "RawData"]


def _is_tensor(a: Any) -> bool:
    return type(a).__module__.startswith("torch") and hasattr(a, "detach")


def _length(a: Any, name: str) -> int:
    if isinstance(a, (list, tuple)):
        a = np.asarray(a)
    if not (isinstance(a, np.ndarray) or _is_tensor(a)):
        raise DvlTypeError(
            f"Dataset {name} must be a numpy array or a torch tensor; got {describe_value(a)}. "
            f"Convert it with np.asarray({name})."
        )
    if a.ndim == 0:
        raise DvlValueError(f"Dataset {name} must have at least one dimension; got a scalar.")
    return int(a.shape[0])


class RawData(NamedTuple):
    """The features and targets of a dataset (or of some of its points): a view, not a copy.

    pyDVL's ``Dataset.data()`` returns an object with ``x`` and ``y`` attributes, a ``cpu()``
    method and ``x, y = ...`` unpacking; this package's has always returned the pair
    ``(x, y)``. A named tuple is both, so ``data().cpu().x[i]``, ``model.fit(*data())``,
    ``x, y = data()``, ``data()[1]`` and ``Dataset(*data())`` all work.

    One difference from pyDVL, by design: this is a pair. ``len(raw) == 2``, ``raw[0]`` is
    ``x`` and ``raw[1]`` is ``y``, as tuple code expects; pyDVL's ``RawData`` is a dataclass
    whose ``len`` is the number of points and whose ``raw[i]`` selects rows. Select rows with
    ``raw.x[i]`` / ``raw.y[i]`` or ``dataset.data(positions)``, which mean the same in both.

    Attributes
    ----------
    x
        Features: a numpy array or a torch tensor (on any device).
    y
        Targets, of the same length.
    """

    x: Any
    y: Any

    def cpu(self) -> RawData:
        """The same data with torch tensors moved to the CPU (numpy arrays are returned as is).

        This is what plotting and sklearn metrics need from data kept on a GPU; on data that
        is already on the CPU it copies nothing (torch's ``Tensor.cpu`` returns the tensor
        itself), so it is cheap to call defensively.
        """
        return RawData(*(a.cpu() if _is_tensor(a) else a for a in self))

    def to(self, device: Any) -> RawData:
        """The same data as torch tensors on ``device`` (``"cpu"``, ``"cuda:0"``...).

        Tensors are moved with ``Tensor.to``; numpy arrays become tensors there (sharing
        memory with a writable array on the CPU; a read-only one is copied), as
        ``load_digits(device=...)`` makes them, so the result is always torch. Not in pyDVL's
        ``RawData``, which offers only ``cpu()``.

        Raises
        ------
        DvlTypeError
            If an array has a dtype torch cannot hold (strings, objects).
        """
        import torch

        dev = torch.device(device)

        def move(a: Any, name: str) -> Any:
            if _is_tensor(a):
                return a.to(dev)
            if isinstance(a, np.ndarray) and not a.flags.writeable:
                a = a.copy()  # torch cannot share a read-only buffer (it warns): copy it
            try:
                return torch.as_tensor(a, device=dev)
            except (TypeError, RuntimeError) as exc:
                raise DvlTypeError(
                    f"RawData.to({device!r}): {name} ({describe_value(a)}) cannot become a "
                    f"torch tensor ({exc}). Encode it as numbers first (e.g. with "
                    "sklearn.preprocessing.LabelEncoder), or keep it in numpy."
                ) from None

        return RawData(move(self.x, "x"), move(self.y, "y"))


class Dataset:
    """Features and targets of equal length, with names and data indices.

    Parameters
    ----------
    x, y
        numpy arrays or torch tensors (on any device) with the same first dimension.
    names
        One label per point (shown in plots); defaults to the data indices as strings.
    indices
        Data indices reported in results; defaults to ``0..n-1``. Slicing keeps the original
        indices, so a value of a sliced dataset still points at the right row.
    """

    def __init__(
        self,
        x: Any,
        y: Any,
        names: Sequence[str] | np.ndarray | None = None,
        indices: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        if isinstance(x, (list, tuple)):
            x = np.asarray(x)
        if isinstance(y, (list, tuple)):
            y = np.asarray(y)
        n_x, n_y = _length(x, "x"), _length(y, "y")
        if n_x != n_y:
            raise DvlValueError(
                f"Dataset x and y must have the same length; got x with {n_x} rows and y with "
                f"{n_y}. Pass matching arrays (e.g. x[:{min(n_x, n_y)}], y[:{min(n_x, n_y)}])."
            )
        self._x, self._y = x, y
        self._indices = (
            np.arange(n_x, dtype=np.int64) if indices is None else np.asarray(indices, np.int64)
        )
        if len(self._indices) != n_x:
            raise DvlValueError(
                f"Dataset indices must have one entry per point ({n_x}); got {len(self._indices)}."
            )
        if names is None:
            self._names = self._indices.astype(str)
        else:
            self._names = np.asarray([str(n) for n in names], dtype=str)
            if len(self._names) != n_x:
                raise DvlValueError(
                    f"Dataset names must have one entry per point ({n_x}); got {len(self._names)}."
                )

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        x: Any,
        y: Any,
        train_size: float = 0.8,
        random_state: int | None = None,
        stratify_by_target: bool = False,
        names: Sequence[str] | None = None,
    ) -> tuple[Dataset, Dataset]:
        """Split ``x, y`` into (train, test) datasets, keeping the original row indices."""
        from sklearn.model_selection import train_test_split

        if not 0.0 < float(train_size) < 1.0:
            raise DvlValueError(
                f"train_size must be a fraction in (0, 1); got {train_size!r}. "
                "Use e.g. train_size=0.7."
            )
        full = cls(x, y, names=names)
        y_np = full._y.detach().cpu().numpy() if _is_tensor(full._y) else np.asarray(full._y)
        train_pos, test_pos = train_test_split(
            np.arange(len(full)),
            train_size=train_size,
            random_state=random_state,
            stratify=y_np if stratify_by_target else None,
        )
        return full[np.sort(train_pos)], full[np.sort(test_pos)]

    # -- access --------------------------------------------------------------------------------
    @property
    def x(self) -> Any:
        return self._x

    @property
    def y(self) -> Any:
        return self._y

    @property
    def indices(self) -> np.ndarray:
        """Data indices of the points (what results report), one per position."""
        return self._indices

    @property
    def names(self) -> np.ndarray:
        return self._names

    def data(self, indices: Sequence[int] | np.ndarray | None = None) -> RawData:
        """``(x, y)`` at the given *positions* (all points when None), as a :class:`RawData`.

        The arrays keep their type and device (a tensor on a GPU stays there); call
        ``.cpu()`` on the result for host copies, e.g. to plot or to score with sklearn.
        """
        if indices is None:
            return RawData(self._x, self._y)
        pos = np.asarray(indices, dtype=np.int64)
        if _is_tensor(self._x):
            import torch

            take = torch.as_tensor(pos, device=self._x.device)
            x = self._x.index_select(0, take)
        else:
            x = self._x[pos]
        if _is_tensor(self._y):
            import torch

            y = self._y.index_select(0, torch.as_tensor(pos, device=self._y.device))
        else:
            y = self._y[pos]
        return RawData(x, y)

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, key: int | slice | Sequence[int] | np.ndarray) -> Dataset:
        """Positional selection returning a Dataset that keeps the original data indices."""
        if isinstance(key, (int, np.integer)):
            key = [int(key)]
        pos = np.arange(len(self))[key]
        x, y = self.data(pos)
        return Dataset(x, y, names=self._names[pos], indices=self._indices[pos])

    def __repr__(self) -> str:
        shape = tuple(self._x.shape[1:])
        kind = "tensor" if _is_tensor(self._x) else "ndarray"
        return f"Dataset(n={len(self)}, x: {kind} {shape}, y: {tuple(self._y.shape[1:])})"

    def fingerprint(self) -> str:
        """A digest of the content (x, y, indices): equal data gives the same fingerprint.

        The container is part of the content, the device is not:

        - The same values as numpy arrays and as torch tensors give *different* fingerprints
          (the array header names the kind and dtype), so their cache entries are kept
          apart. The container reaches the estimator and the scorer as it is, and what they
          do with it can differ (sklearn metrics on tensors, a custom scoring function, a fit
          that fails on one and is stored as ``default``): reusing values across containers
          could serve a value computed on another code path, while keeping them apart costs
          at most one recomputation after switching. skorch and the fast path give equal
          values for both, which the tests check.
        - Tensors on different devices with the same values give the *same* fingerprint
          (see :func:`~dvl_jupyter.valuation.fingerprint.fingerprint_array`): skorch moves
          every batch to the net's ``device``, which is part of the model's description, so
          where the data start does not change ``u(S)``.
        """
        from .fingerprint import digest, fingerprint_array

        return digest(
            "Dataset",
            fingerprint_array(self._x),
            fingerprint_array(self._y),
            fingerprint_array(self._indices),
        )


def as_dataset(data: Any, name: str) -> Dataset:
    """Accept a Dataset or an ``(x, y)`` pair; anything else is a clear TypeError."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        return Dataset(*data)
    raise DvlTypeError(
        f"{name} must be a Dataset or an (x, y) tuple; got {describe_value(data)}. "
        f"Wrap arrays with Dataset(x, y)."
    )
