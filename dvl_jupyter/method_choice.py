"""Which valuation method a run uses: short names, and the run settings each method reads.

A run configuration names its method as a short name (``"tmc"``, ``"knn"``, ``"data-oob"``,
``"banzhaf"``, ``"beta(4,1)"``, ``"loo"``) or as a method object
(``DataOOBValuation(n_estimators=100)``), whose missing parts (the model, the utility, the
test data, the stopping criterion) come from the other settings. Each method reads some of
the run's settings and not others: a setting it does not use is an error that says so, rather
than a silent no-op (``truncation`` means nothing to Data-OOB).

:func:`build_method` turns a :class:`~dvl_jupyter.config.RunConfig` into a ready method.
Nothing here imports IPython or ipywidgets.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .valuation import (
    BetaShapleyValuation,
    DataOOBValuation,
    KNNShapleyValuation,
    LOOValuation,
    MinUpdates,
    MSRBanzhafValuation,
    RelativeTruncation,
    TMCShapleyValuation,
    ValuationCallback,
    ValuationMethod,
)
from .valuation.exceptions import DvlParameterError, DvlValueError, describe_value
from .valuation.methods.beta_shapley import ALPHA, BETA, DEFAULT_ALPHA, DEFAULT_BETA
from .valuation.params import check_param

if TYPE_CHECKING:
    from .config import RunConfig

__all__ = ["METHODS", "MethodContext", "MethodEntry", "build_method", "method_entry",
           "parse_method", "register"]

#: The run settings a valuation method reads (the others are about running it: the data,
#: jobs, backend, cache): a method that does not read one of these refuses it when it is set.
#: ``seed`` and ``batched`` are not among them: a method that draws nothing or trains nothing
#: has nothing to seed or to batch, and notebooks set them once for every run (``%config``).
METHOD_SETTINGS = frozenset({"model", "utility", "test", "scoring", "default", "range",
                             "truncation", "stopping", "coupled_training"})
#: Run settings every method that trains a model on subsets reads.
_MODEL_SETTINGS = frozenset({"model", "utility", "test", "scoring", "default", "range",
                             "batched", "coupled_training"})


@dataclass
class MethodContext:
    """What a method is built from: the run's settings, the short name's arguments, and the
    run's parts (the utility, made on demand; the cache directory; the progress views)."""

    config: RunConfig
    params: dict[str, Any]
    utility: Callable[[], Any]
    cache: Any
    callbacks: list[ValuationCallback]


@dataclass(frozen=True)
class MethodEntry:
    """One method: its short name, its class, and the run settings it reads."""

    name: str
    cls: type
    uses: frozenset[str]
    #: ``build(context) -> method`` for a short name.
    build: Callable[[MethodContext], ValuationMethod]
    #: ``complete(method, context)``: fill what a method object left out.
    complete: Callable[[Any, MethodContext], None]
    summary: str
    #: ``parse(spec, args) -> params`` for a short name with arguments (``"beta(4,1)"``).
    parse: Callable[[str, str], dict[str, Any]] | None = None

    @property
    def algorithm(self) -> str:
        return getattr(self.cls, "algorithm", self.cls.__name__)


# -- TMC ------------------------------------------------------------------------------------------
def _tmc_defaults(config: RunConfig) -> tuple[Any, Any]:
    truncation = (config.truncation if config.truncation is not None
                  else RelativeTruncation(rtol=0.05, burn_in_fraction=0.3))
    stopping = config.stopping if config.stopping is not None else MinUpdates(100)
    return truncation, stopping


def _build_tmc(ctx: MethodContext) -> ValuationMethod:
    truncation, stopping = _tmc_defaults(ctx.config)
    return TMCShapleyValuation(ctx.utility(), truncation=truncation, is_done=stopping,
                               seed=ctx.config.seed, batched=ctx.config.batched,
                               callbacks=ctx.callbacks)


def _complete_tmc(method: Any, ctx: MethodContext) -> None:
    config = ctx.config
    truncation, stopping = _tmc_defaults(config)
    if method.utility is None:
        method.utility = ctx.utility()
    _fill(method, "truncation", "truncation", config.truncation, truncation)
    _fill(method, "is_done", "stopping", config.stopping, stopping)
    _fill_seed_and_batched(method, config)


def _fill_seed_and_batched(method: Any, config: RunConfig) -> None:
    _fill(method, "seed", "--seed", config.seed, config.seed)
    method.batched = config.batched if method.batched == "auto" else method.batched


# -- KNN-Shapley ---------------------------------------------------------------------------------
#: K of the nearest-neighbour classifier when the run's model is not one.
KNN_DEFAULT_K = 5


def _knn_model(config: RunConfig) -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    if isinstance(config.model, KNeighborsClassifier):
        return config.model
    return KNeighborsClassifier(n_neighbors=KNN_DEFAULT_K)


def _build_knn(ctx: MethodContext) -> ValuationMethod:
    if ctx.config.test is None:
        raise DvlValueError("No test data: set `test = <Dataset or (x, y)>`: KNN-Shapley "
                            "values the training points by how they classify it.")
    return KNNShapleyValuation(_knn_model(ctx.config), ctx.config.test, callbacks=ctx.callbacks)


def _complete_knn(method: Any, ctx: MethodContext) -> None:
    """A KNNShapleyValuation object carries its model and test data already."""


# -- Data-OOB and LOO ------------------------------------------------------------------------------
#: Bags of the short name "data-oob" (the benchmark's; DataOOBValuation's own default is
#: pyDVL's 10): about 45 out-of-bag predictions per point.
OOB_DEFAULT_BAGS = 100


def _parse_oob(spec: str, args: str) -> dict[str, Any]:
    if not args.strip():
        return {}
    try:
        return {"n_estimators": int(args)}
    except ValueError:
        raise DvlParameterError(
            f"method {spec!r}: data-oob takes the number of bags, e.g. 'data-oob(100)'."
        ) from None


def _build_oob(ctx: MethodContext) -> ValuationMethod:
    config = ctx.config
    if config.model is None:
        raise DvlValueError("No model: set `model = <your estimator>` (Data-OOB bags it).")
    return DataOOBValuation(config.model,
                            n_estimators=ctx.params.get("n_estimators", OOB_DEFAULT_BAGS),
                            seed=config.seed, test_data=config.test, batched=config.batched,
                            cache=ctx.cache, callbacks=ctx.callbacks)


def _complete_oob(method: Any, ctx: MethodContext) -> None:
    config = ctx.config
    if method.model is None:
        if config.model is None:
            raise DvlValueError("No model: set `model = <your estimator>` (Data-OOB bags it).")
        method.model = config.model
    if getattr(method, "test_data", None) is None and config.test is not None:
        method.test_data = config.test
    if getattr(method, "cache", None) is None:
        method.cache = ctx.cache
    if not _is_fitted_ensemble(method.model):
        _fill_seed_and_batched(method, config)


def _is_fitted_ensemble(model: Any) -> bool:
    return hasattr(model, "estimators_") and hasattr(model, "estimators_samples_")


def _build_loo(ctx: MethodContext) -> ValuationMethod:
    return LOOValuation(ctx.utility(), batched=ctx.config.batched, callbacks=ctx.callbacks)


def _complete_loo(method: Any, ctx: MethodContext) -> None:
    if method.utility is None:
        method.utility = ctx.utility()
    method.batched = ctx.config.batched if method.batched == "auto" else method.batched


# -- the sampled semivalues: MSR-Banzhaf and Beta-Shapley --------------------------------------
#: Stopping of the short names when the run sets none: about as many fits as TMC's
#: MinUpdates(100) with truncation on a thousand points would train, within a factor of two.
#: MSR-Banzhaf: 500 samples on each side of every point (about 1,100 fits, whatever n);
#: Beta-Shapley: 20 marginals per point (40 n fits).
BANZHAF_DEFAULT_STOPPING = 500
BETA_DEFAULT_STOPPING = 20
_BETA_EXAMPLE = "e.g. 'beta(4,1)' or 'beta' for Beta(16,1)"


def _parse_beta(spec: str, args: str) -> dict[str, Any]:
    """``"beta"`` is Beta(16, 1) (Kwon & Zou's choice); ``"beta(a,b)"`` is Beta(a, b)."""
    if not args.strip():
        return {}
    parts = [p.strip() for p in args.split(",")]
    try:
        alpha, beta = (float(p) for p in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        alpha = beta = None
    if alpha is None or beta is None:
        raise DvlParameterError(
            f"method {spec!r}: beta takes two numbers, alpha and beta, {_BETA_EXAMPLE}; "
            f"got {args.strip()!r}."
        )
    check_param(f"alpha of method {spec!r}", alpha, ALPHA, "Use e.g. 'beta(4,1)'.")
    check_param(f"beta of method {spec!r}", beta, BETA, "Use e.g. 'beta(4,1)'.")
    return {"alpha": alpha, "beta": beta}


def _build_banzhaf(ctx: MethodContext) -> ValuationMethod:
    config = ctx.config
    stopping = config.stopping if config.stopping is not None \
        else MinUpdates(BANZHAF_DEFAULT_STOPPING)
    return MSRBanzhafValuation(ctx.utility(), is_done=stopping, seed=config.seed,
                               batched=config.batched, callbacks=ctx.callbacks)


def _build_beta(ctx: MethodContext) -> ValuationMethod:
    config = ctx.config
    stopping = config.stopping if config.stopping is not None \
        else MinUpdates(BETA_DEFAULT_STOPPING)
    return BetaShapleyValuation(ctx.utility(), is_done=stopping,
                                alpha=ctx.params.get("alpha", DEFAULT_ALPHA),
                                beta=ctx.params.get("beta", DEFAULT_BETA), seed=config.seed,
                                batched=config.batched, callbacks=ctx.callbacks)


def _semivalue_completer(default_updates: int) -> Callable[[Any, MethodContext], None]:
    def complete(method: Any, ctx: MethodContext) -> None:
        config = ctx.config
        if method.utility is None:
            method.utility = ctx.utility()
        _fill(method, "is_done", "stopping", config.stopping,
              config.stopping if config.stopping is not None else MinUpdates(default_updates))
        _fill_seed_and_batched(method, config)

    return complete


METHODS: dict[str, MethodEntry] = {}


def register(entry: MethodEntry) -> None:
    """Offer a method under its short name (in the magic, the panel and ``RunConfig``)."""
    METHODS[entry.name] = entry


register(MethodEntry(
    "tmc", TMCShapleyValuation, _MODEL_SETTINGS | {"truncation", "stopping", "seed"},
    _build_tmc, _complete_tmc,
    "Truncated Monte Carlo Shapley: marginal contributions along random permutations"))
register(MethodEntry(
    "knn", KNNShapleyValuation, frozenset({"model", "test"}), _build_knn, _complete_knn,
    "exact KNN-Shapley of a nearest-neighbour classifier on the features, in seconds"))
register(MethodEntry(
    "data-oob", DataOOBValuation, frozenset({"model", "test", "seed", "batched"}),
    _build_oob, _complete_oob,
    "Data-OOB: does a point's label agree with models bagged without it?", parse=_parse_oob))
register(MethodEntry(
    "banzhaf", MSRBanzhafValuation, _MODEL_SETTINGS | {"stopping", "seed"},
    _build_banzhaf, _semivalue_completer(BANZHAF_DEFAULT_STOPPING),
    "MSR-Banzhaf: every sampled subset (one fit) updates every point's Banzhaf value"))
register(MethodEntry(
    "beta", BetaShapleyValuation, _MODEL_SETTINGS | {"stopping", "seed"},
    _build_beta, _semivalue_completer(BETA_DEFAULT_STOPPING),
    "Beta-Shapley: 'beta(a,b)' weighs marginals by subset size ('beta' is Beta(16,1))",
    parse=_parse_beta))
register(MethodEntry(
    "loo", LOOValuation, _MODEL_SETTINGS, _build_loo, _complete_loo,
    "leave-one-out: the score lost without each point (n + 2 fits)"))


# -- parsing and building -------------------------------------------------------------------------
_CALL = re.compile(r"^\s*([a-z][a-z0-9_-]*)\s*(?:\((.*)\))?\s*$")


def parse_method(spec: str) -> tuple[MethodEntry, dict[str, Any]]:
    """A short name, with arguments where the method takes some (``"beta(4,1)"``)."""
    m = _CALL.match(spec.lower())
    name = m.group(1) if m else spec
    entry = METHODS.get(name)
    if entry is None:
        close = difflib.get_close_matches(name, list(METHODS), n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DvlParameterError(
            f"method {spec!r} is not a valuation method.{hint} Use one of "
            f"{', '.join(repr(n) for n in METHODS)}, or a method object such as "
            "TMCShapleyValuation(...)."
        )
    args = (m.group(2) if m else None) or ""
    params = _parse_args(entry, spec, args)
    return entry, params


def _parse_args(entry: MethodEntry, spec: str, args: str) -> dict[str, Any]:
    if entry.parse is not None:
        return entry.parse(spec, args)
    if args.strip():
        raise DvlParameterError(
            f"method {spec!r}: {entry.name!r} takes no arguments in its short name; set its "
            f"parameters with a method object, e.g. method = {entry.cls.__name__}(...)."
        )
    return {}


def method_entry(method: Any) -> tuple[MethodEntry, dict[str, Any], Any]:
    """``(entry, short-name arguments, method object or None)`` of a ``method`` setting."""
    if isinstance(method, str):
        entry, params = parse_method(method)
        return entry, params, None
    if isinstance(method, ValuationMethod):
        for entry in METHODS.values():
            if type(method) is entry.cls:
                return entry, {}, method
        raise DvlParameterError(
            f"method {type(method).__name__} is not one the run knows how to complete; run it "
            "in plain Python with .fit(train), or use one of "
            f"{', '.join(repr(n) for n in METHODS)}."
        )
    if isinstance(method, type) and issubclass(method, ValuationMethod):
        raise DvlParameterError(
            f"method must be a method object or a short name; got the class {method.__name__}"
            " itself. Create one by calling it, e.g. method = "
            f"{method.__name__}(...), or write its short name."
        )
    raise DvlParameterError(
        f"method must be a short name such as 'tmc' or 'knn', or a method object such as "
        f"TMCShapleyValuation(...); got {describe_value(method)}."
    )


def _fill(method: Any, attr: str, setting: str, given: Any, default: Any) -> None:
    """Give a method object the run's value of a setting it left out; both is an error."""
    mine = getattr(method, attr)
    if mine is not None and given is not None and mine is not given:
        raise DvlValueError(
            f"{setting} is set twice: in the {type(method).__name__}(...) object and as the "
            f"run's {setting!r} setting. Set it in one place."
        )
    if mine is None:
        setattr(method, attr, default)


def unused_settings(entry: MethodEntry, config: RunConfig) -> list[str]:
    """The settings ``config`` sets (away from their defaults) that the method does not read."""
    from dataclasses import fields

    defaults = type(config)()
    out = []
    for f in fields(config):
        if f.name not in METHOD_SETTINGS or f.name in entry.uses:
            continue
        value, default = getattr(config, f.name), getattr(defaults, f.name)
        if value is not None and value is not default and not _same(value, default):
            out.append(f.name)
    return out


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and odd objects are simply "not the same"
        return False


def build_method(config: RunConfig, utility: Callable[[], Any], cache: Any,
                 callbacks: list[ValuationCallback]) -> ValuationMethod:
    """The ready method of a run: from its short name, or its object completed."""
    entry, params, method = method_entry(config.method)
    ctx = MethodContext(config, params, utility, cache, list(callbacks))
    unused = unused_settings(entry, config)
    if unused:
        names = ", ".join(unused)
        raise DvlValueError(
            f"{entry.algorithm} does not use {names}: remove {'it' if len(unused) == 1 else 'them'}"
            f" from the run's settings (or choose a method that uses "
            f"{'it' if len(unused) == 1 else 'them'}, e.g. method = 'tmc')."
        )
    if method is None:
        return entry.build(ctx)
    entry.complete(method, ctx)
    method.callbacks = list(method.callbacks) + list(callbacks)
    return method
