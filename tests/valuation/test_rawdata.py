"""``Dataset.data()`` is a RawData: pyDVL's ``.x``, ``.y``, ``.cpu()`` on an ``(x, y)`` pair."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from dvl_jupyter.valuation import Dataset, DvlTypeError, RawData
from dvl_jupyter.valuation.dataset import as_dataset

X = np.arange(24, dtype=np.float32).reshape(6, 1, 2, 2)
Y = np.array([0, 1, 0, 1, 1, 0], dtype=np.int64)


def as_numpy(a):
    return a.numpy() if isinstance(a, torch.Tensor) else a


@pytest.fixture(params=["numpy", "torch"])
def dataset(request) -> Dataset:
    if request.param == "numpy":
        return Dataset(X, Y)
    return Dataset(torch.from_numpy(X), torch.from_numpy(Y))


def test_data_is_a_rawdata_and_a_pair(dataset):
    raw = dataset.data()
    assert isinstance(raw, RawData) and isinstance(raw, tuple)
    assert len(raw) == 2
    assert raw[0] is raw.x is dataset.x  # a view, not a copy
    assert raw[1] is raw.y is dataset.y
    x, y = raw
    assert x is raw.x and y is raw.y
    assert raw[-1] is raw.y and raw[:1] == (raw.x,)
    with pytest.raises(IndexError):
        raw[2]


def test_data_at_positions_keeps_type_and_selects_rows(dataset):
    raw = dataset.data([4, 1])
    assert isinstance(raw, RawData)
    assert type(raw.x) is type(dataset.x) and type(raw.y) is type(dataset.y)
    np.testing.assert_array_equal(as_numpy(raw.x), X[[4, 1]])
    np.testing.assert_array_equal(as_numpy(raw.y), [1, 1])


def test_cpu_passes_numpy_through_and_moves_tensors(dataset):
    raw = dataset.data()
    cpu = raw.cpu()
    assert isinstance(cpu, RawData) and len(cpu) == 2
    if isinstance(raw.x, np.ndarray):
        assert cpu.x is raw.x and cpu.y is raw.y  # unchanged, not copied
    else:
        assert cpu.x.device.type == "cpu" and cpu.y.device.type == "cpu"
        # a CPU tensor's .cpu() is the tensor itself: nothing is copied
        assert cpu.x.data_ptr() == raw.x.data_ptr()
    np.testing.assert_array_equal(as_numpy(cpu.x), X)
    np.testing.assert_array_equal(as_numpy(cpu.y), Y)


def test_to_gives_tensors_on_the_device(dataset):
    moved = dataset.data().to("cpu")
    assert isinstance(moved, RawData)
    for a, expected in ((moved.x, X), (moved.y, Y)):
        assert isinstance(a, torch.Tensor) and a.device == torch.device("cpu")
        np.testing.assert_array_equal(a.numpy(), expected)
    assert moved.x.dtype == torch.float32 and moved.y.dtype == torch.int64
    same = dataset.data().to(torch.device("cpu"))
    np.testing.assert_array_equal(same.x.numpy(), X)


def test_to_shares_numpy_memory_on_the_cpu():
    raw = Dataset(X.copy(), Y.copy()).data()
    moved = raw.to("cpu")
    assert np.shares_memory(moved.x.numpy(), raw.x)


def test_to_copies_a_read_only_array_without_a_warning():
    x = X.copy()
    x.flags.writeable = False
    moved = Dataset(x, Y).data().to("cpu")  # warnings are errors in this suite
    assert not np.shares_memory(moved.x.numpy(), x)
    np.testing.assert_array_equal(moved.x.numpy(), X)


def test_to_refuses_strings_with_the_fix():
    raw = Dataset(X, np.array(list("abcabc"))).data()
    with pytest.raises(DvlTypeError, match=r"RawData.to\('cpu'\): y .*LabelEncoder"):
        raw.to("cpu")


def test_mixed_numpy_x_and_tensor_y():
    raw = Dataset(X, torch.from_numpy(Y)).data()
    cpu = raw.cpu()
    assert cpu.x is raw.x and isinstance(cpu.y, torch.Tensor)
    moved = raw.to("cpu")
    assert isinstance(moved.x, torch.Tensor) and isinstance(moved.y, torch.Tensor)


def test_pydvl_style_calls_of_the_reference_notebook(dataset):
    """The notebook's own lines: ``.cpu().x[i]``, ``.y[i]``, ``f(*data())``."""
    image = dataset.data().cpu().x[3].reshape((2, 2))
    np.testing.assert_array_equal(as_numpy(image), X[3, 0])
    assert int(dataset.data().y[3]) == 1

    def fit(x, y):
        return len(x), len(y)

    assert fit(*dataset.data()) == (6, 6)
    assert fit(*dataset.data().cpu()) == (6, 6)


def test_tuple_callers_keep_working(dataset):
    raw = dataset.data([0, 2, 5])
    again = as_dataset(raw, "train")  # an (x, y) tuple is accepted as a dataset
    assert isinstance(again, Dataset) and len(again) == 3
    np.testing.assert_array_equal(as_numpy(Dataset(*raw).x), X[[0, 2, 5]])
    assert raw == tuple(raw)  # compares as the plain pair it replaces


def test_pickles_for_workers():
    raw = Dataset(X, Y).data()
    back = pickle.loads(pickle.dumps(raw))
    assert isinstance(back, RawData)
    np.testing.assert_array_equal(back.x, X)
    np.testing.assert_array_equal(back.y, Y)
