"""Several methods side by side: rank agreement and detection scores, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from dvl_jupyter.valuation import DvlTypeError, DvlValueError, ValuationResult, compare


def result(values, algorithm, order=None, **meta) -> ValuationResult:
    values = np.asarray(values, dtype=float)
    idx = np.arange(len(values)) if order is None else np.asarray(order)
    r = ValuationResult(values[idx], indices=idx, algorithm=algorithm,
                        variances=np.full(len(values), 0.1), counts=np.full(len(values), 4))
    r.meta.update(meta)
    return r


def test_agreement_by_hand_and_aligned_by_data_index():
    a = result([1, 2, 3, 4], "A", reliability=0.9, evaluations=10, elapsed_s=3.0)
    b = result([4, 3, 2, 1], "B", order=[3, 2, 1, 0])  # stored in another order
    c = result([1, 3, 2, 4], "C")
    cmp = compare({"a": a, "b": b, "c": c})
    assert cmp.names == ["a", "b", "c"]
    assert cmp.agreement[0, 1] == pytest.approx(-1.0)
    # ranks (1, 3, 2, 4) against (1, 2, 3, 4): 1 - 6 * 2 / (4 * 15) = 0.8
    assert cmp.agreement[0, 2] == pytest.approx(0.8)
    assert np.allclose(np.diag(cmp.agreement), 1) and np.allclose(cmp.agreement, cmp.agreement.T)
    assert "reliability" in cmp._repr_html_() and "+0.80" in repr(cmp)
    agreement, table = cmp.to_dataframe()
    assert agreement.loc["a", "c"] == pytest.approx(0.8) and table.loc["a", "reliability"] == 0.9


def test_detection_scores_side_by_side():
    mask = np.array([True, False, False, False])
    good = result([-1, 2, 3, 4], "good")  # the flagged point is the lowest
    bad = result([5, 2, 3, 4], "bad")  # the flagged point is the highest
    cmp = compare([good, bad], mask=mask)
    assert cmp.detection["good"].auroc == 1.0 and cmp.detection["bad"].auroc == 0.0
    assert "AUROC" in cmp._repr_html_() and "1.000" in repr(cmp)


def test_bad_input_names_the_argument():
    a = result([1, 2, 3], "A")
    with pytest.raises(DvlValueError, match="^results must hold at least two"):
        compare([a])
    with pytest.raises(DvlValueError, match=r"^results\['b'\] values other points"):
        compare({"a": a, "b": result([1, 2], "B")})
    with pytest.raises(DvlTypeError, match=r"^results\['b'\] must be a ValuationResult"):
        compare({"a": a, "b": [1, 2, 3]})
