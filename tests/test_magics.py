"""The magics in a real IPython shell: what a user types, and exactly what the shell shows."""

from __future__ import annotations

import jsonschema
import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import dvl_jupyter
from dvl_jupyter.display import MIME_TYPE, load_schema
from dvl_jupyter.magics import ShapleyMagics
from dvl_jupyter.valuation import DvlTypeError, ValuationResult

SETUP = """
import numpy as np
from sklearn.tree import DecisionTreeClassifier
_rng = np.random.default_rng(0)
X = _rng.normal(size=(40, 3))
y = (X[:, 0] + 0.3 * _rng.normal(size=40) > 0).astype(int)
train, test = (X[:30], y[:30]), (X[30:], y[30:])
model = DecisionTreeClassifier(random_state=0)
"""


@pytest.fixture(scope="module")
def ip():
    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext dvl_jupyter", store_history=False)
    shell.run_cell(SETUP, store_history=False)
    yield shell
    shell.run_cell("%unload_ext dvl_jupyter", store_history=False)


@pytest.fixture
def magics(ip):
    """The registered instance, with its defaults put back after each test."""
    (instance,) = [c for c in ip.configurables if isinstance(c, ShapleyMagics)]
    saved = {name: getattr(instance, name) for name in instance.trait_names() if
             instance.trait_metadata(name, "config")}
    section = dict(ip.config.get("ShapleyMagics", {}))
    yield instance
    for name, value in saved.items():
        setattr(instance, name, value)
    # %config also writes the shell's config, which a later %load_ext reads: put it back too
    ip.config["ShapleyMagics"] = type(ip.config)(section)


@pytest.fixture
def cache(tmp_path, magics):
    magics.cache_dir = str(tmp_path / "cache")
    magics.progress = False
    return tmp_path / "cache"


def run(ip, cell):
    """Run a cell as a user would; returns (ExecutionResult, captured output)."""
    with capture_output() as cap:
        res = ip.run_cell(cell, store_history=False)
    return res, cap


def shown(cap) -> list[str]:
    """The non-empty lines the shell printed on stderr (where errors go)."""
    return [line for line in cap.stderr.splitlines() if line.strip()]


def bundles(cap) -> list[dict]:
    return [o.data for o in cap.outputs]


CELL = """%%shapley -o result --seed 1
model = model
train, test = train, test
stopping = MinUpdates(2)
"""


# -- loading ------------------------------------------------------------------------------
def test_load_ext_registers_magics_and_configurable(ip):
    _, cap = run(ip, "%config")
    assert "ShapleyMagics" in cap.stdout
    assert ip.find_cell_magic("shapley") is not None
    for name in ("shapley", "shapley_cache", "shapley_panel"):
        assert ip.find_line_magic(name) is not None
    assert sum(isinstance(c, ShapleyMagics) for c in ip.configurables) == 1
    ip.run_cell("%load_ext dvl_jupyter", store_history=False)  # again: nothing doubles
    assert sum(isinstance(c, ShapleyMagics) for c in ip.configurables) == 1


def test_unload_ext_removes_everything_and_load_works_again(ip):
    run(ip, "%unload_ext dvl_jupyter")
    try:
        assert ip.find_cell_magic("shapley") is None
        assert ip.find_line_magic("shapley_cache") is None
        assert not any(isinstance(c, ShapleyMagics) for c in ip.configurables)
        assert "ShapleyMagics" not in dict(ip.magics_manager.registry)
        _, cap = run(ip, "%config")  # lists the configurable classes
        assert "Available objects for config" in cap.stdout
        assert "ShapleyMagics" not in cap.stdout
    finally:
        run(ip, "%load_ext dvl_jupyter")
    assert ip.find_cell_magic("shapley") is not None


# -- running ------------------------------------------------------------------------------
def test_cell_magic_stores_and_displays_the_result(ip, cache):
    ip.user_ns.pop("result", None)
    res, cap = run(ip, CELL)
    assert res.error_in_exec is None, cap.stderr
    result = ip.user_ns["result"]
    assert isinstance(result, ValuationResult) and len(result) == 30
    assert result.meta["ended"] == "done" and result.meta["settings"]["seed"] == 1
    (bundle,) = bundles(cap)
    # the picture is stored once, inside the HTML (see dvl_jupyter.display)
    assert {MIME_TYPE, "text/html", "text/plain"} <= set(bundle)
    assert 'class="dvl-png"' in bundle["text/html"]
    jsonschema.validate(bundle[MIME_TYPE], load_schema())
    assert bundle[MIME_TYPE]["labels"] is not None  # the training data went along

    # run again: same seed, every evaluation comes from the cache
    res, cap = run(ip, CELL)
    again = ip.user_ns["result"]
    assert again.meta["evaluations"] == 0 and again.meta["cache_hits"] > 0
    assert again.allclose(result)


def test_body_runs_in_a_scratch_namespace(ip, cache):
    ip.user_ns["stopping"] = "the user's own"
    res, cap = run(ip, """%%shapley -o result --show none
_n = 2  # helper: leading underscore
model = model
train, test = train, test
stopping = MinUpdates(_n)
truncation = NoTruncation()
""")
    assert res.error_in_exec is None, cap.stderr
    assert ip.user_ns["stopping"] == "the user's own"
    assert "_n" not in ip.user_ns and "truncation" not in ip.user_ns
    assert bundles(cap) == []  # --show none
    assert ip.user_ns["result"].meta["truncation"] == "NoTruncation()"


def test_line_magic(ip, cache):
    ip.user_ns.pop("r", None)
    res, cap = run(ip, "%shapley model train test -o r --seed 2 --show table")
    assert res.error_in_exec is None, cap.stderr
    assert len(ip.user_ns["r"]) == 30
    (bundle,) = bundles(cap)
    assert "image/png" not in bundle and "<table" in bundle["text/html"]


def test_config_sets_defaults(ip, magics, cache):
    run(ip, "%config ShapleyMagics.jobs = 2")
    run(ip, "%config ShapleyMagics.backend = 'threading'")
    run(ip, "%config ShapleyMagics.seed = 7")
    run(ip, "%config ShapleyMagics.show = 'none'")
    assert (magics.jobs, magics.backend, magics.seed) == (2, "threading", 7)
    res, cap = run(ip, CELL.replace("--seed 1", ""))
    assert res.error_in_exec is None, cap.stderr
    config = magics.last_runner.config
    assert (config.jobs, config.backend, config.seed) == (2, "threading", 7)
    assert bundles(cap) == []
    # a line option wins over the default
    run(ip, CELL.replace("--seed 1", "--seed 3 -j 1 --no-cache"))
    config = magics.last_runner.config
    assert (config.jobs, config.seed, config.cache) == (1, 3, None)


def test_background_returns_at_once_and_fills_the_variable(ip, magics, cache):
    ip.user_ns.pop("bg", None)
    with capture_output() as cap:
        res = ip.run_cell(CELL.replace("-o result", "-o bg --background"), store_history=False)
        assert res.error_in_exec is None
        result = magics.last_runner.wait(timeout=60)
    assert ip.user_ns["bg"] is result and len(result) == 30
    first = cap.outputs[0].data["text/plain"]
    assert "running in the background" in first and "`bg`" in first
    assert any(MIME_TYPE in o.data for o in cap.outputs[1:])  # the placeholder was updated


def test_interrupt_keeps_the_partial_result(ip, cache):
    """A KeyboardInterrupt mid-run (what the kernel's interrupt raises) ends it cleanly."""
    ip.user_ns["calls"] = [0]
    res, cap = run(ip, """%%shapley -o partial --seed 1
def _slow_to_stop(subset):
    calls[0] += 1
    if calls[0] > 300:
        raise KeyboardInterrupt
    return float(len(subset))
utility = _slow_to_stop
train = train
truncation = None
stopping = MinUpdates(10**6)
""")
    assert isinstance(res.error_in_exec, KeyboardInterrupt)
    partial = ip.user_ns["partial"]
    assert partial.meta["ended"] == "interrupted" and partial.counts.sum() > 0
    lines = [line for line in shown(cap) + cap.stdout.splitlines() if line.strip()]
    assert [line for line in lines if "KeyboardInterrupt" in line] == [
        f"KeyboardInterrupt: run interrupted after {partial.meta['permutations']} permutations; "
        "the partial result is in 'partial' and the cache keeps every evaluation."
    ]
    assert "Traceback" not in cap.stdout + cap.stderr
    assert any(MIME_TYPE in b for b in bundles(cap))  # displayed too


# -- errors: at most two lines, naming the culprit -----------------------------------------
@pytest.mark.parametrize(
    ("cell", "culprit"),
    [
        ("%shapley model train tst -o r", "'tst'"),  # missing variable, line form
        ("%%shapley -o r\nmodel = modle\ntrain, test = train, test", "'modle'"),
        ("%shapley model train test --jobz 2", "--jobz"),  # unknown option
        ("%shapley model train test --show pie", "pie"),  # bad choice
        ("%%shapley -o r\nmodel = model\ntrain, test = train, test\nstoping = MinUpdates(2)",
         "'stoping'"),  # unknown setting
        ("%%shapley -o r\nmodel = 'abc'\ntrain, test = train, test", "model"),  # wrong model
        ("%%shapley -o r\nmodel = np.ones(3)\ntrain, test = train, test", "model"),
        ("%%shapley -o r\nmodel = model\ntrain, test = [1, 2, 3], test", "train"),  # wrong data
        ("%%shapley -o r\nmodel = model\ntrain, test = train, 'data.csv'", "test"),
        ("%%shapley -o r\nmodel = model\ntrain, test = train, test\nscoring = 'acuracy'",
         "'accuracy'"),  # engine DvlError, with its own did-you-mean
        ("%%shapley -o r\nmodel = model\ntrain, test = train, test\nstopping = 100",
         "stopping"),
        ("%%shapley -o r\nmodel = model\ntrain, test = train, test\nstopping = MinUpdates(",
         "syntax error"),
        ("%%shapley -o 1r\nmodel = model", "'1r'"),
        ("%%shapley\n", "empty"),
        ("%shapley model train", "three variables"),
        ("%shapley_cache load", "RUN_ID"),
        ("%shapley_cache load 123 -o r", "'123'"),
    ],
)
def test_errors_are_short_and_name_the_culprit(ip, cache, cell, culprit):
    res, cap = run(ip, cell)
    assert type(res.error_in_exec) is UsageError, res.error_in_exec
    lines = shown(cap)
    assert 1 <= len(lines) <= 2, lines
    assert lines[0].startswith("UsageError: ")
    assert culprit in " ".join(lines)
    assert "Traceback" not in cap.stderr + cap.stdout


def test_did_you_mean(ip, cache):
    _, cap = run(ip, "%%shapley -o r\nmodel = model\ntrain, test = train, test\nstoping = 1")
    assert "did you mean 'stopping'?" in cap.stderr
    _, cap = run(ip, "%shapley model train test --jbos 2")
    assert "did you mean '--jobs'?" in cap.stderr
    _, cap = run(ip, "%shapley modle train test")
    assert "did you mean 'model'?" in cap.stderr


@pytest.mark.parametrize("how", ["--debug", "config"])
def test_debug_shows_the_full_traceback(ip, magics, cache, how):
    flag = "--debug" if how == "--debug" else ""
    if how == "config":
        run(ip, "%config ShapleyMagics.debug = True")
    res, cap = run(ip, f"%%shapley -o r {flag}\nmodel = model\ntrain, test = [1, 2], test")
    assert isinstance(res.error_in_exec, DvlTypeError)
    assert "Traceback" in cap.stdout + cap.stderr or len(shown(cap)) > 2


# -- the cache and the panel --------------------------------------------------------------
def test_shapley_cache_shows_loads_and_clears(ip, cache):
    _, cap = run(ip, "%shapley_cache")
    assert "No cache yet" in cap.outputs[0].data["text/plain"]
    assert not cache.exists()  # looking does not create it
    run(ip, CELL)
    result = ip.user_ns["result"]
    run_id = result.meta["run_id"]
    res, cap = run(ip, "%shapley_cache")
    text = cap.outputs[0].data["text/plain"]
    assert str(cache) in text and run_id in text and "MinUpdates(n_updates=2)" in text
    assert "DecisionTreeClassifier" in text and " done " in text
    assert run_id in cap.outputs[0].data["text/html"]

    res, cap = run(ip, f"%shapley_cache load {run_id} -o reloaded")
    assert res.error_in_exec is None, cap.stderr
    assert ip.user_ns["reloaded"].allclose(result)

    res, cap = run(ip, "%shapley_cache clear")
    assert "cached values and 1 run removed" in cap.stdout
    _, cap = run(ip, "%shapley_cache")
    assert "0 cached values, 0 runs" in cap.outputs[0].data["text/plain"]


def test_shapley_panel_opens_the_panel_over_the_user_namespace(ip, monkeypatch):
    import dvl_jupyter.widget_panel as panel_module

    seen = {}
    monkeypatch.setattr(panel_module, "ShapleyPanel", lambda namespace=None: seen.setdefault(
        "ns", namespace))
    run(ip, "%shapley_panel")
    assert seen["ns"] is ip.user_ns


def test_panel_is_a_function_of_the_package_and_its_module_is_widget_panel():
    import dvl_jupyter.widget_panel as module
    from dvl_jupyter import panel

    assert panel is dvl_jupyter.panel and callable(panel)
    assert isinstance(panel({}), module.ShapleyPanel)


def test_valuation_names_are_there_without_import(ip, cache):
    res, cap = run(ip, """%%shapley -o r --show none
model = model
train, test = train, test
truncation = FixedTruncation(0.5)
stopping = MinUpdates(1) | MaxTime(60)
""")
    assert res.error_in_exec is None, cap.stderr
    assert np.all(ip.user_ns["r"].counts >= 1)
