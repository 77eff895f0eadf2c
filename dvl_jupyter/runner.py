"""One runner between the engine and every notebook front end.

The ``%%shapley`` magic, the widget panel and the demo all describe a run as a
:class:`~dvl_jupyter.config.RunConfig` and hand it to :class:`ValuationRunner`, which checks
it, builds the scorer and utility, opens the cache directory, applies the joblib
configuration, records the run, and runs the valuation in the foreground or in a background
thread. Front ends follow it
through :class:`~dvl_jupyter.valuation.callbacks.ValuationCallback` hooks and never touch the
engine themselves. Nothing here imports IPython or ipywidgets.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from .config import RunConfig
from .method_choice import build_method
from .valuation import (
    ModelUtility,
    SkorchSupervisedScorer,
    SupervisedScorer,
    ValuationCallback,
    ValuationMethod,
    ValuationResult,
)
from .valuation.cachedir import CacheDirectory
from .valuation.dataset import as_dataset
from .valuation.exceptions import DvlValueError
from .valuation.utils import is_skorch_net

__all__ = ["RunConfig", "ValuationRunner"]


#: Seconds to wait for a dask scheduler to answer (distributed's own default is 30).
CONNECT_TIMEOUT = 5.0


def _register_ray() -> None:
    """Make joblib's ``ray`` backend exist (ray registers it); one line if ray is missing."""
    try:
        from ray.util.joblib import register_ray
    except ImportError:
        raise DvlValueError(
            "backend 'ray' needs the ray package: pip install 'ray[default]'; or use backend "
            "'loky' (this machine's cores) or 'dask'."
        ) from None
    try:
        register_ray()
    except Exception as exc:  # noqa: BLE001 - a third party's failure, said in one line
        raise DvlValueError(
            f"backend 'ray' could not be set up ({type(exc).__name__}: {_short(exc)}); use "
            "backend 'loky' or 'dask'."
        ) from None


def _connect(distributed: Any, address: str) -> Any:
    """A client of the scheduler at ``address``, or one line saying why there is none."""
    try:
        # not set as the default: a client that failed to connect would stay the default
        # one, and the next run without --scheduler would try it again
        return distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except Exception as exc:  # noqa: BLE001 - a third party's failure, said in one line
        raise DvlValueError(
            f"scheduler {address!r}: no dask scheduler answered within {CONNECT_TIMEOUT:g} s "
            f"({type(exc).__name__}: {_short(exc)}). Check the address and that a scheduler "
            "runs there (dask scheduler), or leave scheduler unset to use the notebook's "
            "distributed.Client."
        ) from None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 160 else text[:157] + "..."


class ValuationRunner:
    """Run one valuation described by a :class:`RunConfig`, foreground or background.

    ``run()`` blocks and returns the result; a keyboard interrupt (the kernel's interrupt)
    ends the run cleanly and returns the partial result, with ``result.meta["ended"] ==
    "interrupted"``. ``start()`` runs it in a thread; ``stop()`` ends it after the current
    round; ``wait()`` joins it and re-raises its error, if any.

    The result carries the run's settings (``meta["settings"]``), its run id
    (``meta["run_id"]``) and the training data as ``display_data``, so that displaying it can
    show the images and labels of the points.
    """

    def __init__(self, config: RunConfig, callbacks: list[ValuationCallback] | None = None):
        self.config = config
        self.callbacks = list(callbacks or [])
        self.valuation: ValuationMethod | None = None
        self.result: ValuationResult | None = None
        self.error: BaseException | None = None
        self.run_id: str | None = None
        self._thread: threading.Thread | None = None
        self.cache: CacheDirectory | None = None

    # -- building ------------------------------------------------------------------------------
    def build_utility(self) -> Any:
        """The utility of a method that trains models on subsets: the given one, or the
        model scored on the test data."""
        c = self.config
        if c.utility is not None:
            return c.utility
        if c.model is None:
            raise DvlValueError("No model: set `model = <your estimator>` (or pass utility=...).")
        if c.test is None:
            raise DvlValueError("No test data: set `test = <Dataset or (x, y)>` to score on.")
        test = as_dataset(c.test, "test")
        kwargs: dict[str, Any] = {"default": c.default}
        if c.range is not None:
            kwargs["range"] = c.range
        if is_skorch_net(c.model):
            scorer = SkorchSupervisedScorer(c.model, test_data=test, scoring=c.scoring, **kwargs)
        else:
            scorer = SupervisedScorer(c.scoring, test, **kwargs)
        return ModelUtility(c.model, scorer, cache=self.cache, catch_errors=c.catch_errors,
                            cache_key=c.cache_key, coupled_training=c.coupled_training)

    def build(self) -> ValuationMethod:
        """Check the configuration and build the valuation, in the calling thread.

        Everything that can be checked before fitting is checked here, so a background run
        (``start()``) reports bad input at once instead of from its thread.
        """
        c = self.config.validate()
        self.cache = CacheDirectory.open(c.cache)

        def utility() -> Any:
            u = self.build_utility()
            if isinstance(u, ModelUtility):
                u.validate()
            return u

        self.valuation = build_method(c, utility, self.cache, self.callbacks)
        self.valuation.validate()
        return self.valuation

    def settings(self) -> dict[str, Any]:
        """The run's settings as the method resolved them (its defaults filled in), for run
        records and the result's metadata."""
        out = self.config.settings()
        method = self.valuation
        if method is not None:
            out["algorithm"] = method.algorithm
            is_done = getattr(method, "is_done", None)
            out["stopping"] = None if is_done is None else str(is_done)
            truncation = getattr(method, "truncation", None)
            out["truncation"] = None if not hasattr(method, "truncation") else repr(truncation)
        return out

    # -- running -------------------------------------------------------------------------------
    def _record_start(self) -> bool:
        """Record the run in the cache directory; False when there is none or it failed."""
        if self.cache is None:
            return False
        try:
            self.run_id = self.cache.runs.start(self.settings(), self.config.seed)
            return True
        except Exception as exc:  # noqa: BLE001 - bookkeeping must never stop a run
            import warnings

            warnings.warn(f"could not record the run in {self.cache.path}: {exc}",
                          stacklevel=3)
            return False

    @contextlib.contextmanager
    def _parallel(self) -> Iterator[None]:
        """joblib's configuration for the run; for dask, the cluster to run on.

        A cluster backend uses every worker (n_jobs=-1) unless jobs says otherwise; dask needs a
        client: the one given by ``scheduler``, opened for this run, or the notebook's current
        ``distributed.Client``.
        """
        from joblib import parallel_config

        c = self.config
        jobs = -1 if c.backend in ("dask", "ray") and c.jobs == 1 else c.jobs
        if c.backend == "ray":
            _register_ray()
        if c.backend != "dask":
            with parallel_config(backend=c.backend, n_jobs=jobs):
                yield
            return
        try:
            import distributed
        except ImportError:
            raise DvlValueError(
                "backend 'dask' needs the distributed package: pip install distributed; or "
                "use backend 'loky' (this machine's cores)."
            ) from None
        if c.scheduler:
            client = _connect(distributed, c.scheduler)
            # current for this run only: the notebook's own default client is left alone
            with client, client.as_current(), parallel_config(backend="dask", n_jobs=jobs):
                yield
            return
        try:
            distributed.get_client()
        except ValueError:
            raise DvlValueError(
                "backend 'dask' needs a cluster: start a distributed.Client in the notebook "
                "or pass --scheduler tcp://HOST:PORT."
            ) from None
        with parallel_config(backend="dask", n_jobs=jobs):
            yield

    def run(self) -> ValuationResult:
        """Run in the calling thread; returns the (possibly partial) result."""
        valuation = self.valuation or self.build()
        train = as_dataset(self.config.train, "train")
        recorded = self._record_start()
        try:
            with self._parallel():
                valuation.fit(train)
        except KeyboardInterrupt:
            pass  # the engine kept the partial result; an interrupt is a way to stop
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            try:
                self.result = valuation.result
            except Exception:  # noqa: BLE001 - no result when the run failed before starting
                self.result = None
            if self.result is not None:
                self.result.meta["run_id"] = self.run_id
                self.result.meta["settings"] = self.settings()
                self.result.display_data = train
            if recorded:  # a failed run is recorded as failed, not left "running"
                try:
                    stats = valuation.stats.as_dict() if valuation.stats is not None else {}
                    if self.result is not None:  # done, stopped, interrupted, for the listing
                        stats["ended"] = self.result.meta.get("ended")
                    self.cache.runs.finish(self.run_id, self.result, stats)
                except Exception as exc:  # noqa: BLE001
                    import warnings

                    warnings.warn(f"could not record the run's end: {exc}", stacklevel=2)
        return self.result

    def start(
        self,
        on_done: Callable[[ValuationResult | None, BaseException | None], None] | None = None,
    ) -> threading.Thread:
        """Run in a background thread (the panel and ``--background``).

        Bad input raises here, in the calling thread. ``on_done(result, error)`` is called in
        the run's thread once it has ended for any reason, with the final (possibly partial)
        result, or None and the error; front ends use it to store and show the result.
        """
        if self.valuation is None:
            self.build()

        def target() -> None:
            try:
                self.run()
            except BaseException as exc:  # noqa: BLE001 - reported through .error / wait()
                self.error = exc
            if on_done is not None:
                on_done(self.result, self.error)

        self._thread = threading.Thread(target=target, name="dvl-valuation", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        if self.valuation is not None:
            self.valuation.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> ValuationResult | None:
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.result
