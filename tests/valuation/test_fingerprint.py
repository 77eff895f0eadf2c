"""Fingerprints: equal things digest equally in every process; anything that changes u(S) doesn't.

A stale cache hit (same fingerprint, different utility) silently gives wrong values, so most
tests here check that a change of a hyper-parameter, data, scorer, code or package version
changes the digest.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from dvl_jupyter.valuation import Dataset, ModelUtility, SupervisedScorer
from dvl_jupyter.valuation import _version as version_module
from dvl_jupyter.valuation.fingerprint import (
    canonical_json,
    describe,
    digest,
    fingerprint_array,
)

# -- arrays ---------------------------------------------------------------------------------------


def test_array_fingerprint_depends_on_content_dtype_and_shape():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    assert fingerprint_array(a) == fingerprint_array(a.copy())
    assert fingerprint_array(a) != fingerprint_array(a.reshape(3, 2))
    assert fingerprint_array(a) != fingerprint_array(a.astype(np.float32))
    b = a.copy()
    b[1, 2] = np.nextafter(b[1, 2], 10)  # one ulp
    assert fingerprint_array(a) != fingerprint_array(b)
    # layout does not matter, content does
    assert fingerprint_array(np.asfortranarray(a)) == fingerprint_array(a)
    assert fingerprint_array(a.T) == fingerprint_array(np.ascontiguousarray(a.T))
    assert fingerprint_array(np.empty((0, 3))) != fingerprint_array(np.empty((3, 0)))


def test_object_and_str_arrays_are_fingerprinted_without_pickle(monkeypatch):
    def no_pickle(*args, **kwargs):
        raise AssertionError("fingerprint_array must not pickle")

    monkeypatch.setattr(pickle, "dumps", no_pickle)
    monkeypatch.setattr(pickle, "dump", no_pickle)
    objs = np.array(["ab", "c", 3, None, 1.5], dtype=object)
    assert fingerprint_array(objs) == fingerprint_array(objs.copy())
    # element boundaries count: ["ab", "c"] is not ["a", "bc"]
    assert fingerprint_array(np.array(["ab", "c"], dtype=object)) != fingerprint_array(
        np.array(["a", "bc"], dtype=object)
    )
    strs = np.array(["cat", "dog"])
    assert fingerprint_array(strs) == fingerprint_array(np.array(["cat", "dog"]))
    assert fingerprint_array(strs) != fingerprint_array(np.array(["cat", "doe"]))
    assert fingerprint_array(strs) != fingerprint_array(strs.astype(object))


def test_tensor_fingerprint():
    torch = pytest.importorskip("torch")
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert fingerprint_array(t) == fingerprint_array(t.clone())
    assert fingerprint_array(t) == fingerprint_array(t.requires_grad_(True))
    assert fingerprint_array(t) != fingerprint_array(t.detach() + 1)
    assert fingerprint_array(t) != fingerprint_array(t.detach().double())
    assert fingerprint_array(t.detach().t()) == fingerprint_array(t.detach().t().contiguous())
    # dtypes numpy lacks work too
    assert fingerprint_array(t.detach().bfloat16()) != fingerprint_array(t.detach().half())
    assert fingerprint_array(torch.tensor(3)) != fingerprint_array(torch.tensor([3]))
    with pytest.raises(TypeError, match="numpy array or a torch tensor"):
        fingerprint_array([1, 2, 3])


# -- describe -------------------------------------------------------------------------------------


def test_estimator_hyperparameters_change_the_description():
    a = describe(LogisticRegression(C=1.0))
    assert a == describe(LogisticRegression(C=1.0))
    assert a != describe(LogisticRegression(C=2.0))
    assert a != describe(LogisticRegression(C=1.0, class_weight={0: 1, 1: 2}))
    assert describe(LogisticRegression(class_weight={0: 1, 1: 2})) != describe(
        LogisticRegression(class_weight={0: 1, 1: 3})
    )
    # the class is described with the library's version
    import sklearn

    assert f"@{sklearn.__version__}" in canonical_json(a)


def test_containers_are_canonical_and_do_not_collide():
    assert describe({"b": 1, "a": 2}) == describe({"a": 2, "b": 1})
    assert digest({"b": 1, "a": 2}) == digest({"a": 2, "b": 1})
    assert digest([1, 2]) != digest((1, 2))
    assert digest({1: "x"}) != digest({"1": "x"})
    assert digest({"b", "a"}) == digest({"a", "b"})
    assert digest(1) != digest(1.0) != digest("1")
    # a user dict that looks like a tagged description is escaped, not confused with it
    tagged = describe((1, 2))
    assert digest(tagged) != digest((1, 2))
    # non-finite floats are described (the JSON stays standard)
    assert canonical_json(describe([float("nan"), float("inf")]))
    assert digest(float("inf")) != digest(float("-inf"))
    assert digest(np.float64(0.5)) == digest(0.5)
    assert digest(np.int64(3)) == digest(3)


def _make_in_main(source: str, name: str):
    """Define an object as a notebook cell would: in a module called __main__."""
    namespace = {"__name__": "__main__"}
    exec(textwrap.dedent(source), namespace)  # noqa: S102 - test fixture code
    return namespace[name]


def test_notebook_classes_and_functions_are_identified_by_their_code():
    v1 = _make_in_main(
        """
        class Net:
            width = 8
            def forward(self, x):
                return x * 2
        """,
        "Net",
    )
    v1_again = _make_in_main(
        """
        class Net:
            width = 8
            def forward(self, x):
                return x * 2
        """,
        "Net",
    )
    edited = _make_in_main(
        """
        class Net:
            width = 8
            def forward(self, x):
                return x * 3
        """,
        "Net",
    )
    wider = _make_in_main(
        """
        class Net:
            width = 16
            def forward(self, x):
                return x * 2
        """,
        "Net",
    )
    assert v1 is not v1_again
    assert describe(v1) == describe(v1_again)
    assert describe(v1) != describe(edited)
    assert describe(v1) != describe(wider)

    score_a = _make_in_main("score = lambda m, x, y: 1.0", "score")
    score_b = _make_in_main("score = lambda m, x, y: 0.0", "score")
    assert describe(score_a) == describe(_make_in_main("score = lambda m, x, y: 1.0", "score"))
    assert describe(score_a) != describe(score_b)

    def make(k):
        return lambda m, x, y: k

    assert describe(make(1)) != describe(make(2))
    assert describe(make(1)) == describe(make(1))


def test_torch_modules_are_described_by_architecture_and_weights():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    a = torch.nn.Linear(3, 2)
    b = torch.nn.Linear(3, 2)
    assert describe(a) != describe(b)  # same repr, other weights
    b.load_state_dict(a.state_dict())
    assert describe(a) == describe(b)
    assert describe(a) != describe(torch.nn.Linear(3, 4))
    assert describe(torch.device("cpu")) == describe(torch.device("cpu"))
    assert describe(torch.float32) != describe(torch.float64)


def test_skorch_net_hyperparameters_and_module_class_change_the_description():
    pytest.importorskip("skorch")
    import torch
    from skorch import NeuralNetClassifier

    mod = _make_in_main(
        """
        import torch
        class Tiny(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = torch.nn.Linear(4, 2)
            def forward(self, x):
                return self.lin(x)
        """,
        "Tiny",
    )
    mod2 = _make_in_main(
        """
        import torch
        class Tiny(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = torch.nn.Linear(4, 3)
            def forward(self, x):
                return self.lin(x)
        """,
        "Tiny",
    )

    def net(module=mod, **kw):
        params = dict(criterion=torch.nn.CrossEntropyLoss, lr=0.01, max_epochs=2,
                      optimizer=torch.optim.Adam, train_split=None, verbose=False)
        params.update(kw)
        return NeuralNetClassifier(module, **params)

    base = digest(net())
    assert base == digest(net())
    assert base != digest(net(lr=0.02))
    assert base != digest(net(optimizer=torch.optim.SGD))
    assert base != digest(net(mod2))
    assert base != digest(net(module__hidden=3))


class _Opaque:
    """Default repr: '<...Opaque object at 0x7f...>', different in every process."""


class _Summary:
    def __repr__(self) -> str:
        return "<a summary>"


class _Stable:
    def __init__(self, k: int) -> None:
        self.k = k

    def __repr__(self) -> str:
        return f"_Stable(k={self.k})"


class _Custom:
    def __init__(self, k: int) -> None:
        self.k = k

    def dvl_fingerprint(self) -> dict:
        return {"k": self.k}


def test_unknown_objects_need_a_stable_repr_or_dvl_fingerprint():
    with pytest.raises(TypeError, match="memory address") as info:
        describe({"model": LogisticRegression(), "callbacks": [_Opaque()]})
    message = str(info.value)
    assert "['callbacks'][0]" in message
    assert "dvl_fingerprint()" in message and "__repr__" in message
    with pytest.raises(TypeError, match="summary"):
        describe(_Summary())
    assert describe(_Stable(1)) == describe(_Stable(1))
    assert describe(_Stable(1)) != describe(_Stable(2))
    assert describe(_Custom(1)) == describe(_Custom(1))
    assert describe(_Custom(1)) != describe(_Custom(2))


def test_cycles_are_described_not_looped():
    a: list = [1]
    a.append(a)
    assert describe(a) == describe(a)


# -- the utility's fingerprint (the lead's ModelUtility, through our helpers) ---------------------


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3))
    y = (x[:, 0] > 0).astype(int)
    return Dataset(x[:20], y[:20]), Dataset(x[20:], y[20:])


def _fp(model, train, scorer):
    return ModelUtility(model, scorer).with_dataset(train).fingerprint()


def test_utility_fingerprint_changes_with_model_data_scorer_and_version(data, monkeypatch):
    train, test = data
    scorer = SupervisedScorer("accuracy", test, default=0.0, range=(0, 1))
    base = _fp(LogisticRegression(), train, scorer)
    assert base == _fp(LogisticRegression(), train, SupervisedScorer("accuracy", test, 0.0, (0, 1)))
    # hyper-parameter
    assert base != _fp(LogisticRegression(C=0.5), train, scorer)
    # training data: one label flipped, one feature nudged
    x, y = train.data()
    y2 = y.copy()
    y2[0] = 1 - y2[0]
    assert base != _fp(LogisticRegression(), Dataset(x, y2), scorer)
    x2 = x.copy()
    x2[3, 1] += 1e-9
    assert base != _fp(LogisticRegression(), Dataset(x2, y), scorer)
    # scorer spec: metric, default, range, test data
    assert base != _fp(LogisticRegression(), train, SupervisedScorer("f1", test, 0.0, (0, 1)))
    assert base != _fp(LogisticRegression(), train, SupervisedScorer("accuracy", test, 0.5, (0, 1)))
    assert base != _fp(LogisticRegression(), train,
                       SupervisedScorer("accuracy", test, 0.0, (0, 2)))
    assert base != _fp(LogisticRegression(), train,
                       SupervisedScorer("accuracy", test[:5], 0.0, (0, 1)))
    # package version
    monkeypatch.setattr(version_module, "__version__", "999.0")
    assert base != _fp(LogisticRegression(), train, scorer)


_CHILD = r"""
import json, sys, textwrap
import numpy as np
from dvl_jupyter.valuation.fingerprint import digest

ns = {"__name__": "__main__"}
exec(textwrap.dedent('''
    class Estimator:  # sklearn-style, without sklearn's 3 s import
        def __init__(self, C=1.0, class_weight=None, tags=None):
            self.C, self.class_weight, self.tags = C, class_weight, tags
        def get_params(self, deep=True):
            return {"C": self.C, "class_weight": self.class_weight, "tags": self.tags}
    def score(model, x, y):
        return float(model.__class__.__name__ in {"LogisticRegression", "SVC", "Ridge"})
    class Net:
        kinds = ("a", "b")
        def forward(self, x):
            return {"x", "y", "z"}
'''), ns)
est = ns["Estimator"](C=0.5, class_weight={0: 1, 1: 2}, tags={"x", "y", "z", "w"})
parts = [est, {"b", "a", "c"},
         frozenset({"q", "r"}), ns["score"], ns["Net"], np.arange(5), float("nan")]
print(json.dumps(digest(*parts)))
"""


def test_digests_are_the_same_in_every_process():
    """str hashing is randomised per process: set order must not leak into digests."""
    children = [
        subprocess.Popen([sys.executable, "-c", _CHILD], env={**os.environ, "PYTHONHASHSEED": s},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for s in ("1", "2")
    ]
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    assert results[0] == results[1]


# -- what a notebook function reads: its globals ------------------------------------------------
def _notebook(source: str) -> dict:
    """A notebook's namespace after running ``source`` in it."""
    namespace = {"__name__": "__main__"}
    exec(textwrap.dedent(source), namespace)  # noqa: S102 - test fixture code
    return namespace


def test_a_function_is_keyed_by_the_globals_it_reads_and_those_they_read():
    ns = _notebook("""
        import numpy as np
        WEIGHT = 1.0
        OFFSET = [0.0]
        def helper(v):
            return v + OFFSET[0]
        def score(m, x, y):
            return WEIGHT * helper(np.mean(y))
        def unrelated():
            return 1
    """)
    before = digest(ns["score"])
    ns["unrelated"] = lambda: 2  # not read: no change
    assert digest(ns["score"]) == before
    ns["WEIGHT"] = 0.5  # read directly
    assert digest(ns["score"]) != before
    ns["WEIGHT"] = 1.0
    assert digest(ns["score"]) == before
    ns["OFFSET"][0] = 1.0  # read by a function it reads, and mutated in place
    assert digest(ns["score"]) != before
    described = describe(ns["score"])["globals"]
    assert set(described) == {"WEIGHT", "helper", "np"}
    assert described["np"] == {"__dvl__": "module", "name": "numpy", "version": np.__version__}


def test_a_function_reading_no_global_keeps_its_key():
    """Only functions that read globals got a new part: other keys are unchanged."""
    assert "globals" not in describe(_make_in_main("f = lambda m, x, y: 1.0", "f"))


def test_methods_of_a_notebook_class_are_keyed_by_the_globals_they_read():
    ns = _notebook("""
        HIDDEN = 8
        class Net:
            def width(self):
                return HIDDEN * 2
            @classmethod
            def make(cls):
                return Net()  # reads its own class: no endless loop
    """)
    before = digest(ns["Net"])
    ns["HIDDEN"] = 16
    assert digest(ns["Net"]) != before


def test_recursive_functions_are_described_not_looped():
    ns = _notebook("""
        def even(n):
            return n == 0 or odd(n - 1)
        def odd(n):
            return n != 0 and even(n - 1)
    """)
    assert digest(ns["even"]) == digest(ns["even"])


def test_a_global_that_cannot_be_fingerprinted_is_warned_about_once(recwarn):
    from dvl_jupyter.valuation.cache import CacheWarning

    ns = _notebook("""
        import threading
        LOCK_FOR_THE_WARNING_TEST = threading.Lock()
        def locked(m, x, y):
            with LOCK_FOR_THE_WARNING_TEST:
                return 1.0
    """)
    with pytest.warns(CacheWarning) as record:
        first = digest(ns["locked"])
        digest(ns["locked"])  # again (a run digests its utility several times): no warning
    (warning,) = record
    text = str(warning.message)
    assert "global 'LOCK_FOR_THE_WARNING_TEST'" in text and "locked reads" in text
    assert "--no-cache" in text and "cache_key" in text
    assert warning.filename == __file__  # the caller's line, not the engine's
    ns["LOCK_FOR_THE_WARNING_TEST"] = __import__("threading").Lock()
    assert digest(ns["locked"]) == first  # what it cannot see it cannot tell apart


def test_cache_key_is_part_of_the_utility_key(data):
    train, test = data
    scorer = SupervisedScorer("accuracy", test)

    def key(**kw):
        return ModelUtility(LogisticRegression(), scorer, **kw).with_dataset(train).fingerprint()

    assert key() == key(cache_key=None)
    assert key(cache_key="v2") != key() and key(cache_key="v2") != key(cache_key="v3")
    with pytest.raises(TypeError, match="cache_key must be a str"):
        key(cache_key=2)


def test_modules_count_by_name_and_version():
    assert describe(np) == {"__dvl__": "module", "name": "numpy", "version": np.__version__}
    assert describe(textwrap)["version"] == f"python-{sys.version.split()[0]}"  # no __version__
