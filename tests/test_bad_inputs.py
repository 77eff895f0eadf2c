"""Bad input through the magics, as a new user types it, in a real IPython shell.

One table, one row per mistake: each must end in at most three lines (no traceback), name its
culprit (the option, the setting, the user's own function, the step that failed), and lose
nothing (the notebook's variables are untouched, the cache keeps every value it had, a run
that fails midway keeps its partial result). The rows cover every class of issue 15:

- the user's own code failing (a utility or scoring function that raises or returns no
  number, a model whose fit fails, ``default='abc'``);
- third parties reached through options (``--backend ray`` without ray, an unreachable
  ``--scheduler``);
- NaN and infinities, never values (an error, or counted failures with one warning);
- the right culprit (fitting on the whole training set, or scoring it on the test set);
- the fast path with sklearn's probability scorers (a skorch net: they simply work);
- quoting (``--cache "my cache dir"``, ``{var}`` expansion);
- stale results from the cache (a scoring function reading a notebook global);
- run records and a damaged cache (``%shapley_cache``: show, clear, load);
- one-class subsets (no warning; counted, and said once) and a run with no permutation done;
- and the mistakes the magic already handled (``tests/test_magics.py``).

A subset runs again in a real kernel (``test_in_a_real_kernel``), and a run killed with
SIGKILL lists as "interrupted" (``test_a_killed_run_lists_as_interrupted``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from dvl_jupyter.magics import ShapleyMagics
from dvl_jupyter.valuation.cache import UtilityCache
from dvl_jupyter.valuation.exceptions import UserCodeError

SETUP = """
import numpy as np
import threading
from sklearn.tree import DecisionTreeClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC
_rng = np.random.default_rng(0)
X = _rng.normal(size=(40, 3))
y = (X[:, 0] + 0.3 * _rng.normal(size=40) > 0).astype(int)
train, test = (X[:30], y[:30]), (X[30:], y[30:])
model = DecisionTreeClassifier(random_state=0)
test5 = (np.zeros((10, 5)), y[30:])
one_class_train = (X[:30], np.zeros(30, dtype=int))

class BrokenFit(DecisionTreeClassifier):
    def fit(self, x, y):
        raise RuntimeError("the fit is broken")

class BrokenPredict(DecisionTreeClassifier):
    def predict(self, x):
        raise RuntimeError("the predict is broken")

class FailsOnSmall(DecisionTreeClassifier):
    def fit(self, x, y):
        if len(x) < 4:
            raise RuntimeError("too few points")
        return super().fit(x, y)

WEIGHT = 1.0
def weighted_accuracy(m, x, y):
    return WEIGHT * float(np.mean(m.predict(x) == y))

LOCK = threading.Lock()
def locked_accuracy(m, x, y):
    with LOCK:
        return float(np.mean(m.predict(x) == y))

calls = [0]
def fails_midway(subset):
    calls[0] += 1
    if calls[0] > 300:  # 8 permutations of 30 points are done after 242
        raise RuntimeError("gave up midway")
    return float(len(subset))

stops_early = [0]
def interrupted_at_once(subset):
    stops_early[0] += 1
    if stops_early[0] > 3:
        raise KeyboardInterrupt
    return float(len(subset))
"""
#: The notebook's variables each row must leave as they were.
KEPT = ("X", "y", "train", "test", "model", "WEIGHT", "test5")
#: The options every running row adds: small, quiet and fast.
RUN = "--seed 1 --show none"
BODY = "model = model\ntrain, test = train, test\nstopping = MinUpdates(2)\n"


@dataclass
class Ctx:
    """What a row's setup and check see."""

    ip: InteractiveShell
    tmp: Path
    cache: Path
    monkeypatch: pytest.MonkeyPatch
    out: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Case:
    """One mistake: the cell, what the lines must name, and how the cell ends."""

    id: str
    cell: str | Callable[[Ctx], str]
    culprit: tuple[str, ...]
    error: type[BaseException] | None = UsageError  # None: the cell completes
    setup: Callable[[Ctx], None] | None = None
    check: Callable[[Ctx], None] | None = None
    keeps_cache: bool = True  # the cache keeps every value it had (not for clear)
    max_lines: int = 3


def cell(body: str = BODY, line: str = "", out: str = "r") -> str:
    return f"%%shapley -o {out} {RUN} {line}\n{body}"


def body(**settings: str) -> str:
    lines = {"model": "model", "train, test": "train, test", "stopping": "MinUpdates(2)"}
    lines.update({k.replace("__", ", "): v for k, v in settings.items()})
    return "".join(f"{k} = {v}\n" for k, v in lines.items() if v is not None)


# -- rows' helpers ------------------------------------------------------------------------
def _values_in(directory: Path) -> int:
    if not (directory / "cache.db").exists():
        return 0
    with UtilityCache(directory, quiet=True) as c:
        return len(c)


def _garbage_mid_file(ctx: Ctx) -> None:
    """246 more values, then garbage over the middle of the file (issue 15's listing showed
    "246 cached values" and no damage, and reads served wrong numbers)."""
    rng = np.random.default_rng(0)
    with UtilityCache(ctx.cache) as c:
        c.set_many("f" * 64, [rng.permutation(100)[:k] for k in range(1, 247)],
                   np.arange(246.0))
    db = ctx.cache / "cache.db"
    size = db.stat().st_size
    with open(db, "r+b") as f:  # the same garbage every time: SQLite reads past it silently
        f.seek(size // 2)
        f.write(np.random.default_rng(0).bytes(4096))


def _garbage_header(ctx: Ctx) -> None:
    with open(ctx.cache / "cache.db", "r+b") as f:
        f.write(b"this is not a database" * 10)


FAKE_ID = "20260101-120000-abcdef"


def _manifest(ctx: Ctx, run_id: str = FAKE_ID, **extra: Any) -> Path:
    runs = ctx.cache / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    manifest = {"format": "dvl_jupyter.run", "version": 1, "run_id": run_id,
                "status": "finished", "started_unix": 1.0, **extra}
    path = runs / f"{run_id}.json"
    path.write_text(json.dumps(manifest))
    return path


class _Booby:
    """Unpickling it would create a marker file: proof that a pickle ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _planted_pickle(ctx: Ctx) -> None:
    _manifest(ctx)
    marker = ctx.tmp / "pickle-ran"
    arrays = {"values": np.array([_Booby(str(marker))], dtype=object)}
    with open(ctx.cache / "runs" / f"{FAKE_ID}.npz", "wb") as f:
        np.savez(f, **arrays, allow_pickle=True)


def _no_pickle_ran(ctx: Ctx) -> None:
    assert not (ctx.tmp / "pickle-ran").exists()


def _garbage_npz(ctx: Ctx) -> None:
    _manifest(ctx)
    (ctx.cache / "runs" / f"{FAKE_ID}.npz").write_bytes(b"PK\x03\x04 garbage" * 50)


def _damaged_manifest(ctx: Ctx) -> None:
    runs = ctx.cache / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / f"{FAKE_ID}.json").write_text('{"format": "dvl_jupyter.run", "run_id": ')


def _dead_run(ctx: Ctx) -> None:
    """A manifest left "running" by a process that is gone (it ran and exited)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    import socket

    _manifest(ctx, status="running", process={"host": socket.gethostname(),
                                             "pid": int(child.stdout), "pid_start": "1"})


def _dir_named(name: str) -> Callable[[Ctx], None]:
    def check(ctx: Ctx) -> None:
        made = ctx.tmp / name
        assert made.is_dir(), sorted(p.name for p in ctx.tmp.iterdir())
        assert _values_in(made) > 0
        assert not any(c in p.name for p in ctx.tmp.iterdir() for c in "\"'{}")
    return check


def _meta(name: str, key: str, test: Callable[[Any], bool]) -> Callable[[Ctx], None]:
    def check(ctx: Ctx) -> None:
        value = ctx.ip.user_ns[name].meta.get(key)
        assert test(value), (key, value)
    return check


def _all(*checks: Callable[[Ctx], Any]) -> Callable[[Ctx], None]:
    def check(ctx: Ctx) -> None:
        for i, c in enumerate(checks):
            assert c(ctx) is not False, f"check {i}"
    return check


def _shown_text(ctx: Ctx) -> str:
    return " ".join(str(o.get("text/plain", "")) for o in ctx.outputs)


def _slow_timeout(ctx: Ctx) -> None:
    import dvl_jupyter.runner as runner

    ctx.monkeypatch.setattr(runner, "CONNECT_TIMEOUT", 0.5)


def _set(name: str, value: Any) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        ctx.ip.user_ns[name] = value
    return setup


def _stale_global(ctx: Ctx) -> None:
    """Run once with WEIGHT = 1, then change the global the scoring function reads."""
    res, _ = run(ctx.ip, cell(body(scoring="weighted_accuracy"), out="before"))
    assert res.error_in_exec is None
    ctx.ip.user_ns["WEIGHT"] = 0.5


def _recomputed(ctx: Ctx) -> None:
    ctx.ip.user_ns["WEIGHT"] = 1.0  # put back: KEPT checks it
    before, after = ctx.ip.user_ns["before"], ctx.ip.user_ns["r"]
    assert after.meta["evaluations"] > 0, "served from the cache after WEIGHT changed"
    assert after.meta["total_utility"] == pytest.approx(0.5 * before.meta["total_utility"])


def _cache_key_rerun(ctx: Ctx) -> None:
    res, _ = run(ctx.ip, cell(out="before"))
    assert res.error_in_exec is None


def _counts_reset(name: str) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        ctx.ip.user_ns[name][0] = 0
    return setup


SKORCH = """
import torch
from torch import nn
from skorch import NeuralNetClassifier
class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)
    def forward(self, x):
        return self.lin(x)
net = NeuralNetClassifier(_Tiny, criterion=nn.CrossEntropyLoss, max_epochs=2, lr=0.1,
                          batch_size=16, train_split=None, verbose=False)
ftrain = (X[:30].astype(np.float32), y[:30])
ftest = (X[30:].astype(np.float32), y[30:])
"""


def _skorch(ctx: Ctx) -> None:
    res, _ = run(ctx.ip, SKORCH)
    assert res.error_in_exec is None


def _fast_path_values(ctx: Ctx) -> None:
    result = ctx.ip.user_ns["r"]
    assert result.meta["path"].startswith("fast path"), result.meta["path"]
    assert result.meta["failed_fits"] == 0 and np.isfinite(result.values).all()


# -- the table ----------------------------------------------------------------------------
CASES = [
    # the user's own code: named, in one line
    Case("utility-returns-none", cell("utility = lambda s: None\ntrain = train\n"
                                      "stopping = MinUpdates(2)\n"),
         ("utility function '<lambda>'", "NoneType None, not a number")),
    Case("utility-returns-array", cell("utility = lambda s: np.ones(2)\ntrain = train\n"
                                       "stopping = MinUpdates(2)\n"),
         ("utility function '<lambda>'", "ndarray", "not a number")),
    Case("utility-returns-str", cell("utility = lambda s: 'high'\ntrain = train\n"
                                     "stopping = MinUpdates(2)\n"),
         ("utility function '<lambda>'", "str 'high'")),
    Case("utility-raises", cell("def _u(s):\n    return 1 / 0\nutility = _u\ntrain = train\n"
                                "stopping = MinUpdates(2)\n"),
         ("utility function '_u' raised ZeroDivisionError", "--debug shows its traceback")),
    Case("utility-raises-on-the-full-set",
         cell("def _u(s):\n    if len(s) == 30:\n        raise ValueError('all of it')\n"
              "    return len(s)\nutility = _u\ntrain = train\nstopping = MinUpdates(2)\n"),
         ("whole training set (30 points)", "'_u' raised ValueError: all of it")),
    Case("utility-raises-midway-keeps-the-partial-result",
         cell("utility = fails_midway\ntrain = train\ntruncation = None\n"
              "stopping = MinUpdates(50)\n", out="partial"),
         ("'fails_midway' raised RuntimeError: gave up midway", "partial result",
          "in 'partial'"),
         setup=_counts_reset("calls"),
         check=_meta("partial", "permutations", lambda p: p >= 1)),
    Case("utility-not-callable", cell("utility = 42\ntrain = train\nstopping = MinUpdates(2)\n"),
         ("utility must be a ModelUtility or a callable", "int 42")),
    Case("scoring-function-raises", cell(body(scoring="lambda m, x, y: {}['missing']")),
         ("Scoring the model fitted on the whole training set",
          "scoring function '<lambda>' raised KeyError")),
    Case("scoring-function-returns-none", cell(body(scoring="lambda m, x, y: None")),
         ("scoring function '<lambda>'", "NoneType None, not a number")),
    Case("scoring-function-returns-str", cell(body(scoring="lambda m, x, y: 'good'")),
         ("scoring function '<lambda>'", "str 'good'")),
    Case("default-str", cell(body(default="'abc'")), ("default must be a finite number",
                                                      "str 'abc'")),
    Case("default-none", cell(body(default="None")), ("default",)),
    Case("range-str", cell(body(range="'abc'")), ("range must be",)),
    Case("range-reversed", cell(body(range="(1, 0)")), ("range must be", "low <= high")),
    Case("model-whose-fit-raises", cell(body(model="BrokenFit()")),
         ("Fitting the model on the whole training set (30 points) failed",
          "BrokenFit.fit raised RuntimeError: the fit is broken")),
    Case("model-whose-predict-raises", cell(body(model="BrokenPredict()")),
         ("Scoring the model fitted on the whole training set", "scoring 'accuracy'",
          "RuntimeError: the predict is broken")),
    Case("fails-on-small-subsets-counted-once", cell(body(model="FailsOnSmall()")),
         ("FailedFitsWarning", "FailsOnSmall.fit raised RuntimeError: too few points",
          "--debug"), error=None,
         check=_meta("r", "failed_fits", lambda n: n > 0)),
    # third parties reached through options
    Case("backend-ray-without-ray", cell(line="--backend ray"),
         ("backend 'ray' needs the ray package", "pip install")),
    Case("scheduler-unreachable", cell(line="--backend dask --scheduler tcp://127.0.0.1:1"),
         ("scheduler 'tcp://127.0.0.1:1'", "within 0.5 s", "Check the address"),
         setup=_slow_timeout),
    Case("scheduler-malformed", cell(line="--backend dask --scheduler nowhere"),
         ("scheduler 'nowhere'", "missing port")),
    Case("scheduler-without-dask", cell(line="--scheduler tcp://127.0.0.1:8786"),
         ("scheduler", "backend 'dask'", "--backend dask")),
    Case("backend-dask-without-a-cluster", cell(line="--backend dask"),
         ("backend 'dask' needs a cluster", "--scheduler")),
    Case("backend-unknown", cell(line="--backend spark"),
         ("backend must be one of", "'spark'")),
    # NaN and infinities are never values
    Case("scoring-nan-everywhere", cell(body(scoring="lambda m, x, y: float('nan')")),
         ("Scoring the model fitted on the whole training set", "gave nan")),
    Case("scoring-nan-on-one-class-fits",
         cell(body(scoring="lambda m, x, y: float('nan') if len(m.classes_) < 2 else 1.0")),
         ("FailedFitsWarning", "gave no finite number", "gave nan"), error=None,
         check=_meta("r", "non_finite", lambda n: n > 0)),
    Case("scoring-inf", cell(body(scoring="lambda m, x, y: float('inf')")),
         ("whole training set", "gave inf")),
    Case("utility-nan-everywhere", cell("utility = lambda s: float('nan')\ntrain = train\n"
                                        "stopping = MinUpdates(2)\n"),
         ("utility function '<lambda>' gave nan",)),
    Case("utility-nan-sometimes",
         cell("utility = lambda s: float('nan') if len(s) == 3 else float(len(s))\n"
              "train = train\nstopping = MinUpdates(2)\n"),
         ("FailedFitsWarning", "gave nan"), error=None,
         check=_meta("r", "non_finite", lambda n: n > 0)),
    Case("default-nan", cell(body(default="float('nan')")),
         ("default must be a finite number", "nan")),
    Case("default-inf", cell(body(default="np.inf")), ("default must be a finite number",)),
    Case("range-nan", cell(body(range="(float('nan'), 1)")), ("range must be",)),
    # the right culprit: which step failed
    Case("probability-scorer-without-predict-proba",
         cell(body(model="SVC()", scoring="'neg_log_loss'")),
         ("Scoring the model fitted on the whole training set", "scoring 'neg_log_loss'",
          "predict_proba")),
    Case("test-set-with-other-features", cell(body(**{"train__test": "train, test5"})),
         ("test data have 5 features per point, the training data 3",)),
    Case("roc-auc-on-a-tree-works", cell(body(scoring="'roc_auc'")), (), error=None,
         check=_meta("r", "failed_fits", lambda n: n == 0)),
    # the fast path: sklearn's probability scorers work on a skorch net
    Case("fast-path-neg-log-loss",
         cell("model = net\ntrain, test = ftrain, ftest\nscoring = 'neg_log_loss'\n"
              "stopping = MinUpdates(2)\n"), (), error=None, setup=_skorch,
         check=_fast_path_values),
    Case("fast-path-roc-auc-ovr",
         cell("model = net\ntrain, test = ftrain, ftest\nscoring = 'roc_auc_ovr'\n"
              "stopping = MinUpdates(2)\n"), (), error=None, setup=_skorch,
         check=_fast_path_values),
    Case("fast-path-neg-brier-score",
         cell("model = net\ntrain, test = ftrain, ftest\nscoring = 'neg_brier_score'\n"
              "stopping = MinUpdates(2)\n"), (), error=None, setup=_skorch,
         check=_fast_path_values),

    Case("fast-path-required-for-a-tree", cell(line="--batched on"),
         ("batched=True", "DecisionTreeClassifier is not a skorch net")),
    # quoting: options as a shell splits them
    Case("cache-double-quoted", lambda c: cell(line=f'--cache "{c.tmp}/my cache dir"'), (),
         error=None, check=_dir_named("my cache dir")),
    Case("cache-single-quoted-unicode",
         lambda c: cell(line=f"--cache '{c.tmp}/my cache ü ☃'"), (), error=None,
         check=_dir_named("my cache ü ☃")),
    Case("cache-from-a-variable", lambda c: cell(line="--cache {_where}"), (), error=None,
         setup=lambda c: _set("_where", str(c.tmp / "from-var"))(c),
         check=_dir_named("from-var")),
    Case("cache-from-a-quoted-variable", lambda c: cell(line='--cache "{_where}"'), (),
         error=None, setup=lambda c: _set("_where", str(c.tmp / "from var"))(c),
         check=_dir_named("from var")),
    Case("unclosed-quote", cell(line='--cache "nowhere'),
         ("No closing quotation", "quote a value with spaces")),
    Case("quoted-output-name", cell(out='"quoted"'), (), error=None,
         check=lambda c: c.ip.user_ns["quoted"].meta["ended"] == "done"),
    # stale results from the cache
    Case("global-read-by-the-scorer-changed", cell(body(scoring="weighted_accuracy")), (),
         error=None, setup=_stale_global, check=_recomputed),
    Case("global-the-key-cannot-see", cell(body(scoring="locked_accuracy")),
         ("CacheWarning", "global 'LOCK'", "--no-cache", "cache_key"), error=None),
    Case("cache-key-recomputes", cell(line="--cache-key v2"), (), error=None,
         setup=_cache_key_rerun,
         check=_meta("r", "evaluations", lambda n: n > 0)),
    # run records and a damaged cache
    Case("show-mid-file-garbage", "%shapley_cache", ("damaged", "%shapley_cache clear"),
         error=None, setup=_garbage_mid_file, keeps_cache=False),
    Case("show-garbage-header", "%shapley_cache", ("damaged",), error=None,
         setup=_garbage_header, keeps_cache=False),
    Case("clear-a-damaged-cache", "%shapley_cache clear",
         ("damaged cache file (its values could not be counted)",), error=None,
         setup=_garbage_mid_file, keeps_cache=False,
         check=lambda c: "-1 cached" not in c.out),
    Case("run-on-a-damaged-cache", cell(), ("CacheWarning", "damaged", "%shapley_cache clear"),
         error=None, setup=_garbage_mid_file, keeps_cache=False,
         check=lambda c: "this run goes on" not in c.out),
    Case("load-a-planted-pickle", f"%shapley_cache load {FAKE_ID} -o loaded",
         (FAKE_ID, "damaged or was not written by dvl_jupyter", "nothing is ever unpickled"),
         setup=_planted_pickle, check=_no_pickle_ran),
    Case("load-a-garbage-file", f"%shapley_cache load {FAKE_ID} -o loaded",
         (FAKE_ID, "damaged or was not written by dvl_jupyter"), setup=_garbage_npz),
    Case("load-with-a-damaged-record", f"%shapley_cache load {FAKE_ID} -o loaded",
         (FAKE_ID,), setup=_damaged_manifest),
    Case("show-a-damaged-record", "%shapley_cache", ("1 run record cannot be read",),
         error=None, setup=_damaged_manifest),
    Case("show-a-dead-run", "%shapley_cache", (), error=None, setup=_dead_run,
         check=lambda c: FAKE_ID in _shown_text(c) and re.search(
             rf"{FAKE_ID}.*interrupted", _shown_text(c)) is not None),
    Case("load-unknown-run", "%shapley_cache load 20990101-000000-000000 -o x",
         ("no such run",)),
    Case("cache-show-quoted-dir", lambda c: f'%shapley_cache --cache "{c.tmp}/no such dir"',
         (), error=None, check=lambda c: "no such dir" in _shown_text(c)
         and '"' not in _shown_text(c)),
    # one-class subsets: counted and said once, no warning
    Case("one-class-subsets-no-warning", cell(body(model="LogisticRegression()")), (),
         error=None, check=_all(_meta("r", "one_class_subsets", lambda n: n > 0),
                                _meta("r", "failed_fits", lambda n: n == 0),
                                lambda c: "single class" in c.ip.user_ns["r"].meta["notes"][0],
                                lambda c: "single class" in repr_text(c, "r"))),
    Case("one-class-training-set", cell(body(model="LogisticRegression()",
                                             **{"train__test": "one_class_train, test"})),
         ("training set has a single class",)),
    # a run with no permutation done
    Case("interrupted-before-any-permutation",
         cell("utility = interrupted_at_once\ntrain = train\nstopping = MinUpdates(5)\n",
              line="--show auto", out="nothing"),
         ("no value was estimated yet",), error=KeyboardInterrupt,
         setup=_counts_reset("stops_early"),
         check=lambda c: "No value was estimated yet" in repr_text(c, "nothing")),
    # the mistakes the magic already named (tests/test_magics.py)
    Case("missing-variable-line", "%shapley model train tst -o r", ("'tst'",)),
    Case("missing-variable-body", "%%shapley -o r\nmodel = modle\ntrain, test = train, test",
         ("'modle'",)),
    Case("unknown-option", "%shapley model train test --jobz 2", ("--jobz",)),
    Case("bad-choice", "%shapley model train test --show pie", ("pie",)),
    Case("unknown-setting", cell(BODY + "stoping = MinUpdates(2)\n"), ("'stoping'",)),
    Case("model-is-a-str", cell(body(model="'abc'")), ("model",)),
    Case("model-is-an-array", cell(body(model="np.ones(3)")), ("model",)),
    Case("train-is-a-list", cell(body(**{"train__test": "[1, 2, 3], test"})), ("train",)),
    Case("test-is-a-file-name", cell(body(**{"train__test": "train, 'data.csv'"})),
         ("test",)),
    Case("scoring-misspelt", cell(body(scoring="'acuracy'")), ("'accuracy'",)),
    Case("stopping-is-a-number", cell(body(stopping="100")), ("stopping",)),
    Case("stopping-is-the-class", cell(body(stopping="MinUpdates")),
         ("stopping", "the class MinUpdates itself")),
    Case("syntax-error", "%%shapley -o r\nmodel = model\nstopping = MinUpdates(",
         ("syntax error",)),
    Case("output-name-not-an-identifier", "%%shapley -o 1r\nmodel = model", ("'1r'",)),
    Case("empty-cell", "%%shapley\n", ("empty",)),
    Case("line-form-two-names", "%shapley model train", ("three variables",)),
    Case("load-without-run-id", "%shapley_cache load", ("RUN_ID",)),
    Case("load-malformed-run-id", "%shapley_cache load 123 -o r", ("'123'",)),
    Case("jobs-zero", cell(line="-j 0"), ("jobs must be a positive integer or -1",)),
    Case("jobs-not-a-number", cell(line="--jobs two"), ("jobs", "'two'")),
    Case("seed-negative", cell(line="--seed -3"), ("seed",)),
    Case("truncation-a-number", cell(body(truncation="0.5")), ("truncation",)),
    Case("lengths-differ", cell(body(**{"train__test": "(X[:30], y[:20]), test"})),
         ("same length",)),
    Case("method-unknown", cell(body(method="'shapely'")), ("method",)),
    Case("fast-path-for-a-function", cell("utility = lambda s: 1.0\ntrain = train\n"
                                          "stopping = MinUpdates(2)\n", line="--batched on"),
         ("batched=True", "plain function")),
]


def repr_text(ctx: Ctx, name: str) -> str:
    from dvl_jupyter.display import result_text

    return result_text(ctx.ip.user_ns[name])


# -- the shell ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ip():
    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext dvl_jupyter", store_history=False)
    res = shell.run_cell(SETUP, store_history=False)
    assert res.error_in_exec is None
    yield shell
    shell.run_cell("%unload_ext dvl_jupyter", store_history=False)


@pytest.fixture(scope="module")
def filled_cache(ip, tmp_path_factory):
    """A cache with the values of one run, copied for each row (which must keep them)."""
    directory = tmp_path_factory.mktemp("filled") / "cache"
    res, cap = run(ip, f"%%shapley -o _base {RUN} --cache {directory} --no-progress\n{BODY}")
    assert res.error_in_exec is None, cap.stderr
    assert _values_in(directory) > 0
    return directory


@pytest.fixture
def magics(ip):
    (instance,) = [c for c in ip.configurables if isinstance(c, ShapleyMagics)]
    saved = {name: getattr(instance, name) for name in instance.trait_names()
             if instance.trait_metadata(name, "config")}
    yield instance
    for name, value in saved.items():
        setattr(instance, name, value)


def run(ip, code):
    """Run a cell as in a notebook: warnings are printed, once each (pytest makes them
    errors, which a notebook never does)."""
    with capture_output() as cap, warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _print_warning
        res = ip.run_cell(code, store_history=False)
    return res, cap


def _print_warning(message, category, filename, lineno, file=None, line=None):
    """Python's own display of a warning (pytest's recorder would swallow it)."""
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def lines_of(cap) -> list[str]:
    """The non-empty lines the shell printed (errors, warnings, prints), without colour."""
    text = _ANSI.sub("", cap.stderr + cap.stdout)
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_mistake_is_at_most_three_lines_naming_its_culprit(ip, magics, filled_cache,
                                                             tmp_path, monkeypatch, case):
    cache = tmp_path / "cache"
    shutil.copytree(filled_cache, cache)
    before = _values_in(cache)
    magics.cache_dir = str(cache)
    magics.progress = False
    ctx = Ctx(ip, tmp_path, cache, monkeypatch)
    if case.setup is not None:
        case.setup(ctx)
    kept = {name: ip.user_ns[name] for name in KEPT}
    code = case.cell(ctx) if callable(case.cell) else case.cell
    res, cap = run(ip, code)

    shown = lines_of(cap)  # what went wrong: errors and warnings, at most three lines
    ctx.out, ctx.outputs = "\n".join(shown), [o.data for o in cap.outputs]
    said = ctx.out + "\n" + _shown_text(ctx)  # and what was displayed (%shapley_cache)
    error = res.error_in_exec
    if case.error is None:
        assert error is None, (error, shown)
    else:
        assert isinstance(error, case.error) and not isinstance(error, UserCodeError), (
            error, shown)
    assert len(shown) <= case.max_lines, shown
    assert "Traceback" not in ctx.out, shown
    for culprit in case.culprit:
        assert culprit in said, (culprit, shown, _shown_text(ctx))
    assert ".." not in ctx.out.replace("...", ""), shown  # no double periods
    # nothing lost: the notebook's variables, and every cached value
    for name, value in kept.items():
        assert ip.user_ns[name] is value, name
    if case.keeps_cache:
        assert _values_in(cache) >= before
    if case.check is not None:
        assert case.check(ctx) is not False  # a check may assert, or return a bool


def test_the_table_covers_every_class_and_more_than_sixty_mistakes():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


# -- --debug: the user's own traceback ------------------------------------------------------
def test_debug_shows_the_users_traceback_not_the_engines(ip, magics, tmp_path):
    magics.cache_dir = str(tmp_path / "cache")
    magics.progress = False
    res, cap = run(ip, cell("def _fails(s):\n    return {}['missing']\nutility = _fails\n"
                            "train = train\nstopping = MinUpdates(2)\n", line="--debug"))
    assert isinstance(res.error_in_exec, UserCodeError)
    text = _ANSI.sub("", cap.stdout + cap.stderr)
    assert "in _fails" in text and "KeyError: 'missing'" in text
    assert "dvl_jupyter" not in text  # no engine frame
    assert "utility function '_fails' raised KeyError" in text


def test_debug_stops_at_the_first_failing_fit_with_its_traceback(ip, magics, tmp_path):
    """--debug means catch_errors=False: the advice of the warning can be followed."""
    magics.cache_dir = str(tmp_path / "cache")
    magics.progress = False
    res, cap = run(ip, cell(body(model="FailsOnSmall()"), line="--debug"))
    error = res.error_in_exec
    assert isinstance(error, UserCodeError) and error.step == "fit"
    assert "FailsOnSmall.fit raised RuntimeError: too few points" in str(error)
    text = _ANSI.sub("", cap.stdout + cap.stderr)
    assert "in fit" in text and "too few points" in text


# -- a real kernel --------------------------------------------------------------------------
KERNEL_CASES = ["utility-raises", "backend-ray-without-ray", "scoring-nan-everywhere",
                "probability-scorer-without-predict-proba", "cache-double-quoted",
                "load-a-garbage-file", "one-class-subsets-no-warning", "default-str",
                "unknown-option"]


@pytest.mark.slow
def test_in_a_real_kernel(tmp_path):
    """The same rows through a kernel (what a notebook's frontend receives): at most three
    lines of stream and error output, the culprit named."""
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=120, cwd=str(tmp_path),
                              env=env)
    try:
        def execute(code: str) -> tuple[str, list[str]]:
            out: list[str] = []

            def hook(msg):
                if msg["msg_type"] == "stream":
                    out.append(msg["content"]["text"])
                elif msg["msg_type"] == "error":
                    out.append("\n".join(msg["content"]["traceback"]))

            reply = kc.execute_interactive(code, timeout=180, output_hook=hook)
            text = _ANSI.sub("", "".join(out))
            return reply["content"]["status"], [ln for ln in text.splitlines() if ln.strip()]

        status, out = execute("%load_ext dvl_jupyter\n" + SETUP + "\n%config "
                              f"ShapleyMagics.cache_dir = {str(tmp_path / 'cache')!r}")
        assert status == "ok", out
        status, out = execute(f"%%shapley -o _base {RUN} --no-progress\n{BODY}")
        assert status == "ok", out
        status, out = execute("%config ShapleyMagics.progress = False")
        by_id = {c.id: c for c in CASES}
        for name in KERNEL_CASES:
            case = by_id[name]
            if case.setup is _planted_pickle or case.setup is _garbage_npz:
                case.setup(Ctx(None, tmp_path, tmp_path / "cache", None))  # type: ignore[arg-type]
            code = case.cell(Ctx(None, tmp_path, tmp_path / "cache", None)) if callable(
                case.cell) else case.cell  # type: ignore[arg-type]
            status, out = execute(code)
            assert status == ("ok" if case.error is None else "error"), (name, out)
            assert len(out) <= 3, (name, out)
            assert "Traceback" not in "\n".join(out), (name, out)
            for culprit in case.culprit:
                assert culprit in "\n".join(out), (name, culprit, out)
        status, out = execute("print(sorted(k for k in ('X', 'train', 'model') if k in globals()))")
        assert out == ["['X', 'model', 'train']"], out
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


# -- run records: a killed run -------------------------------------------------------------
_KILLED = """
import numpy as np
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_cell("%load_ext dvl_jupyter")
ip.user_ns["train"] = (np.zeros((30, 2)), np.zeros(30))
ip.user_ns["_slow"] = lambda s: __import__("time").sleep(0.05) or float(len(s))
ip.run_cell(
    "%%shapley -o r --no-progress --cache {cache}\\n"
    "utility = _slow\\ntrain = train\\nstopping = MinUpdates(10**6)\\n"
)
"""


@pytest.mark.slow
def test_a_killed_run_lists_as_interrupted(ip, magics, tmp_path):
    """SIGKILL leaves the record "running"; %shapley_cache sees the process is gone."""
    cache = tmp_path / "cache"
    # a function utility is not cached, but the run is recorded: give it a cache directory
    child = subprocess.Popen([sys.executable, "-c", _KILLED.format(cache=cache)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        runs = cache / "runs"
        while not (runs.is_dir() and list(runs.glob("*.json"))):
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        (record,) = runs.glob("*.json")
        assert json.loads(record.read_text())["status"] == "running"
        magics.cache_dir = str(cache)
        _, cap = run(ip, "%shapley_cache")
        assert " running " in cap.outputs[0].data["text/plain"]  # alive: still running
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert json.loads(record.read_text())["status"] == "running"  # nothing wrote its end
    _, cap = run(ip, "%shapley_cache")
    text = cap.outputs[0].data["text/plain"]
    row = [line for line in text.splitlines() if record.stem in line]
    assert len(row) == 1 and " interrupted " in row[0] + " ", text
    assert record.stem in cap.outputs[0].data["text/html"]
    assert "interrupted" in cap.outputs[0].data["text/html"]
