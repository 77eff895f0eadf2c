"""The sampled semivalues by short name: 'banzhaf' and 'beta(a,b)' in RunConfig, the magic
and the panel; their defaults, bad arguments, and method objects completed by the run."""

from __future__ import annotations

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from sklearn.linear_model import LogisticRegression

from dvl_jupyter.config import RunConfig
from dvl_jupyter.method_choice import METHODS, parse_method
from dvl_jupyter.runner import ValuationRunner
from dvl_jupyter.valuation import (
    BetaShapleyValuation,
    DvlParameterError,
    FixedTruncation,
    MinUpdates,
    MSRBanzhafValuation,
)


def _xy(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    return x, (x[:, 0] > 0).astype(int)


def config(**settings) -> RunConfig:
    base = {"model": LogisticRegression(), "train": _xy(8, 0), "test": _xy(10, 1),
            "cache": None}
    return RunConfig(**{**base, **settings})


def built(**settings):
    return ValuationRunner(config(**settings)).build()


@pytest.mark.parametrize(("spec", "params"), [
    ("banzhaf", {}), ("beta", {}), ("beta(4,1)", {"alpha": 4.0, "beta": 1.0}),
    ("BETA( 2 , 0.5 )", {"alpha": 2.0, "beta": 0.5}),
])
def test_short_names_parse(spec, params):
    entry, parsed = parse_method(spec)
    assert entry.cls in (MSRBanzhafValuation, BetaShapleyValuation) and parsed == params


@pytest.mark.parametrize(("spec", "message"), [
    ("beta(x)", r"^method 'beta\(x\)': beta takes two numbers, alpha and beta, e\.g\. "
                r"'beta\(4,1\)' or 'beta' for Beta\(16,1\); got 'x'\.$"),
    ("beta(4)", r"^method 'beta\(4\)': beta takes two numbers"),
    ("beta(1,2,3)", r"^method 'beta\(1,2,3\)': beta takes two numbers"),
    ("beta(0,1)", r"^alpha of method 'beta\(0,1\)' must be a number > 0; got float 0\.0\. "
                  r"Use e\.g\. 'beta\(4,1\)'\.$"),
    ("beta(1,-2)", r"^beta of method 'beta\(1,-2\)' must be a number > 0; got float -2\.0\."),
    ("beta(inf,1)", r"^alpha of method 'beta\(inf,1\)' must be a number > 0"),
    ("banzhaf(3)", r"'banzhaf' takes no arguments in its short name"),
    ("banzaf", r"^method 'banzaf' is not a valuation method\. Did you mean 'banzhaf'\?"),
])
def test_bad_short_names_say_what_is_wrong(spec, message):
    with pytest.raises(DvlParameterError, match=message):
        parse_method(spec)
    with pytest.raises(DvlParameterError, match=message):  # as the run's setting too
        config(method=spec).validate()


def test_the_short_names_build_the_methods_with_their_defaults():
    banzhaf = built(method="banzhaf", seed=3)
    assert isinstance(banzhaf, MSRBanzhafValuation) and banzhaf.seed == 3
    assert str(banzhaf.is_done) == "MinUpdates(n_updates=500)"
    b41 = built(method="beta(4,1)")
    assert isinstance(b41, BetaShapleyValuation) and (b41.alpha, b41.beta) == (4.0, 1.0)
    assert str(b41.is_done) == "MinUpdates(n_updates=20)"
    default = built(method="beta", stopping=MinUpdates(3))
    assert (default.alpha, default.beta) == (16.0, 1.0)  # Kwon & Zou's Beta(16, 1)
    assert str(default.is_done) == "MinUpdates(n_updates=3)"


@pytest.mark.parametrize("spec", ["banzhaf", "beta(4,1)"])
def test_truncation_is_refused_by_the_semivalues(spec):
    algorithm = METHODS[parse_method(spec)[0].name].algorithm
    with pytest.raises(ValueError, match=rf"^{algorithm} does not use truncation: remove it"):
        built(method=spec, truncation=FixedTruncation(0.5))


def test_a_method_object_is_completed_from_the_settings():
    method = built(method=MSRBanzhafValuation(None), stopping=MinUpdates(2), seed=4)
    assert method.utility is not None and method.seed == 4
    assert str(method.is_done) == "MinUpdates(n_updates=2)"
    beta = built(method=BetaShapleyValuation(None, alpha=2, beta=3))
    assert str(beta.is_done) == "MinUpdates(n_updates=20)" and beta.alpha == 2
    with pytest.raises(ValueError, match="stopping is set twice"):
        built(method=MSRBanzhafValuation(None, MinUpdates(3)), stopping=MinUpdates(2))


@pytest.mark.parametrize(("spec", "algorithm"), [("banzhaf", "MSR-Banzhaf"),
                                                 ("beta(4,1)", "Beta-Shapley")])
def test_a_run_by_short_name(spec, algorithm):
    result = ValuationRunner(config(method=spec, stopping=MinUpdates(3), seed=0)).run()
    assert result.algorithm == algorithm and len(result) == 8
    assert result.meta["ended"] == "done" and result.meta["settings"]["method"] == spec
    assert np.all(result.counts >= 3) and result.meta["samples"] > 0


@pytest.fixture(scope="module")
def ip():
    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext dvl_jupyter", store_history=False)
    shell.user_ns.update(model=LogisticRegression(), train=_xy(8, 0), test=_xy(10, 1))
    from dvl_jupyter.magics import ShapleyMagics

    (magics,) = [c for c in shell.configurables if isinstance(c, ShapleyMagics)]
    magics.debug = False  # the shell is shared: another module may have left it on
    return shell


def cell(ip, text: str):
    with capture_output() as cap:
        res = ip.run_cell(text, store_history=False)
    return res, cap


@pytest.mark.parametrize(("spec", "algorithm"), [("banzhaf", "MSR-Banzhaf"),
                                                 ("beta(4,1)", "Beta-Shapley")])
def test_the_magic_takes_the_short_names(ip, spec, algorithm):
    res, _ = cell(ip, "%%valuation -o semi --no-cache --no-progress --show none --seed 1\n"
                      "model = model\ntrain, test = train, test\n"
                      f"method = {spec!r}\nstopping = MinUpdates(3)\n")
    assert res.error_in_exec is None
    assert ip.user_ns["semi"].algorithm == algorithm
    assert ip.user_ns["semi"].meta["ended"] == "done"


def test_the_magic_says_what_is_wrong_with_beta_x(ip):
    res, _ = cell(ip, "%%shapley --no-cache --no-progress --show none\nmodel = model\n"
                      "train, test = train, test\nmethod = 'beta(x)'\n")
    assert isinstance(res.error_in_exec, UsageError)
    assert str(res.error_in_exec).startswith("method 'beta(x)': beta takes two numbers")
    assert len(str(res.error_in_exec).splitlines()) <= 2


def test_the_panel_lists_them_and_builds_them():
    from dvl_jupyter.widget_panel import ShapleyPanel

    p = ShapleyPanel({"clf": LogisticRegression(), "train": _xy(8, 0), "test": _xy(10, 1)})
    values = [v for _, v in p.method.options]
    assert {"banzhaf", "beta"} <= set(values)
    p.method.value = "banzhaf"
    assert p.stopping_row.layout.display is None and p.truncation_row.layout.display == "none"
    p.train_dropdown.value, p.test_dropdown.value = "train", "test"
    p.cache.value = False
    assert isinstance(ValuationRunner(p.config()).build(), MSRBanzhafValuation)
    p.method.value = "beta"
    assert isinstance(ValuationRunner(p.config()).build(), BetaShapleyValuation)
