"""``dvl_jupyter.support.filecache``: the reference notebook's file cache, without pickle."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dvl_jupyter.support import cache_path, filecache
from dvl_jupyter.valuation import DvlTypeError, DvlValueError, ValuationResult


def make_result(shift: float = 0.0) -> ValuationResult:
    r = ValuationResult.zeros(np.array([4, 0, 9]), names=["a", "b", "c"], algorithm="tmc")
    r.update(np.array([0, 1, 2]), np.array([0.5, -1.0, 2.0]) + shift)
    r.update(np.array([0, 2]), np.array([1.5, 2.5]) + shift)
    r.meta.update(seed=36, ended="done")
    return r


class Counted:
    """A function returning ``make_result()``, counting its calls."""

    def __init__(self, value=None):
        self.calls = 0
        self.value = value

    def __call__(self, data, shift=0.0):
        self.calls += 1
        return make_result(shift) if self.value is None else self.value


def assert_same(a: ValuationResult, b: ValuationResult) -> None:
    for field in ("values", "variances", "counts", "indices", "names"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert a.algorithm == b.algorithm and a.meta == b.meta


def test_cache_path_is_the_npz_beside_the_name(tmp_path):
    assert cache_path("shapley_skorch_result.pkl") == Path("shapley_skorch_result.npz")
    assert cache_path(tmp_path / "r.npz") == tmp_path / "r.npz"
    assert cache_path(tmp_path / "r") == tmp_path / "r.npz"


def test_first_call_computes_and_saves_then_loads(tmp_path, capsys):
    fun = Counted()
    cached = filecache(tmp_path / "shapley_skorch_result.pkl")(fun)
    first = cached("train")
    assert fun.calls == 1
    file = tmp_path / "shapley_skorch_result.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == [file.name]  # no .pkl, no temp files
    assert zipfile.is_zipfile(file)
    with np.load(file, allow_pickle=False) as data:  # readable without pickle
        np.testing.assert_allclose(data["values"], [1.0, -1.0, 2.25])
    assert capsys.readouterr().out == ""

    second = cached("train")
    assert fun.calls == 1  # loaded, not recomputed
    assert capsys.readouterr().out == "Found cached file: shapley_skorch_result.npz.\n"
    assert_same(second, first)
    np.testing.assert_allclose(second.values, [1.0, -1.0, 2.25])


def test_another_kernel_reads_what_one_wrote(tmp_path):
    filecache(tmp_path / "r.npz")(Counted())("train")
    fun = Counted()
    again = filecache(tmp_path / "r.npz")(fun)("train", _silent=True)  # a fresh decorator
    assert fun.calls == 0
    assert_same(again, make_result())


def test_arguments_are_not_part_of_the_key(tmp_path):
    """As in pyDVL: the file answers whatever the arguments (documented; delete to refresh)."""
    fun = Counted()
    cached = filecache(tmp_path / "r.npz")(fun)
    cached("train", shift=0.0)
    other = cached("other data", shift=10.0, _silent=True)
    assert fun.calls == 1
    np.testing.assert_allclose(other.values, [1.0, -1.0, 2.25])


def test_force_rebuild_recomputes_and_overwrites(tmp_path, capsys):
    fun = Counted()
    cached = filecache(tmp_path / "r.npz")(fun)
    cached("train")
    rebuilt = cached("train", shift=10.0, _force_rebuild=True)
    assert fun.calls == 2
    np.testing.assert_allclose(rebuilt.values, [11.0, 9.0, 12.25])
    assert capsys.readouterr().out == ""
    np.testing.assert_allclose(cached("train", _silent=True).values, [11.0, 9.0, 12.25])


def test_creates_missing_directories(tmp_path):
    filecache(tmp_path / "a" / "b" / "r.pkl")(Counted())("train")
    assert (tmp_path / "a" / "b" / "r.npz").is_file()


@pytest.mark.parametrize("value", [None, 3.0, {"values": [1, 2]}, (make_result(), 1)])
def test_other_return_values_are_an_error_and_nothing_is_written(tmp_path, value):
    if value is None:  # e.g. a function that only prints
        fun = lambda data: None  # noqa: E731
    else:
        fun = Counted(value)
    cached = filecache(tmp_path / "r.pkl")(fun)
    with pytest.raises(DvlTypeError, match=r"stores only a ValuationResult.*nothing was written"):
        cached("train")
    assert list(tmp_path.iterdir()) == []


def test_a_pydvl_pickle_under_the_name_is_never_read_nor_overwritten(tmp_path):
    pkl = tmp_path / "shapley_skorch_result.pkl"
    pkl.write_bytes(pickle.dumps({"not": "a result"}))
    before = pkl.read_bytes()
    fun = Counted()
    result = filecache(pkl)(fun)("train")
    assert fun.calls == 1 and isinstance(result, ValuationResult)
    assert pkl.read_bytes() == before


def test_an_unreadable_file_is_an_error_and_kept(tmp_path):
    file = tmp_path / "r.npz"
    file.write_bytes(b"garbage")
    fun = Counted()
    cached = filecache(file)(fun)
    with pytest.raises(DvlValueError, match=r"not a readable saved result.*_force_rebuild=True"):
        cached("train")
    assert fun.calls == 0 and file.read_bytes() == b"garbage"
    cached("train", _force_rebuild=True)
    assert fun.calls == 1 and zipfile.is_zipfile(file)


def test_a_pickled_npz_is_refused(tmp_path):
    file = tmp_path / "r.npz"
    np.savez(file, values=np.array([object()], dtype=object), indices=np.arange(1),
             variances=np.zeros(1), counts=np.zeros(1), names=np.array(["a"]),
             header=np.zeros(1, np.uint8))
    with pytest.raises(DvlValueError, match="pickled"):
        filecache(file)(Counted())("train")


@pytest.mark.parametrize("bad", [None, 3, b"r.npz", True])
def test_bad_path(bad):
    with pytest.raises(DvlTypeError, match="filecache path must be a file name"):
        filecache(bad)


@pytest.mark.parametrize("bad", ["", ".", "dir/.."])
def test_path_must_name_a_file(bad):
    with pytest.raises(DvlValueError, match="filecache path must name a file"):
        filecache(bad)


def test_wraps_only_callables(tmp_path):
    with pytest.raises(DvlTypeError, match="wraps a function"):
        filecache(tmp_path / "r.npz")(make_result())


def test_keeps_a_real_valuation_result(tmp_path):
    """The notebook's own line, on a game whose values are known (u(S) = |S|: each point 1)."""
    from dvl_jupyter.valuation import Dataset, MinUpdates, TMCShapleyValuation

    train = Dataset(np.zeros((5, 1)), np.zeros(5), names=list("abcde"), indices=[7, 3, 9, 1, 4])
    valuation = TMCShapleyValuation(lambda s: float(len(s)), is_done=MinUpdates(3), seed=1)
    cached_fit = filecache(tmp_path / "shapley_skorch_result.pkl")(
        lambda d: valuation.fit(d).result)
    result = cached_fit(train)
    np.testing.assert_allclose(result.values, 1.0)
    loaded = filecache(tmp_path / "shapley_skorch_result.pkl")(
        lambda d: pytest.fail("recomputed"))(train, _silent=True)
    assert_same(loaded, result)
    assert list(loaded.names) == list(result.names) and set(loaded.indices) == {7, 3, 9, 1, 4}
