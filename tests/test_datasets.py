"""load_digits: the bundled sklearn digits as a stratified train/test pair of Datasets."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.datasets
import torch

from dvl_jupyter.datasets import load_digits


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    bunch = sklearn.datasets.load_digits()
    return bunch.data, bunch.target


def _original_rows(names: np.ndarray) -> np.ndarray:
    return np.array([int(str(n).removeprefix("digit-")) for n in names])


def test_shapes_dtypes_and_ranges():
    train, test = load_digits(train_size=0.7, random_state=36)
    x_tr, y_tr = train.data()
    x_te, y_te = test.data()
    assert isinstance(x_tr, np.ndarray) and isinstance(y_tr, np.ndarray)
    # sklearn rounds the test share up: ceil(0.3 * 1797) = 540.
    assert (len(train), len(test)) == (1257, 540)
    assert x_tr.shape == (1257, 1, 8, 8) and x_te.shape == (540, 1, 8, 8)
    assert y_tr.shape == (1257,) and y_te.shape == (540,)
    assert x_tr.dtype == x_te.dtype == np.float32
    assert y_tr.dtype == y_te.dtype == np.int64
    both = np.concatenate([x_tr, x_te])
    assert both.min() == 0.0 and both.max() == 1.0
    assert set(np.unique(np.concatenate([y_tr, y_te]))) == set(range(10))


def test_names_trace_back_to_the_original_rows(digits):
    data, target = digits
    train, test = load_digits(random_state=1)
    assert isinstance(train.names, np.ndarray) and train.names.dtype.kind == "U"
    assert all(str(n).startswith("digit-") for n in train.names)
    rows_tr, rows_te = _original_rows(train.names), _original_rows(test.names)
    assert sorted(np.concatenate([rows_tr, rows_te]).tolist()) == list(range(len(target)))
    x_tr, y_tr = train.data()
    np.testing.assert_array_equal(x_tr.reshape(len(train), 64), data[rows_tr] / 16)
    np.testing.assert_array_equal(y_tr, target[rows_tr])


def test_split_is_stratified(digits):
    _, target = digits
    train, test = load_digits(train_size=0.6, random_state=3)
    full = np.bincount(target, minlength=10)
    for ds in (train, test):
        counts = np.bincount(ds.data()[1], minlength=10)
        expected = full * len(ds) / len(target)
        assert np.all(np.abs(counts - expected) <= 1), (counts, expected)


def test_same_random_state_same_split_and_different_otherwise():
    a_tr, a_te = load_digits(random_state=7)
    b_tr, _ = load_digits(random_state=7)
    c_tr, _ = load_digits(random_state=8)
    np.testing.assert_array_equal(a_tr.names, b_tr.names)
    np.testing.assert_array_equal(a_tr.data()[0], b_tr.data()[0])
    assert not np.array_equal(a_tr.names, c_tr.names)
    assert set(a_tr.names).isdisjoint(a_te.names)


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_device_gives_tensors_with_the_same_split(device):
    train, test = load_digits(random_state=36, device=device)
    ref_train, _ = load_digits(random_state=36)
    for ds in (train, test):
        x, y = ds.data()
        assert isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
        assert x.device.type == "cpu" and y.device.type == "cpu"
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape[1:] == (1, 8, 8)
    np.testing.assert_array_equal(train.names, ref_train.names)
    np.testing.assert_array_equal(train.data()[0].numpy(), ref_train.data()[0])
    np.testing.assert_array_equal(train.data()[1].numpy(), ref_train.data()[1])


@pytest.mark.parametrize("bad", [0, 1, 0.0, 1.0, -0.1, 1.5, 7, True, "0.7", None])
def test_train_size_must_be_a_fraction(bad):
    with pytest.raises(ValueError, match="train_size must be a fraction strictly between 0 and 1"):
        load_digits(train_size=bad)
