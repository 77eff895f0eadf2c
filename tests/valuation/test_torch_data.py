"""Data as torch tensors on a device (``load_digits(device=...)``) through the whole workflow.

This machine has no GPU, so the device is the CPU: what is checked is that tensors in a
``Dataset`` work everywhere numpy arrays do (fitting one by one and on the fast path, scoring,
plots, the display, the cache) and give the *same numbers*; CUDA nets are
``test_fastpath_cuda.py``'s job.
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from dvl_jupyter.datasets import load_digits
from dvl_jupyter.display import MIME_TYPE, mimebundle
from dvl_jupyter.plots import plot_image_grid, plot_result_errors
from dvl_jupyter.valuation import (
    Dataset,
    MinUpdates,
    ModelUtility,
    SkorchSupervisedScorer,
    SupervisedScorer,
    TMCShapleyValuation,
)

N_TRAIN, N_TEST = 8, 40


def digits(device: str | None) -> tuple[Dataset, Dataset]:
    train, test = load_digits(train_size=0.7, random_state=36, device=device)
    return train[:N_TRAIN], test[:N_TEST]


def net():
    from skorch import NeuralNetClassifier

    from dvl_jupyter.models import SimpleCNN

    return NeuralNetClassifier(SimpleCNN, criterion=torch.nn.CrossEntropyLoss, lr=0.01,
                               max_epochs=3, batch_size=4, train_split=None,
                               optimizer=torch.optim.Adam, verbose=False)


def run(device: str | None, batched: bool | str, cache=None):
    train, test = digits(device)
    model = net()
    scorer = SkorchSupervisedScorer(model, test_data=test, default=0.0, range=(0, 1))
    valuation = TMCShapleyValuation(ModelUtility(model, scorer, cache=cache),
                                    is_done=MinUpdates(3), seed=5, batched=batched)
    return valuation.fit(train).result, train


@pytest.fixture
def agg():
    backend = matplotlib.get_backend()
    plt.switch_backend("Agg")
    yield
    plt.close("all")
    plt.switch_backend(backend)


@pytest.fixture(scope="module")
def runs():
    """numpy and CPU-tensor runs of the same valuation, one by one and on the fast path."""
    return {(device, batched): run(device, batched)
            for device in (None, "cpu") for batched in (False, "auto")}


def test_loader_gives_tensors_on_the_device():
    train, _ = digits("cpu")
    assert isinstance(train.x, torch.Tensor) and train.x.device.type == "cpu"
    raw = train.data()
    assert isinstance(raw.cpu().x, torch.Tensor)


@pytest.mark.slow
@pytest.mark.parametrize("batched", [False, "auto"])
def test_tensor_data_gives_the_values_of_numpy_data(runs, batched):
    (ref, _), (got, train) = runs[None, batched], runs["cpu", batched]
    expected_path = "fast path" if batched == "auto" else "one-by-one"
    assert got.meta["path"].startswith(expected_path), got.meta["path"]
    assert got.meta["path"] == ref.meta["path"]
    assert len(got) == len(train) == N_TRAIN
    assert got.meta["fits"] > 0 and got.meta["failed_fits"] == 0
    assert np.any(got.values != 0)  # a run that learnt something, so equality means something
    # The same fits on the same float32 values with the same seeds: equal, not merely close.
    np.testing.assert_array_equal(got.values, ref.values)
    np.testing.assert_array_equal(got.counts, ref.counts)
    np.testing.assert_array_equal(got.indices, ref.indices)


@pytest.mark.slow
def test_scorers_take_tensor_test_data():
    (_, test_np), (_, test_t) = digits(None), digits("cpu")
    train_np, _ = load_digits(train_size=0.7, random_state=36)
    model = net()
    torch.manual_seed(0)
    model.fit(*train_np[:200].data())
    expected = float(np.mean(model.predict(test_np.x) == test_np.y))
    assert 0.0 < expected < 1.0
    assert SkorchSupervisedScorer(model, test_data=test_t)(model) == pytest.approx(expected)
    assert SupervisedScorer("accuracy", test_t)(model) == pytest.approx(expected)
    # the notebook's own line: model.score(*test.data().cpu())
    assert model.score(*test_t.data().cpu()) == pytest.approx(expected)


@pytest.mark.slow
def test_plots_of_tensor_data_show_the_numpy_images(runs, agg):
    (result, train_t), (_, train_np) = runs["cpu", False], runs[None, False]
    ax = plot_result_errors(result.sort()[:5], title="lowest")
    assert len(ax.get_xticklabels()) == 5
    grids = [plot_image_grid(result, data, k=4) for data in (train_t, train_np)]
    drawn = [[im.get_array() for a in g.axes for im in a.get_images()] for g in grids]
    assert len(drawn[0]) == 4
    for a, b in zip(*drawn, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_display_of_tensor_data_equals_numpy(runs, agg):
    (got, train_t), (ref, train_np) = runs["cpu", False], runs[None, False]
    # what the runner does for the magic's results: the data to draw them with
    got.display_data, ref.display_data = train_t, train_np
    bundle, ref_bundle = mimebundle(got), mimebundle(ref)
    assert 'class="dvl-png"' in bundle["text/html"]  # the picture, stored once in the HTML
    payload, ref_payload = bundle[MIME_TYPE], ref_bundle[MIME_TYPE]
    assert len(payload["images"]) == N_TRAIN and all(payload["images"])
    for key in ("indices", "names", "values", "labels", "images"):
        assert payload[key] == ref_payload[key], key


@pytest.mark.slow
def test_cache_of_tensor_data(tmp_path):
    first, _ = run("cpu", False, cache=tmp_path)
    again, _ = run("cpu", False, cache=tmp_path)
    assert first.meta["fits"] > 0
    assert again.meta["fits"] == again.meta["evaluations"] == 0
    assert again.meta["cache_hits"] >= first.meta["evaluations"]
    np.testing.assert_array_equal(again.values, first.values)
    # numpy data has its own fingerprint (see Dataset.fingerprint): nothing is shared
    as_numpy, _ = run(None, False, cache=tmp_path)
    # (a run's own hits: subsets it meets twice, such as the full set)
    assert as_numpy.meta["cache_hits"] == first.meta["cache_hits"] < again.meta["cache_hits"]
    assert as_numpy.meta["fits"] == first.meta["fits"]
    np.testing.assert_array_equal(as_numpy.values, first.values)


def test_fingerprints_of_tensor_datasets():
    (train_np, _), (train_t, _) = digits(None), digits("cpu")
    clone = Dataset(train_t.x.clone(), train_t.y.clone(), indices=train_t.indices)
    assert clone.fingerprint() == train_t.fingerprint()  # content, not identity
    assert train_t.fingerprint() != train_np.fingerprint()  # the container is part of it
    changed = train_t.x.clone()
    changed[0, 0, 0, 0] += 1.0
    assert Dataset(changed, train_t.y, indices=train_t.indices).fingerprint() != \
        train_t.fingerprint()
