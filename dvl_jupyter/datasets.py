"""Ready-made datasets, so that the reference workflow runs offline with one line."""

from __future__ import annotations

from numbers import Real
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # imported lazily at run time, see load_digits
    import torch

    from dvl_jupyter.valuation.dataset import Dataset

__all__ = ["load_digits", "load_digits_dataset"]


def load_digits(
    train_size: float = 0.7,
    random_state: int | np.random.RandomState | None = None,
    device: str | torch.device | None = None,
) -> tuple[Dataset, Dataset]:
    """Load sklearn's handwritten digits as a stratified train/test pair of ``Dataset`` objects.

    This is the data of the reference notebook (1,797 grayscale 8x8 images, digits 0-9). We use
    the copy bundled with scikit-learn, so nothing is downloaded and the function works on
    machines without network access (CI, clusters).

    Args:
        train_size: Fraction of the points that go to the training set, strictly between 0 and 1.
        random_state: Seed (or ``RandomState``) of the split; the same seed gives the same split.
        device: When given, ``x`` and ``y`` are torch tensors on this device (as the reference
            notebook does to train on a GPU); otherwise they are numpy arrays.

    Returns:
        ``(train, test)``. ``x`` is float32 of shape ``(N, 1, 8, 8)`` scaled to ``[0, 1]`` (the
        raw pixels go from 0 to 16), ready for :class:`dvl_jupyter.models.SimpleCNN`; ``y`` is
        int64 as torch's ``CrossEntropyLoss`` requires; ``names`` are ``"digit-<i>"`` with ``i``
        the row in sklearn's original data, so a point can be traced back after the shuffle.

    Raises:
        DvlValueError: (a ``ValueError``) If ``train_size`` is not a number strictly between
            0 and 1 (sklearn would read an integer as an absolute count, which is not what this
            function promises).
    """
    # Imported here so this module imports even where the valuation package is partial, and so
    # that `import dvl_jupyter.datasets` stays cheap.
    from dvl_jupyter.valuation.exceptions import DvlValueError

    if (
        isinstance(train_size, bool)
        or not isinstance(train_size, Real)
        or not 0.0 < float(train_size) < 1.0
    ):
        raise DvlValueError(
            f"train_size must be a fraction strictly between 0 and 1, got {train_size!r}; "
            "use e.g. train_size=0.7"
        )

    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    from dvl_jupyter.valuation.dataset import Dataset

    bunch = _sk_load_digits()
    x = (np.asarray(bunch.data, dtype=np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    y = np.asarray(bunch.target, dtype=np.int64)
    names = np.array([f"digit-{i}" for i in range(len(y))], dtype=str)

    x_train, x_test, y_train, y_test, n_train, n_test = train_test_split(
        x,
        y,
        names,
        train_size=float(train_size),
        random_state=random_state,
        stratify=y,  # keeps the class balance in both halves, so test accuracy is meaningful
    )

    if device is None:
        return Dataset(x_train, y_train, names=n_train), Dataset(x_test, y_test, names=n_test)

    import torch

    dev = torch.device(device)

    def to_tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(dev)

    return (
        Dataset(to_tensor(x_train), to_tensor(y_train), names=n_train),
        Dataset(to_tensor(x_test), to_tensor(y_test), names=n_test),
    )


#: The reference notebook's name for :func:`load_digits` (pyDVL's ``notebooks/support/
#: datasets.py``), so its call ``load_digits_dataset(train_size=0.7, random_state=...,
#: device=...)`` runs with only the import changed. The same function, not a copy.
load_digits_dataset = load_digits
