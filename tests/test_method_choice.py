"""Choosing the method of a run: short names, method objects, and the settings each one reads."""

from __future__ import annotations

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

from dvl_jupyter.config import RunConfig
from dvl_jupyter.method_choice import METHODS, parse_method
from dvl_jupyter.runner import ValuationRunner
from dvl_jupyter.valuation import (
    DvlParameterError,
    FixedTruncation,
    KNNShapleyValuation,
    MinUpdates,
    TMCShapleyValuation,
)


def _xy(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return x, (x[:, 0] > 0).astype(int)


def config(**settings) -> RunConfig:
    base = {"model": DecisionTreeClassifier(random_state=0), "train": _xy(14, 0),
            "test": _xy(10, 1), "cache": None}
    return RunConfig(**{**base, **settings})


def built(**settings):
    return ValuationRunner(config(**settings)).build()


def test_short_names_and_did_you_mean():
    assert {"tmc", "knn"} <= set(METHODS)
    entry, params = parse_method("TMC")
    assert entry.cls is TMCShapleyValuation and params == {}
    with pytest.raises(DvlParameterError, match=r"method 'kn' is not a valuation method\. "
                                                r"Did you mean 'knn'\?"):
        parse_method("kn")
    with pytest.raises(DvlParameterError, match="'tmc' takes no arguments in its short name"):
        parse_method("tmc(3)")


def test_the_default_is_tmc_with_the_reference_settings():
    method = built()
    assert isinstance(method, TMCShapleyValuation)
    assert repr(method.truncation) == "RelativeTruncation(rtol=0.05, burn_in_fraction=0.3)"
    assert str(method.is_done) == "MinUpdates(n_updates=100)"


def test_knn_uses_the_model_when_it_is_a_nearest_neighbour_classifier_and_k5_otherwise():
    own = KNeighborsClassifier(n_neighbors=3)
    assert built(method="knn", model=own).model is own
    default = built(method="knn")
    assert isinstance(default, KNNShapleyValuation) and default.model.n_neighbors == 5
    result = ValuationRunner(config(method="knn")).run()
    assert result.algorithm == "KNN-Shapley" and len(result) == 14
    assert result.meta["ended"] == "done" and result.meta["settings"]["method"] == "knn"


@pytest.mark.parametrize(("setting", "value"), [
    ("truncation", FixedTruncation(0.5)), ("stopping", MinUpdates(3)), ("scoring", "f1"),
    ("range", (0, 1)), ("default", 0.5),
])
def test_a_setting_the_method_does_not_read_is_an_error_that_says_so(setting, value):
    with pytest.raises(ValueError, match=rf"^KNN-Shapley does not use {setting}: remove it"):
        built(method="knn", **{setting: value})


def test_seed_and_batched_are_no_error_for_a_method_that_draws_and_trains_nothing():
    assert isinstance(built(method="knn", seed=3, batched=True), KNNShapleyValuation)


def test_a_method_object_is_completed_from_the_settings():
    method = built(method=TMCShapleyValuation(None, truncation=FixedTruncation(0.5)),
                   stopping=MinUpdates(2), seed=4)
    assert repr(method.truncation) == "FixedTruncation(fraction=0.5)"
    assert str(method.is_done) == "MinUpdates(n_updates=2)" and method.seed == 4
    assert method.utility is not None
    with pytest.raises(ValueError, match="truncation is set twice"):
        built(method=TMCShapleyValuation(None, truncation=FixedTruncation(0.5)),
              truncation=FixedTruncation(0.3))


def test_a_method_class_or_an_odd_value_is_refused():
    with pytest.raises(DvlParameterError, match="got the class TMCShapleyValuation itself"):
        config(method=TMCShapleyValuation).validate()
    with pytest.raises(DvlParameterError, match="method must be a short name"):
        config(method=3).validate()


@pytest.fixture(scope="module")
def ip():
    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext dvl_jupyter", store_history=False)
    shell.user_ns.update(model=DecisionTreeClassifier(random_state=0), train=_xy(14, 0),
                         test=_xy(10, 1))
    from dvl_jupyter.magics import ShapleyMagics

    (magics,) = [c for c in shell.configurables if isinstance(c, ShapleyMagics)]
    magics.debug = False  # the shell is shared: another module may have left it on
    return shell


def cell(ip, text: str):
    with capture_output() as cap:
        res = ip.run_cell(text, store_history=False)
    return res, cap


def test_the_magic_takes_a_method_and_the_valuation_alias(ip):
    res, _ = cell(ip, "%%valuation -o knn_values --no-cache --no-progress --show none\n"
                      "model = model\ntrain, test = train, test\nmethod = 'knn'\n")
    assert res.error_in_exec is None
    assert ip.user_ns["knn_values"].algorithm == "KNN-Shapley"
    res, _ = cell(ip, "%%shapley --no-cache --no-progress --show none\nmodel = model\n"
                      "train, test = train, test\nmethod = 'knn'\ntruncation = NoTruncation()\n")
    assert isinstance(res.error_in_exec, UsageError)
    assert str(res.error_in_exec).startswith("KNN-Shapley does not use truncation")


def test_data_oob_and_loo_by_short_name():
    from dvl_jupyter.valuation import DataOOBValuation, LOOValuation

    oob = built(method="data-oob")
    assert isinstance(oob, DataOOBValuation) and oob.n_estimators == 100
    assert built(method="data-oob(7)").n_estimators == 7
    with pytest.raises(DvlParameterError, match="data-oob takes the number of bags"):
        parse_method("data-oob(many)")
    with pytest.raises(ValueError, match="^Data-OOB does not use stopping"):
        built(method="data-oob", stopping=MinUpdates(3))
    result = ValuationRunner(config(method="data-oob(40)", seed=0)).run()
    assert result.algorithm == "Data-OOB" and result.meta["n_estimators"] == 40
    loo = ValuationRunner(config(method="loo")).run()
    assert loo.algorithm == "Leave-One-Out" and isinstance(loo, type(result))
    assert isinstance(built(method="loo"), LOOValuation)


def test_a_method_object_is_recorded_by_its_short_name_as_a_name_is():
    from dvl_jupyter.valuation import DataOOBValuation

    by_object = config(method=DataOOBValuation(n_estimators=3)).settings()["method"]
    assert by_object == config(method="data-oob").settings()["method"] == "data-oob"


def test_a_data_oob_object_gets_the_runs_model_test_data_and_cache(tmp_path):
    from dvl_jupyter.valuation import DataOOBValuation

    method = built(method=DataOOBValuation(n_estimators=3), cache=str(tmp_path / "c"))
    assert isinstance(method.model, DecisionTreeClassifier) and method.test_data is not None
    assert method.cache is not None


def test_coupled_training_is_a_run_setting_of_the_methods_that_train_on_subsets():
    assert built(coupled_training=False).utility.coupled_training is False
    assert built().utility.coupled_training is True  # the default, as the benchmark found
    with pytest.raises(ValueError, match="^KNN-Shapley does not use coupled_training"):
        built(method="knn", coupled_training=False)
