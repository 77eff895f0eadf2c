"""Saving and loading results: .npz without pickle, and plain-JSON dicts for manifests."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dvl_jupyter.valuation import result_io
from dvl_jupyter.valuation.result import Status, ValuationResult


@pytest.fixture
def result() -> ValuationResult:
    r = ValuationResult.zeros(np.array([3, 1, 7]), names=["chat", "Hund", "猫"], algorithm="tmc")
    r.update(np.array([0, 1, 2]), np.array([0.5, -1.0, 2.0]))
    r.update(np.array([0, 2]), np.array([1.5, 2.5]))
    r.status = Status.Converged
    r.meta.update(seed=np.int64(36), evaluations=12, elapsed_s=np.float32(1.5), tags=["a"])
    return r


def assert_same(a: ValuationResult, b: ValuationResult) -> None:
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.variances, b.variances)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.names, b.names)
    assert a.algorithm == b.algorithm and a.status is b.status


def test_save_load_round_trip(tmp_path, result):
    path = result.save(tmp_path / "run.npz")
    loaded = ValuationResult.load(path)
    assert_same(loaded, result)
    np.testing.assert_allclose(loaded.values, [1.0, -1.0, 2.25])
    np.testing.assert_allclose(loaded.variances, [0.5, 0.0, 0.125])
    assert loaded.meta == {"seed": 36, "evaluations": 12, "elapsed_s": 1.5, "tags": ["a"]}
    assert loaded.counts.dtype == np.int64 and loaded.names.dtype.kind == "U"


def test_saved_file_loads_without_pickle(tmp_path, result):
    path = result.save(tmp_path / "run.npz")
    with np.load(path, allow_pickle=False) as data:
        assert set(data.files) == {"values", "variances", "counts", "indices", "names", "header"}
        assert all(data[k].dtype != object for k in data.files)
        header = json.loads(data["header"].tobytes().decode("utf-8"))
    assert header["version"] == result_io.FORMAT_VERSION and header["status"] == "converged"


def test_path_is_used_as_given_and_no_temporary_is_left(tmp_path, result):
    path = result.save(tmp_path / "values.bin")
    assert path == tmp_path / "values.bin"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["values.bin"]
    result[:1].save(path)  # overwrite
    assert len(ValuationResult.load(path)) == 1


def test_round_trip_of_an_empty_result_and_non_finite_values(tmp_path):
    empty = ValuationResult.zeros(0)
    assert len(ValuationResult.load(empty.save(tmp_path / "e.npz"))) == 0
    odd = ValuationResult([np.nan, np.inf, -1.0])
    back = ValuationResult.load(odd.save(tmp_path / "o.npz"))
    np.testing.assert_array_equal(back.values, [np.nan, np.inf, -1.0])


def test_a_pickled_object_array_is_refused(tmp_path, result):
    path = tmp_path / "evil.npz"
    np.savez(
        path,
        allow_pickle=True,
        values=np.asarray(result.values),
        variances=np.asarray(result.variances),
        counts=np.asarray(result.counts),
        indices=np.asarray(result.indices),
        names=np.array(["a", None, object()], dtype=object),
        header=np.frombuffer(b'{"version": 1}', dtype=np.uint8),
    )
    with pytest.raises(ValueError, match="pickled .object. arrays, which are refused"):
        ValuationResult.load(path)


def test_not_a_result_file(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_text("hello")
    with pytest.raises(ValueError, match="is not an .npz archive"):
        ValuationResult.load(junk)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    with pytest.raises(ValueError, match="missing values, variances, counts, indices, names"):
        ValuationResult.load(other)
    with pytest.raises(FileNotFoundError, match="no saved ValuationResult"):
        ValuationResult.load(tmp_path / "missing.npz")


def test_newer_format_version_is_refused(tmp_path, result):
    path = tmp_path / "future.npz"
    result.save(path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(arrays["header"].tobytes())
    header["version"] = result_io.FORMAT_VERSION + 1
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="format version 2.*Upgrade dvl_jupyter"):
        ValuationResult.load(path)


def test_meta_that_is_not_json_is_refused_before_writing(tmp_path, result):
    result.meta["model"] = object()
    with pytest.raises(TypeError, match="meta must hold only JSON-able values.*got a object"):
        result.save(tmp_path / "r.npz")
    assert list(tmp_path.iterdir()) == []


def test_json_dict_round_trip_is_strict_json(result):
    result.update(np.array([1]), np.array([np.nan]))
    d = result.to_json_dict()
    text = json.dumps(d, allow_nan=False)  # raises if any NaN/inf slipped through
    back = ValuationResult.from_json_dict(json.loads(text))
    assert d["values"][1] is None and d["counts"] == [2, 2, 2]
    assert d["names"] == ["chat", "Hund", "猫"] and d["status"] == "converged"
    assert back.meta == {"seed": 36, "evaluations": 12, "elapsed_s": 1.5, "tags": ["a"]}
    np.testing.assert_array_equal(back.values, result.values)  # NaN == NaN here
    np.testing.assert_array_equal(back.indices, [3, 1, 7])
    assert back.status is Status.Converged and back.algorithm == "tmc"


def test_from_json_dict_rejects_incomplete_dicts():
    with pytest.raises(ValueError, match="d is missing counts"):
        ValuationResult.from_json_dict(
            {"version": 1, "values": [], "variances": [], "indices": [], "names": []}
        )
    with pytest.raises(TypeError, match="d must be a dict"):
        ValuationResult.from_json_dict([])
