"""One run configuration: each rule gives one message, whichever door the value came in by.

A setting can reach a run four ways: a line option of ``%%shapley``, a ``%config`` trait, the
panel's form and ``RunConfig`` in plain Python. All four are checked by
``RunConfig._parameter_constraints``, so a bad value reads the same everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from sklearn.tree import DecisionTreeClassifier

from dvl_jupyter.config import RunConfig, check_output_name
from dvl_jupyter.magics import ShapleyMagics
from dvl_jupyter.runner import ValuationRunner
from dvl_jupyter.valuation import DvlParameterError, MinUpdates
from dvl_jupyter.widget_panel import ShapleyPanel


def _xy(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return x, (x[:, 0] > 0).astype(int)


@pytest.fixture(scope="module")
def ip():
    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext dvl_jupyter", store_history=False)
    shell.user_ns.update(model=DecisionTreeClassifier(random_state=0), train=_xy(12, 0),
                         test=_xy(8, 1))
    return shell  # the shell is shared with other test modules: leave the extension loaded


@pytest.fixture
def magics(ip):
    (instance,) = [c for c in ip.configurables if isinstance(c, ShapleyMagics)]
    saved = {n: getattr(instance, n) for n in ("jobs", "seed", "backend", "scheduler")}
    yield instance
    for name, value in saved.items():
        setattr(instance, name, value)


def expected(name: str, value) -> str:
    with pytest.raises(DvlParameterError) as info:
        RunConfig.check(name, value)
    return str(info.value)


def from_option(ip, option: str) -> str:
    with capture_output():
        res = ip.run_cell(f"%shapley model train test --no-cache --no-progress {option}",
                          store_history=False)
    assert isinstance(res.error_in_exec, UsageError)
    return str(res.error_in_exec)


def from_config(ip, monkeypatch, assignment: str) -> str:
    # %config reports a refused value through logging.error (printed as "ERROR:root:...")
    import IPython.core.magics.config as config_magic

    said: list[str] = []
    monkeypatch.setattr(config_magic, "error", lambda msg, *a: said.append(str(msg) % a))
    ip.run_cell(f"%config ShapleyMagics.{assignment}", store_history=False)
    assert len(said) == 1, said
    return said[0]


def from_runner(**settings) -> str:
    config = RunConfig(model=DecisionTreeClassifier(), train=_xy(12, 0), test=_xy(8, 1),
                       cache=None, stopping=MinUpdates(1), **settings)
    with pytest.raises(DvlParameterError) as info:
        ValuationRunner(config).build()
    return str(info.value)


def from_panel(setup) -> str:
    p = ShapleyPanel({"model": DecisionTreeClassifier(), "train": _xy(12, 0),
                      "test": _xy(8, 1)})
    p.cache.value = False
    setup(p)
    p.run()
    assert p.runner is None and p.message.style.text_color is not None
    return p.message.value


CASES = [
    ("jobs", -5, "--jobs -5", "jobs = -5", lambda p: setattr(p.jobs, "value", -5)),
    ("jobs", 0, "--jobs 0", "jobs = 0", lambda p: setattr(p.jobs, "value", 0)),
    ("seed", -1, "--seed -1", "seed = -1", lambda p: setattr(p.seed, "value", "-1")),
    ("seed", "abc", "--seed abc", "seed = 'abc'", lambda p: setattr(p.seed, "value", "abc")),
    ("backend", "nope", "--backend nope", "backend = 'nope'", None),
]


@pytest.mark.parametrize(("name", "value", "option", "assignment", "panel"), CASES,
                         ids=[f"{c[0]}={c[1]}" for c in CASES])
def test_one_rule_one_message_everywhere(ip, magics, monkeypatch, name, value, option,
                                         assignment, panel):
    message = expected(name, value)
    assert message.startswith(f"{name} must be ") and "got" in message
    assert from_option(ip, option) == message
    assert from_config(ip, monkeypatch, assignment) == message
    assert getattr(magics, name) != value  # the refused value was not kept
    assert from_runner(**{name: value}) == message
    if panel is not None:
        assert from_panel(panel) == message


def output_name_message(name: str, setting: str = "-o") -> str:
    with pytest.raises(DvlParameterError) as info:
        check_output_name(name, setting)
    return str(info.value)


def test_the_output_name_rule_is_the_same_for_the_magic_the_cache_and_the_panel(ip):
    message = output_name_message("class")
    assert message.startswith("-o must be a Python variable name") and "not a keyword" in message
    assert from_option(ip, "-o class") == message
    with capture_output():
        res = ip.run_cell("%shapley_cache load 20260101-000000-abcdef -o class",
                          store_history=False)
    assert str(res.error_in_exec) == f"%shapley_cache: {message}"
    panel = from_panel(lambda p: setattr(p.out_name, "value", "class"))
    assert panel == output_name_message("class", "'store as'")


def test_run_config_validate_checks_every_setting():
    good = RunConfig(model=DecisionTreeClassifier(), train=_xy(12, 0), test=_xy(8, 1))
    assert good.validate() is good
    for field, bad in [("stopping", 100), ("truncation", "relative"), ("default", float("nan")),
                       ("range", (1, 0)), ("batched", "yes"), ("scoring", 3),
                       ("train", [1, 2]), ("cache", 3)]:
        settings = {"model": DecisionTreeClassifier(), "train": _xy(12, 0),
                    "test": _xy(8, 1), field: bad}
        config = RunConfig(**settings)
        with pytest.raises(DvlParameterError, match=f"^{field} (must be|is required)"):
            config.validate()


def test_a_refused_config_value_does_not_break_the_next_load_ext(ip, monkeypatch):
    """%config stores a value in the shell's config before the trait refuses it; reloading
    the extension then drops it with one line instead of failing to load."""
    import IPython.core.magics.config as config_magic

    monkeypatch.setattr(config_magic, "error", lambda *a: None)
    ip.run_cell("%config ShapleyMagics.jobs = 0", store_history=False)
    with capture_output() as cap:
        res = ip.run_cell("%reload_ext dvl_jupyter", store_history=False)
    assert res.error_in_exec is None
    assert "%config ShapleyMagics.jobs ignored: jobs must be a positive integer" in cap.stdout
    assert ip.find_cell_magic("shapley") is not None
