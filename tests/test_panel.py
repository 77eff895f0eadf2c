"""The widget panel: discovery, Run and Stop through button clicks, result tabs, bad input."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from dvl_jupyter.valuation import Dataset
from dvl_jupyter.widget_panel import ShapleyPanel, find_datasets, find_estimators, panel

N_TRAIN = 8


def xy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    return x, (x[:, 0] > 0).astype(int)


@pytest.fixture
def namespace() -> dict:
    """What a notebook holds: estimators, a class, datasets, and things that are neither."""
    return {
        "clf": LogisticRegression(),
        "dummy": DummyClassifier(),
        "LogisticRegression": LogisticRegression,  # a class, not an estimator
        "np": np,  # a module
        "train": xy(N_TRAIN, 0),
        "test": xy(6, 1),
        "three": (np.zeros(3), np.zeros(3), np.zeros(3)),  # not an (x, y) pair
        "ragged": (np.zeros(3), np.zeros(4)),
        "_hidden": DummyClassifier(),
        "In": ["cell"],
    }


def quick(p: ShapleyPanel, model: str = "clf", min_updates: int = 2) -> ShapleyPanel:
    """Small, reproducible settings without a disk cache."""
    p.model_dropdown.value = model
    p.min_updates.value = min_updates
    p.seed.value = "0"
    p.cache.value = False
    return p


def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def png(image) -> bytes:
    return bytes(image.value)


def test_finds_estimators_and_datasets_by_name(namespace):
    torch = pytest.importorskip("torch")
    from skorch import NeuralNetClassifier

    namespace["net"] = NeuralNetClassifier(torch.nn.Linear, module__in_features=2,
                                           module__out_features=2)
    namespace["digits"] = Dataset(np.zeros((4, 1, 3, 3)), np.zeros(4))
    assert find_estimators(namespace) == ["net", "clf", "dummy"]  # skorch nets first
    assert find_datasets(namespace) == ["digits", "test", "train"]


def test_dropdowns_preselect_train_and_test(namespace):
    p = ShapleyPanel(namespace)
    assert p.model_dropdown.options == ("clf", "dummy")
    assert p.train_dropdown.value == "train"
    assert p.test_dropdown.value == "test"
    assert p.message.value == ""
    assert "application/vnd.jupyter.widget-view+json" in p._repr_mimebundle_()


def test_refresh_sees_new_variables_and_keeps_choices(namespace):
    p = ShapleyPanel(namespace)
    p.model_dropdown.value = "dummy"
    namespace["another"] = DummyClassifier()
    p.refresh_button.click()
    assert "another" in p.model_dropdown.options
    assert p.model_dropdown.value == "dummy"


@pytest.mark.filterwarnings("ignore::dvl_jupyter.valuation.FailedFitsWarning")
def test_run_fills_the_tabs_and_stores_the_result(namespace):
    # LogisticRegression cannot fit one-class subsets: those fits fail and score the default.
    p = quick(ShapleyPanel(namespace))
    p.run_button.click()
    assert p.run_button.disabled and not p.stop_button.disabled
    assert p.wait(timeout=300) is not None
    assert not p.running and not p.runner.running
    assert len(p.result) == N_TRAIN and len(p.result.values) == N_TRAIN
    assert p.result.meta["ended"] == "done"
    assert namespace["result"] is p.result
    assert p.message.value.startswith("Done: values of 8 points, stored in `result`")
    assert p.progress.ended == "done" and p.progress.bar.value == 1.0
    assert p.results_box.layout.display != "none"
    assert png(p.plot).startswith(b"\x89PNG")
    assert p.table.value.count("<tr>") == 1 + 8  # header and k = min(10, n) rows
    assert "not images" in p.grid_note.value
    assert not p.run_button.disabled and p.stop_button.disabled
    # the view controls re-render the tabs
    p.k.value = 3
    assert p.table.value.count("<tr>") == 1 + 3
    p.which.value = "top"
    top_value = f"{p.result.sort(reverse=True).values[0]:.4g}"
    assert f"<td>1</td><td>{p.result.sort(reverse=True).indices[0]}</td>" in p.table.value
    assert top_value in p.table.value


def test_image_data_get_an_image_grid():
    rng = np.random.default_rng(0)
    images = Dataset(rng.random((6, 1, 4, 4)), np.array([0, 1] * 3),
                     names=[f"<img{i}>" for i in range(6)])
    p = quick(ShapleyPanel({"dummy": DummyClassifier(), "train": images, "test": images}),
              model="dummy")
    p.out_name.value = ""
    p.run_button.click()
    result = p.wait(timeout=300)
    assert result is not None and len(result) == 6
    assert "result" not in p.namespace  # nothing stored when 'store as' is empty
    assert png(p.grid).startswith(b"\x89PNG")
    assert p.grid_note.value == ""
    assert "&lt;img" in p.table.value and "<img" not in p.table.value  # names are escaped


def test_stop_ends_a_long_run_with_a_partial_result(namespace):
    p = quick(ShapleyPanel(namespace), model="dummy", min_updates=10_000)
    p.run_button.click()
    wait_until(lambda: p.runner.valuation.stats is not None
               and p.runner.valuation.stats.permutations > 0)
    p.stop_button.click()
    assert p.stop_button.disabled
    result = p.wait(timeout=120)
    assert not p.runner.running
    assert result is not None and len(result) == N_TRAIN
    assert result.meta["ended"] == "stopped"
    assert 0 < result.meta["permutations"] < 10_000 * N_TRAIN
    assert p.progress.ended == "stopped"
    assert p.progress.status_label.value.startswith("Stopped")
    assert p.message.value.startswith("Stopped early (partial result)")
    assert namespace["result"] is result
    assert not p.run_button.disabled


class _Broken(DummyClassifier):
    def fit(self, x, y):  # noqa: D102 - a model that cannot be fitted at all
        raise RuntimeError("this model never fits")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: setattr(p.seed, "value", "abc"), "seed must be None or an integer >= 0"),
        (lambda p: setattr(p.jobs, "value", 0), "jobs must be a positive integer or -1"),
        (lambda p: setattr(p.out_name, "value", "my result"), "must be a Python variable"),
        (lambda p: setattr(p.scoring, "value", "acuracy"), "Did you mean 'accuracy'"),
        (lambda p: p.namespace.pop("clf"), "'clf' is no longer defined; press Refresh"),
    ],
)
def test_bad_input_is_a_short_message(namespace, setup, message):
    p = quick(ShapleyPanel(namespace))
    setup(p)
    p.run_button.click()
    assert message in p.message.value
    assert "\n" not in p.message.value
    assert p.message.style.text_color is not None  # shown as an error
    assert p.runner is None and not p.running and not p.run_button.disabled


def test_an_empty_notebook_says_what_is_missing():
    p = ShapleyPanel({})
    assert p.message.value.startswith("Found no estimator (an object with fit) and no dataset")
    p.run_button.click()
    assert p.message.value == "Choose the model (press Refresh if it is not listed)."


def test_a_run_that_fails_says_why_and_stores_nothing(namespace):
    namespace["broken"] = _Broken()
    p = quick(ShapleyPanel(namespace), model="broken")
    p.run_button.click()
    p.wait(timeout=120)
    assert p.message.value.startswith("The run failed: Fitting the model on the whole training")
    assert "result" not in namespace and p.result is None
    assert p.progress.ended == "error"
    assert not p.run_button.disabled


def test_panel_defaults_to_the_main_namespace():
    import __main__

    p = panel()
    assert p.namespace is vars(__main__)


def test_a_time_limit_ends_a_long_run_as_done(namespace):
    """MinUpdates(10,000) | MaxTime(1 s): the time limit ends it, within a round of the
    budget, and the panel says so (not 'stopped', not 'failed')."""
    p = quick(ShapleyPanel(namespace), model="dummy", min_updates=10_000)
    p.max_time.value = 1.0
    start = time.monotonic()
    p.run_button.click()
    result = p.wait(timeout=120)
    assert time.monotonic() - start < 30
    assert result is not None and result.meta["ended"] == "time limit"
    assert 0 < result.meta["permutations"] < 10_000
    assert p.message.value.startswith("Done at the time limit: values of")
    assert p.progress.ended == "time limit"
    assert p.progress.status_label.value.startswith("Done: time limit reached")


def test_the_panel_offers_the_methods_and_shows_only_what_each_reads(namespace):
    p = ShapleyPanel(namespace)
    assert {"tmc", "knn"} <= {value for _, value in p.method.options}
    assert p.truncation_row.layout.display is None and p.stopping_row.layout.display is None
    p.method.value = "knn"
    assert p.truncation_row.layout.display == "none" and p.stopping_row.layout.display == "none"
    assert p.scoring.layout.display == "none" and "KNN-Shapley" in p.method_note.value
    p = quick(p)
    p.run_button.click()
    result = p.wait(timeout=120)
    assert result is not None and result.algorithm == "KNN-Shapley"
    # the Chart tab holds the magic's own display of the result
    (output,) = p.chart.outputs
    assert "application/vnd.dvl-jupyter.valuation.v1+json" in output["data"]
    assert p.tabs.titles[0] == "Chart"


def test_the_panel_does_not_overwrite_a_variable_that_is_not_a_result(namespace):
    namespace["result"] = "my notes"
    p = quick(ShapleyPanel(namespace))
    p.run_button.click()
    assert "'store as' would overwrite the variable 'result' (a str)" in p.message.value
    assert p.runner is None and namespace["result"] == "my notes"
