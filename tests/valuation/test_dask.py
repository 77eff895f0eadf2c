"""Valuations on a real Dask cluster through joblib: same results as loky, cache, worker loss.

A LocalCluster on 127.0.0.1 with two worker processes of one thread each, stopped at the end.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
from joblib import parallel_config

from dvl_jupyter.valuation import (
    Dataset,
    MinUpdates,
    ModelUtility,
    RelativeTruncation,
    SupervisedScorer,
    TMCShapleyValuation,
)

distributed = pytest.importorskip("distributed")


class SlowGame:
    """A saturating game that takes a little time, so a worker can die mid-run."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def __call__(self, s: np.ndarray) -> float:
        if self.delay:
            time.sleep(self.delay)
        return float(np.sqrt(np.sum(np.asarray(s, dtype=float) ** 1.5 + 1.0)))


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=40,
    )
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def points(n: int) -> Dataset:
    return Dataset(np.zeros((n, 1)), np.zeros(n))


def run(backend: str, game, n: int = 8, updates: int = 6, seed: int = 3, **kwargs):
    with parallel_config(backend=backend, n_jobs=2 if backend != "dask" else -1):
        v = TMCShapleyValuation(game, truncation=RelativeTruncation(0.01, 0.3),
                                is_done=MinUpdates(updates), seed=seed, **kwargs)
        return v.fit(points(n))


def test_dask_gives_the_same_result_as_loky_and_progress_moves_per_evaluation(client):
    from dvl_jupyter.valuation import ValuationCallback

    class Counter(ValuationCallback):
        seen: list[int] = []

        def on_evaluations(self, stats):
            self.seen.append(stats.evaluations)

    counter = Counter()
    on_dask = run("dask", SlowGame(), callbacks=[counter])
    on_loky = run("loky", SlowGame()).result
    np.testing.assert_array_equal(on_dask.result.values, on_loky.values)
    np.testing.assert_array_equal(on_dask.result.counts, on_loky.counts)
    # the view hears of every evaluation as it comes back, not once per round or permutation
    assert len(counter.seen) >= on_dask.stats.evaluations - 2
    assert np.all(np.diff(counter.seen) <= 2)


def test_dask_run_fills_the_driver_cache_and_a_rerun_hits_it(client, tmp_path):
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(n_samples=40, n_features=3, n_informative=3, n_redundant=0,
                               random_state=0)
    train, test = Dataset.from_arrays(x, y, train_size=0.3, random_state=0,
                                      stratify_by_target=True)
    scorer = SupervisedScorer("accuracy", test, default=0.0, range=(0, 1))

    def valuation():
        u = ModelUtility(LogisticRegression(), scorer, catch_errors=True, cache=tmp_path / "c")
        return TMCShapleyValuation(u, truncation=RelativeTruncation(0.05, 0.3),
                                   is_done=MinUpdates(3), seed=1)

    with parallel_config(backend="dask"):
        first = valuation().fit(train)  # one-class subsets: counted, not warned about
        second = valuation().fit(train)  # all hits: no fit, so no one-class fit either
    assert first.stats.evaluations > 0 and first.stats.one_class > 0
    assert second.stats.evaluations == 0 and second.stats.one_class == 0
    np.testing.assert_array_equal(first.result.values, second.result.values)


def test_killing_a_worker_mid_run_still_gives_the_correct_result(client):
    from dvl_jupyter.valuation import ValuationCallback

    reference = run("loky", SlowGame(), n=10, updates=8).result
    game = SlowGame(delay=0.05)
    outcome: dict = {}
    going = threading.Event()

    class Started(ValuationCallback):
        def on_evaluations(self, stats):
            if stats.evaluations >= 12:  # both workers busy, most of the run still ahead
                going.set()

    def target():
        try:
            outcome["v"] = run("dask", game, n=10, updates=8, callbacks=[Started()])
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    assert going.wait(timeout=120), "the run did not get going"
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    assert thread.is_alive(), "the run ended before the worker could be killed"
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=240)
    assert not thread.is_alive(), "the run did not finish after a worker died"
    assert "error" not in outcome, outcome.get("error")
    result = outcome["v"].result
    np.testing.assert_array_equal(result.values, reference.values)
    np.testing.assert_array_equal(result.counts, reference.counts)
    assert outcome["v"].stats.permutations == reference.meta["permutations"]
    assert victim not in client.run(os.getpid).values()  # the worker really died


def test_the_magic_runs_on_a_scheduler_and_matches_loky(client, tmp_path):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    ip = InteractiveShell.instance()
    ip.run_cell("%load_ext dvl_jupyter", store_history=False)
    try:
        ip.user_ns.update(
            model=__import__("sklearn.tree", fromlist=["x"]).DecisionTreeClassifier(
                random_state=0),
            train=(np.random.default_rng(0).normal(size=(12, 2)), np.arange(12) % 2),
            test=(np.random.default_rng(1).normal(size=(8, 2)), np.arange(8) % 2),
        )
        body = "\nmodel = model\ntrain, test = train, test\nstopping = MinUpdates(3)\n"
        common = f"--seed 4 --no-progress --show none --cache {tmp_path / 'c'}"
        address = client.scheduler.address
        with capture_output() as cap:
            ip.run_cell(f"%%shapley -o on_dask --backend dask --scheduler {address} "
                        f"{common}{body}", store_history=False)
            ip.run_cell(f"%%shapley -o on_loky -j 2 --no-cache {common.split(' --cache')[0]}"
                        f"{body}", store_history=False)
        assert "Error" not in cap.stderr, cap.stderr
        on_dask, on_loky = ip.user_ns["on_dask"], ip.user_ns["on_loky"]
        np.testing.assert_array_equal(on_dask.values, on_loky.values)
        assert on_dask.meta["settings"]["scheduler"] == address
    finally:
        ip.run_cell("%unload_ext dvl_jupyter", store_history=False)


def test_dask_without_a_cluster_is_a_short_error():
    # in a fresh interpreter: this module's own cluster would otherwise be found
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from dvl_jupyter.runner import RunConfig, ValuationRunner\n"
        "from dvl_jupyter.valuation import Dataset, MinUpdates\n"
        "cfg = RunConfig(utility=lambda s: 0.0, train=Dataset(np.zeros((3, 1)), np.zeros(3)),\n"
        "                backend='dask', cache=None, stopping=MinUpdates(1))\n"
        "try:\n"
        "    ValuationRunner(cfg).run()\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert "needs a cluster" in out.stdout and "--scheduler tcp://HOST:PORT" in out.stdout


@pytest.mark.slow
def test_a_coupled_skorch_utility_gives_the_same_values_on_dask(client, digits, shuffling_cnn):
    """Coupled training is a function of the subset alone: Dask's workers fit the same models
    as this process (a shuffling net, three minibatches per epoch)."""
    from dvl_jupyter.valuation import LOOValuation, SkorchSupervisedScorer

    x, y, x_test, y_test = digits
    net = shuffling_cnn
    scorer = SkorchSupervisedScorer(net, test_data=(x_test, y_test), scoring="neg_log_loss")
    utility = ModelUtility(net, scorer)
    assert utility.coupled_training  # the default

    def loo(backend: str) -> np.ndarray:
        with parallel_config(backend=backend, n_jobs=-1 if backend == "dask" else 1):
            method = LOOValuation(utility, batched=False)
            return method.fit(Dataset(x[:40], y[:40])).result.values

    on_dask = loo("dask")
    np.testing.assert_array_equal(on_dask, loo("sequential"))
    assert np.ptp(on_dask) > 1e-4
