"""ValuationResult: Welford updates, merging, indexing, sorting and the DataFrame view."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvl_jupyter.valuation.result import Status, ValuationResult

P, C, F = Status.Pending, Status.Converged, Status.Failed

# Bounded, well-scaled floats: the property is about the algorithm, not float overflow.
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
no_db = settings(database=None, max_examples=60, deadline=None)


def feed(result: ValuationResult, position: int, samples) -> None:
    for x in samples:
        result.update(np.array([position]), np.array([x]))


# ---------------------------------------------------------------------- Status


@pytest.mark.parametrize(
    ("a", "b", "or_", "and_"),
    [
        (P, P, P, P),
        (P, C, C, P),
        (P, F, F, F),
        (C, C, C, C),
        (C, F, C, F),
        (F, F, F, F),
    ],
)
def test_status_or_and_tables_are_symmetric(a, b, or_, and_):
    assert a | b is or_ and b | a is or_
    assert a & b is and_ and b & a is and_


def test_status_invert_and_truthiness():
    assert ~P is C and ~C is F and ~F is C
    assert not P and C and F


def test_status_does_not_combine_with_other_types():
    with pytest.raises(TypeError):
        _ = C | True


# ---------------------------------------------------------------------- construction


def test_defaults_and_stderr():
    r = ValuationResult([1.0, 2.0, 3.0], variances=[4.0, 0.0, 9.0], counts=[4, 1, 1])
    np.testing.assert_array_equal(r.indices, [0, 1, 2])
    np.testing.assert_array_equal(r.names, ["0", "1", "2"])
    np.testing.assert_allclose(r.stderr, [1.0, 0.0, 3.0])
    assert r.values.dtype == np.float64 and r.counts.dtype == np.int64
    assert r.status is P and r.algorithm == "" and r.meta == {}
    # Values given without counts count as one sample each.
    np.testing.assert_array_equal(ValuationResult([5.0, 6.0]).counts, [1, 1])


def test_zeros_from_int_and_from_indices():
    r = ValuationResult.zeros(3, algorithm="tmc")
    np.testing.assert_array_equal(r.counts, [0, 0, 0])
    np.testing.assert_array_equal(r.indices, [0, 1, 2])
    assert r.algorithm == "tmc"
    r = ValuationResult.zeros(np.array([10, 20]), names=["a", "b"])
    np.testing.assert_array_equal(r.indices, [10, 20])
    np.testing.assert_array_equal(r.names, ["a", "b"])
    assert len(ValuationResult.zeros(0)) == 0


def test_constructor_copies_its_inputs():
    v = np.array([1.0, 2.0])
    meta = {"seed": 1}
    r = ValuationResult(v, meta=meta)
    v[0] = 99.0
    meta["seed"] = 2
    assert r.values[0] == 1.0 and r.meta == {"seed": 1}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"values": [[1.0, 2.0]]}, r"values must be a 1-D array.*shape \(1, 2\)"),
        ({"values": [1.0, 2.0], "variances": [1.0]}, r"variances must have shape \(2,\)"),
        ({"values": [1.0, 2.0], "variances": [1.0, -1.0]}, r"variances must be >= 0"),
        ({"values": [1.0, 2.0], "counts": [1, 2, 3]}, r"counts must have shape \(2,\)"),
        ({"values": [1.0, 2.0], "counts": [1, -2]}, r"counts must be >= 0"),
        ({"values": [1.0, 2.0], "counts": [1.5, 2]}, r"counts must be whole numbers"),
        ({"values": [1.0, 2.0], "indices": [3, 3]}, r"indices must be unique"),
        ({"values": [1.0, 2.0], "indices": [0.5, 1]}, r"indices must be integers"),
        ({"values": [1.0, 2.0], "names": ["a"]}, r"names must have shape \(2,\)"),
        ({"values": [1.0], "status": "done"}, r"status must be one of Status.Pending"),
    ],
)
def test_constructor_names_the_bad_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ValuationResult(**kwargs)


def test_constructor_type_errors():
    with pytest.raises(TypeError, match="meta must be a dict"):
        ValuationResult([1.0], meta=[1])
    with pytest.raises(TypeError, match="algorithm must be a str"):
        ValuationResult([1.0], algorithm=3)


def test_status_is_settable_from_enum_or_string():
    r = ValuationResult.zeros(2)
    r.status = C
    assert r.status is C
    r.status = "failed"
    assert r.status is F
    with pytest.raises(ValueError, match="got 'nope'"):
        r.status = "nope"


def test_arrays_are_read_only_views():
    r = ValuationResult.zeros(3)
    with pytest.raises(ValueError, match="read-only"):
        r.values[0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        r.counts[:] = 5
    np.testing.assert_array_equal(r.values, [0.0, 0.0, 0.0])


def test_meta_is_filled_in_place():
    r = ValuationResult.zeros(1)
    r.meta["evaluations"] = 7
    assert r.meta == {"evaluations": 7}


# ---------------------------------------------------------------------- Welford


@no_db
@given(st.lists(finite, min_size=1, max_size=40))
def test_welford_matches_numpy_mean_and_sample_variance(xs):
    r = ValuationResult.zeros(2)
    feed(r, 1, xs)
    expected_var = np.var(xs, ddof=1) if len(xs) >= 2 else 0.0
    scale = max(1.0, float(np.max(np.abs(xs))))
    np.testing.assert_allclose(r.values[1], np.mean(xs), rtol=1e-9, atol=1e-9 * scale)
    np.testing.assert_allclose(r.variances[1], expected_var, rtol=1e-7, atol=1e-9 * scale**2)
    assert r.counts[1] == len(xs)
    # The other point was never touched.
    assert (r.values[0], r.variances[0], r.counts[0]) == (0.0, 0.0, 0)


def test_vectorised_update_equals_per_point_statistics():
    rng = np.random.default_rng(0)
    n, steps = 6, 50
    r = ValuationResult.zeros(n)
    seen: list[list[float]] = [[] for _ in range(n)]
    for _ in range(steps):
        pos = rng.choice(n, size=rng.integers(1, n + 1), replace=False)
        x = rng.normal(3.0, 2.0, size=pos.size)
        r.update(pos, x)
        for p, v in zip(pos, x, strict=True):
            seen[p].append(v)
    np.testing.assert_array_equal(r.counts, [len(s) for s in seen])
    np.testing.assert_allclose(r.values, [np.mean(s) for s in seen], rtol=1e-12)
    np.testing.assert_allclose(r.variances, [np.var(s, ddof=1) for s in seen], rtol=1e-10)


def test_variance_is_zero_until_two_samples():
    r = ValuationResult.zeros(1)
    r.update([0], [5.0])
    assert r.values[0] == 5.0 and r.variances[0] == 0.0 and r.stderr[0] == 0.0
    r.update([0], [7.0])
    assert r.values[0] == 6.0 and r.variances[0] == 2.0
    np.testing.assert_allclose(r.stderr[0], 1.0)


def test_welford_is_stable_with_a_large_offset():
    # The naive E[x^2] - E[x]^2 loses every digit here; Welford keeps them.
    rng = np.random.default_rng(1)
    xs = 1e9 + rng.normal(0.0, 1.0, size=1000)
    r = ValuationResult.zeros(1)
    feed(r, 0, xs)
    np.testing.assert_allclose(r.variances[0], np.var(xs, ddof=1), rtol=1e-6)


def test_update_with_initial_values_and_zero_counts_ignores_the_prior_value():
    r = ValuationResult([100.0], counts=[0])
    r.update([0], [1.0])
    assert r.values[0] == 1.0 and r.counts[0] == 1


@pytest.mark.parametrize(
    ("positions", "samples", "match"),
    [
        ([0, 0], [1.0, 2.0], "unique within one update"),
        ([3], [1.0], r"positions must lie in 0..2; got 3..3"),
        ([-1], [1.0], r"positions must lie in 0..2"),
        ([0, 1], [1.0], "same length"),
        ([0.5], [1.0], "positions must be integers"),
    ],
)
def test_update_rejects_bad_input(positions, samples, match):
    r = ValuationResult.zeros(3)
    with pytest.raises(ValueError, match=match):
        r.update(np.asarray(positions), np.asarray(samples))
    np.testing.assert_array_equal(r.counts, [0, 0, 0])  # nothing half-applied


def test_empty_update_is_a_no_op():
    r = ValuationResult.zeros(2)
    r.update(np.array([], dtype=int), np.array([]))
    np.testing.assert_array_equal(r.counts, [0, 0])


# ---------------------------------------------------------------------- merging


@no_db
@given(
    st.lists(finite, min_size=0, max_size=20),
    st.lists(finite, min_size=0, max_size=20),
)
def test_merge_equals_pooled_samples(xs, ys):
    a, b, pooled = ValuationResult.zeros(1), ValuationResult.zeros(1), ValuationResult.zeros(1)
    feed(a, 0, xs)
    feed(b, 0, ys)
    feed(pooled, 0, xs + ys)
    m = a + b
    scale = max([1.0, *map(abs, xs + ys)])
    assert m.counts[0] == len(xs) + len(ys)
    np.testing.assert_allclose(m.values[0], pooled.values[0], rtol=1e-9, atol=1e-9 * scale)
    np.testing.assert_allclose(m.variances[0], pooled.variances[0], rtol=1e-7, atol=1e-8 * scale**2)


def test_merge_takes_the_union_of_indices():
    a = ValuationResult([1.0, 2.0], counts=[1, 1], indices=[5, 7], names=["a", "b"])
    b = ValuationResult([3.0, 10.0], counts=[3, 1], indices=[7, 9], names=["b", "c"])
    a.status, b.status = P, C
    m = a + b
    np.testing.assert_array_equal(m.indices, [5, 7, 9])
    np.testing.assert_array_equal(m.names, ["a", "b", "c"])
    np.testing.assert_array_equal(m.counts, [1, 4, 1])
    # Index 7: one sample 2.0 and three samples averaging 3.0 -> (2 + 9) / 4.
    np.testing.assert_allclose(m.values, [1.0, 2.75, 10.0])
    assert m.status is C
    # The operands are unchanged.
    np.testing.assert_array_equal(a.values, [1.0, 2.0])


def test_merge_of_two_empty_results_is_finite():
    m = ValuationResult([1.0], counts=[0]) + ValuationResult([3.0], counts=[0])
    assert m.counts[0] == 0 and m.values[0] == 2.0 and m.variances[0] == 0.0


def test_merge_algorithm_and_meta():
    a = ValuationResult([1.0], algorithm="tmc", meta={"seed": 1, "x": 1})
    b = ValuationResult([1.0], algorithm="tmc", meta={"seed": 2, "y": 2})
    m = a + b
    assert m.algorithm == "tmc"
    assert m.meta == {"seed": 1, "x": 1, "y": 2}
    assert (a + ValuationResult([1.0], algorithm="loo")).algorithm == "tmc+loo"


def test_merge_refuses_different_names_for_one_index():
    a = ValuationResult([1.0], names=["cat"])
    b = ValuationResult([1.0], names=["dog"])
    with pytest.raises(ValueError, match="index 0 is 'cat' in one and 'dog' in the other"):
        _ = a + b


def test_merge_with_non_result_is_a_type_error():
    with pytest.raises(TypeError):
        _ = ValuationResult([1.0]) + 1


def test_sum_of_results():
    parts = [ValuationResult([float(i)], counts=[1]) for i in range(4)]
    total = sum(parts)
    assert total.counts[0] == 4
    np.testing.assert_allclose(total.values[0], 1.5)
    np.testing.assert_allclose(total.variances[0], np.var([0, 1, 2, 3], ddof=1))


# ---------------------------------------------------------------------- indexing


@pytest.fixture
def five() -> ValuationResult:
    return ValuationResult(
        values=[3.0, 1.0, 4.0, 1.0, 5.0],
        variances=[0.1, 0.2, 0.3, 0.4, 0.5],
        counts=[1, 2, 3, 4, 5],
        indices=[10, 11, 12, 13, 14],
        names=["a", "b", "c", "d", "e"],
        algorithm="tmc",
        status=C,
        meta={"seed": 3},
    )


def test_len(five):
    assert len(five) == 5


@pytest.mark.parametrize(
    ("key", "expected_indices"),
    [
        (0, [10]),
        (-1, [14]),
        (np.int64(2), [12]),
        (slice(1, 3), [11, 12]),
        (slice(None, None, -2), [14, 12, 10]),
        ([4, 0], [14, 0 + 10]),
        (np.array([-1, 1]), [14, 11]),
        (np.array([True, False, True, False, False]), [10, 12]),
        ([], []),
    ],
)
def test_getitem_keeps_all_arrays_aligned(five, key, expected_indices):
    sub = five[key]
    assert isinstance(sub, ValuationResult)
    np.testing.assert_array_equal(sub.indices, expected_indices)
    pos = [i - 10 for i in expected_indices]
    np.testing.assert_array_equal(sub.values, five.values[pos])
    np.testing.assert_array_equal(sub.variances, five.variances[pos])
    np.testing.assert_array_equal(sub.counts, five.counts[pos])
    np.testing.assert_array_equal(sub.names, five.names[pos])
    assert sub.algorithm == "tmc" and sub.status is C and sub.meta == {"seed": 3}


def test_getitem_returns_an_independent_copy(five):
    sub = five[1:3]
    sub.update([0], [100.0])
    sub.meta["seed"] = 99
    assert five.values[1] == 1.0 and five.counts[1] == 2 and five.meta["seed"] == 3


@pytest.mark.parametrize(
    ("key", "error"),
    [
        (5, IndexError),
        (-6, IndexError),
        ([0, 7], IndexError),
        (np.array([True, False]), IndexError),
        (1.5, TypeError),
        (True, TypeError),
        ("a", TypeError),
    ],
)
def test_getitem_rejects_bad_keys(five, key, error):
    with pytest.raises(error):
        five[key]


def test_copy_is_deep(five):
    c = five.copy()
    c.update([0], [0.0])
    c.meta["seed"] = 0
    assert five.counts[0] == 1 and five.meta["seed"] == 3
    assert c.allclose(c.copy()) and not c.allclose(five)


# ---------------------------------------------------------------------- sorting


def test_sort_by_value_is_stable_both_ways(five):
    asc = five.sort()
    np.testing.assert_array_equal(asc.values, [1.0, 1.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(asc.names, ["b", "d", "a", "c", "e"])  # ties: b before d
    desc = five.sort(reverse=True)
    np.testing.assert_array_equal(desc.values, [5.0, 4.0, 3.0, 1.0, 1.0])
    np.testing.assert_array_equal(desc.names, ["e", "c", "a", "b", "d"])  # still b before d
    np.testing.assert_array_equal(five.names, ["a", "b", "c", "d", "e"])  # not in place


@pytest.mark.parametrize(
    ("key", "reverse", "expected_names"),
    [
        ("variance", True, ["e", "d", "c", "b", "a"]),
        ("count", False, ["a", "b", "c", "d", "e"]),
        ("index", True, ["e", "d", "c", "b", "a"]),
        ("name", True, ["e", "d", "c", "b", "a"]),
    ],
)
def test_sort_keys(five, key, reverse, expected_names):
    s = five.sort(key=key, reverse=reverse)
    np.testing.assert_array_equal(s.names, expected_names)


def test_sort_by_stderr_differs_from_sort_by_variance():
    # stderr = sqrt(variance / count): [2, 1, 0.5]; variance order would be the opposite.
    r = ValuationResult([0.0, 0.0, 0.0], variances=[4.0, 9.0, 16.0], counts=[1, 9, 64])
    np.testing.assert_array_equal(r.sort(key="stderr").indices, [2, 1, 0])
    np.testing.assert_array_equal(r.sort(key="variance").indices, [0, 1, 2])


def test_sort_in_place_returns_self(five):
    out = five.sort(reverse=True, inplace=True)
    assert out is five
    np.testing.assert_array_equal(five.indices, [14, 12, 10, 11, 13])


def test_sort_rejects_unknown_key(five):
    with pytest.raises(ValueError, match="key must be one of 'value'.*got 'values'"):
        five.sort(key="values")


def test_sort_then_slice_gives_lowest_values():
    rng = np.random.default_rng(2)
    r = ValuationResult(rng.normal(size=20), counts=np.full(20, 3))
    low = r.sort()[:3]
    np.testing.assert_array_equal(low.values, np.sort(r.values)[:3])


# ---------------------------------------------------------------------- DataFrame


def test_to_dataframe_rows_stay_aligned_after_sorting(five):
    by_index = {
        int(i): (str(n), v, s, var, c)
        for i, n, v, s, var, c in zip(
            five.indices,
            five.names,
            five.values,
            five.stderr,
            five.variances,
            five.counts,
            strict=True,
        )
    }
    df = five.sort(reverse=True, key="value").to_dataframe()
    assert list(df.columns) == ["name", "value", "stderr", "variance", "count"]
    assert df.index.name == "index"
    assert list(df.index) == [14, 12, 10, 11, 13]
    for idx, row in df.iterrows():
        name, v, s, var, c = by_index[int(idx)]
        assert row["name"] == name
        assert row["value"] == v and row["stderr"] == s
        assert row["variance"] == var and row["count"] == c


def test_to_dataframe_column_prefix(five):
    df = five.to_dataframe(column="tmc")
    assert list(df.columns) == ["name", "tmc", "tmc_stderr", "tmc_variance", "tmc_count"]
    np.testing.assert_allclose(df["tmc_stderr"].to_numpy(), np.sqrt([0.1, 0.1, 0.1, 0.1, 0.1]))


def test_repr_is_short(five):
    text = repr(five)
    assert text.startswith("ValuationResult(algorithm='tmc', status=Converged, n=5,")
    assert "..." in text and "total_updates=15" in text
    big = ValuationResult(np.zeros(10_000))
    assert len(repr(big)) < 200


def test_container_module_does_no_io():
    source = Path(__file__).parents[2] / "dvl_jupyter" / "valuation" / "result.py"
    tree = ast.parse(source.read_text())
    top_level = {
        alias.name
        for node in tree.body
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    } | {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert not top_level & {"json", "result_io", "dvl_jupyter.valuation.result_io", "pickle"}
