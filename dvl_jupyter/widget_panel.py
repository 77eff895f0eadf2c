"""The widget panel: pick a model and data from the notebook, run, stop, read the values.

The panel is a form over :class:`~dvl_jupyter.config.RunConfig`: it lists the notebook's
estimators and datasets by variable name, turns the form into a config (checked by the same
table as the magic's settings, so a mistake reads the same), and runs the same
:class:`~dvl_jupyter.runner.ValuationRunner` the ``%%shapley`` magic uses, in a background
thread, so that Run and Stop stay responsive while models train. When the run ends, the
runner's thread calls the panel back (as for the magic's ``--background``), which fills the
result tabs (error-bar plot, image grid, table) and stores the result.

Every plot is a PNG in an ``ipywidgets.Image`` rather than an ``Output`` widget: images can be
updated from any thread, while an ``Output`` widget captures only the thread that opened it.

Mistakes in the form (no model, a seed that is not a number, an unknown scoring name) are shown
as a one-line message in the panel: a widget callback's traceback would go to the server log,
where nobody looks.
"""

from __future__ import annotations

import html
import math
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from dvl_jupyter.config import check_output_name
from dvl_jupyter.method_choice import METHODS
from dvl_jupyter.progress import ProgressView
from dvl_jupyter.valuation.cachedir import DEFAULT_CACHE_DIR
from dvl_jupyter.valuation.dataset import Dataset, as_dataset
from dvl_jupyter.valuation.ending import RunEnd
from dvl_jupyter.valuation.exceptions import DvlError
from dvl_jupyter.valuation.result import ValuationResult
from dvl_jupyter.valuation.utils import is_image_data, is_skorch_net

if TYPE_CHECKING:
    import ipywidgets

    from dvl_jupyter.config import RunConfig
    from dvl_jupyter.runner import ValuationRunner

__all__ = ["PanelInputError", "ShapleyPanel", "find_datasets", "find_estimators", "panel"]

#: Offered in the scoring box; any other sklearn scoring name can be typed.
SCORING_CHOICES = (
    "accuracy",
    "balanced_accuracy",
    "f1",
    "f1_macro",
    "roc_auc",
    "neg_log_loss",
    "r2",
    "neg_mean_squared_error",
    "neg_mean_absolute_error",
)

_LEVELS = (("90%", 0.10), ("95%", 0.05), ("99%", 0.01))
#: What a viewer without widgets reads where the panel was.
PANEL_WHAT = ("a form that runs a valuation of the notebook's model and data (a live widget: "
              "run this cell in a kernel to use it).")
_DESC = {"description_width": "110px"}


class PanelInputError(DvlError, ValueError):
    """A problem with what was typed or chosen in the panel; shown as the panel's message."""


# -- discovery ----------------------------------------------------------------------------------
def _visible(namespace: dict[str, Any]) -> list[tuple[str, Any]]:
    return sorted((k, v) for k, v in namespace.items() if not k.startswith("_"))


def find_estimators(namespace: dict[str, Any]) -> list[str]:
    """Names of estimator instances (objects with a ``fit`` method): skorch nets first.

    Classes are left out (``LogisticRegression`` the class has ``fit`` too), and so are
    modules, which may export a function called ``fit``.
    """
    import types

    found = [
        (not is_skorch_net(v), k)
        for k, v in _visible(namespace)
        if not isinstance(v, (type, types.ModuleType)) and callable(getattr(v, "fit", None))
    ]
    return [k for _, k in sorted(found)]


def _is_xy(value: Any) -> bool:
    """An ``(x, y)`` pair of arrays or tensors with the same number of rows."""
    if not (isinstance(value, tuple) and len(value) == 2):
        return False
    try:
        shapes = [tuple(a.shape) for a in value]
    except (AttributeError, TypeError):
        return False
    return all(len(s) >= 1 for s in shapes) and shapes[0][0] == shapes[1][0]


def find_datasets(namespace: dict[str, Any]) -> list[str]:
    """Names of ``Dataset`` objects and ``(x, y)`` tuples, in alphabetical order."""
    return [k for k, v in _visible(namespace) if isinstance(v, Dataset) or _is_xy(v)]


def _user_namespace() -> dict[str, Any]:
    """The IPython user namespace, or ``__main__``'s globals outside IPython (scripts)."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython is a dependency
        shell = None
    if shell is not None:
        return shell.user_ns
    import __main__

    return vars(__main__)


def _config_default(name: str) -> Any:
    """RunConfig's default of a setting: the panel starts from the same defaults."""
    from dvl_jupyter.config import RunConfig

    return getattr(RunConfig(), name)


def _default_jobs() -> int:
    """The magic's ``%config ShapleyMagics.jobs`` when the extension is loaded, else 1: the
    panel and the magic start from the same defaults."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return 1
    shell = get_ipython()
    for c in getattr(shell, "configurables", ()):
        if type(c).__name__ == "ShapleyMagics":
            return int(c.jobs)
    return 1


def _short(exc: BaseException) -> str:
    """One line for the panel: our errors speak for themselves, others say what they are."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if not isinstance(exc, DvlError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


# -- the panel ----------------------------------------------------------------------------------
class ShapleyPanel:
    """A form to run TMC-Shapley on the notebook's model and data, with live progress.

    Parameters
    ----------
    namespace
        Where models and datasets are looked up, and where the result is stored under the name
        typed in "store as". Defaults to the IPython user namespace.

    Attributes
    ----------
    widget
        The whole panel; the object displays as this widget.
    result
        The last run's :class:`~dvl_jupyter.valuation.result.ValuationResult` (partial if it
        was stopped), or None.
    runner
        The runner of the last run.
    progress
        The :class:`~dvl_jupyter.progress.ProgressView` of the last run.
    message
        The label where outcomes and input problems are shown.
    """

    def __init__(self, namespace: dict[str, Any] | None = None) -> None:
        import ipywidgets as w

        self.namespace = _user_namespace() if namespace is None else namespace
        self.result: ValuationResult | None = None
        self.runner: ValuationRunner | None = None
        self.progress: ProgressView | None = None
        self.last_error: BaseException | None = None
        self._train: Dataset | None = None
        self._render_lock = threading.Lock()
        self._quiet = False

        # what to value
        self.model_dropdown = w.Dropdown(description="model", style=_DESC)
        self.train_dropdown = w.Dropdown(description="train data", style=_DESC)
        self.test_dropdown = w.Dropdown(description="test data", style=_DESC)
        self.refresh_button = w.Button(description="Refresh", icon="refresh",
                                       tooltip="List the notebook's models and datasets again")
        self.refresh_button.on_click(self.refresh)
        # how
        self.method = w.Dropdown(options=[(f"{e.algorithm} ({n})", n) for n, e in METHODS.items()],
                                 value="tmc", description="method", style=_DESC,
                                 layout=w.Layout(width="340px"))
        self.method_note = w.Label("")
        self.method.observe(self._on_method, names="value")
        self.scoring = w.Combobox(value="accuracy", options=SCORING_CHOICES,
                                  ensure_option=False, description="scoring", style=_DESC,
                                  placeholder="empty: model.score")
        self.truncation = w.Dropdown(options=[("relative", "relative"), ("none", "none")],
                                     value="relative", description="truncation", style=_DESC)
        self.rtol = w.BoundedFloatText(value=0.05, min=0.0, max=10.0, step=0.01,
                                       description="rtol", style=_DESC)
        self.burn_in = w.BoundedFloatText(value=0.3, min=0.0, max=1.0, step=0.05,
                                          description="burn-in fraction", style=_DESC)
        self.truncation.observe(self._on_truncation, names="value")
        self.min_updates = w.BoundedIntText(value=100, min=1, max=10**9,
                                            description="MinUpdates", style=_DESC)
        self.max_time = w.BoundedFloatText(value=0.0, min=0.0, max=1e9,
                                           description="MaxTime (s)", style=_DESC,
                                           tooltip="0: no time limit")
        self.jobs = w.IntText(value=_default_jobs(), description="jobs", style=_DESC)
        self.coupled = w.Checkbox(value=_config_default("coupled_training"),
                                  description="coupled training", indent=False,
                                  tooltip="every fit from the same weights and minibatch order "
                                          "(see the README)")
        self.seed = w.Text(value="", description="seed", placeholder="empty: random",
                           style=_DESC)
        self.cache = w.Checkbox(value=True, description="cache", indent=False)
        self.cache_dir = w.Text(value=DEFAULT_CACHE_DIR, description="cache dir", style=_DESC)
        self.out_name = w.Text(value="result", description="store as", style=_DESC,
                               placeholder="empty: don't store")
        # actions
        self.run_button = w.Button(description="Run", icon="play", button_style="primary")
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="danger",
                                    disabled=True)
        self.run_button.on_click(self.run)
        self.stop_button.on_click(self.stop)
        self.message = w.Label("")
        self.progress_box = w.VBox([])
        # results
        self.k = w.IntSlider(value=10, min=1, max=10, description="points", style=_DESC,
                             continuous_update=False)
        self.which = w.ToggleButtons(options=[("lowest", "bottom"), ("highest", "top")],
                                     value="bottom")
        self.level = w.Dropdown(options=_LEVELS, value=0.05, description="interval",
                                style=_DESC, layout=w.Layout(width="200px"))
        for control in (self.k, self.which, self.level):
            control.observe(self._on_view_change, names="value")
        # the magic's own display (the interactive chart where the renderer is installed)
        self.chart = w.Output()
        self.plot = w.Image(format="png")
        self.grid = w.Image(format="png")
        self.grid_note = w.Label("")
        self.table = w.HTML("")
        self.tabs = w.Tab(children=[self.chart, self.plot, w.VBox([self.grid_note, self.grid]),
                                    self.table])
        self.tabs.titles = ("Chart", "Plot", "Images", "Table")
        self.results_box = w.VBox([w.HBox([self.k, self.which, self.level]), self.tabs],
                                  layout=w.Layout(display="none"))

        self.truncation_row = w.HBox([self.truncation, self.rtol, self.burn_in])
        self.stopping_row = w.HBox([self.min_updates, self.max_time])
        self.widget = w.VBox([
            w.HBox([self.model_dropdown, self.refresh_button]),
            w.HBox([self.train_dropdown, self.test_dropdown]),
            w.HBox([self.method, self.method_note]),
            w.HBox([self.scoring, self.jobs, self.seed, self.coupled]),
            self.truncation_row,
            self.stopping_row,
            w.HBox([self.cache, self.cache_dir, self.out_name]),
            w.HBox([self.run_button, self.stop_button]),
            self.message,  # its own line, so a long message is not clipped by the buttons
            self.progress_box,
            self.results_box,
        ])
        self.refresh()
        self._on_method({"new": self.method.value})

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The live widget, with words instead of ``VBox(children=...)`` for the viewers that
        cannot show widgets (nbconvert's HTML, GitHub, an untrusted copy)."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            bundle["text/plain"] = f"dvl_jupyter panel: {PANEL_WHAT}"
            bundle["text/html"] = f"<p><b>dvl_jupyter panel</b>: {html.escape(PANEL_WHAT)}</p>"
        return bundle

    # -- the form -------------------------------------------------------------------------------
    def refresh(self, _button: Any = None) -> None:
        """List the namespace's estimators and datasets again, keeping the choices made."""
        models = find_estimators(self.namespace)
        datasets = find_datasets(self.namespace)
        self._set_options(self.model_dropdown, models, hint="")
        self._set_options(self.train_dropdown, datasets, hint="train")
        self._set_options(self.test_dropdown, datasets, hint="test")
        if not models or not datasets:
            missing = [what for what, found in (("no estimator (an object with fit)", models),
                                                ("no dataset (Dataset or (x, y))", datasets))
                       if not found]
            self._say(f"Found {' and '.join(missing)} in the notebook; define them and press "
                      "Refresh.", error=True)
        elif self.message.value.startswith("Found no"):
            self._say("")

    @staticmethod
    def _set_options(dropdown: ipywidgets.Dropdown, names: list[str], hint: str) -> None:
        """Keep the current choice if still there, else prefer a name containing ``hint``."""
        current = dropdown.value
        dropdown.options = names
        if current in names:
            dropdown.value = current
        elif names:
            preferred = [n for n in names if hint and hint in n.lower()]
            dropdown.value = preferred[0] if preferred else names[0]
        else:
            dropdown.value = None

    def _on_method(self, change: dict[str, Any]) -> None:
        """Show the settings the chosen method reads, and hide the others."""
        entry = METHODS[change["new"]]
        self.truncation_row.layout.display = None if "truncation" in entry.uses else "none"
        self.stopping_row.layout.display = None if "stopping" in entry.uses else "none"
        self.scoring.layout.display = None if "scoring" in entry.uses else "none"
        self.coupled.layout.display = None if "coupled_training" in entry.uses else "none"
        self.method_note.value = entry.summary

    def _on_truncation(self, change: dict[str, Any]) -> None:
        off = change["new"] == "none"
        self.rtol.disabled = off
        self.burn_in.disabled = off

    def config(self) -> RunConfig:
        """The form as a :class:`~dvl_jupyter.runner.RunConfig`; bad input raises
        :class:`PanelInputError` with the message to show."""
        from dvl_jupyter.config import RunConfig
        from dvl_jupyter.valuation import MaxTime, MinUpdates, NoTruncation, RelativeTruncation

        def lookup(dropdown: ipywidgets.Dropdown, what: str) -> Any:
            name = dropdown.value
            if not name:
                raise PanelInputError(f"Choose the {what} (press Refresh if it is not listed).")
            if name not in self.namespace:
                raise PanelInputError(f"{name!r} is no longer defined; press Refresh.")
            return self.namespace[name]

        model = lookup(self.model_dropdown, "model")
        train = lookup(self.train_dropdown, "training data")
        test = lookup(self.test_dropdown, "test data")
        seed_text = self.seed.value.strip()
        # a number is a number; other text goes on to RunConfig, which says what seed may be
        seed: Any = None if not seed_text else (
            int(seed_text) if seed_text.lstrip("-").isdigit() else seed_text)
        out = self.out_name.value.strip()
        if out:
            check_output_name(out, "'store as'")
            held = self.namespace.get(out)
            if held is not None and not isinstance(held, ValuationResult):
                raise PanelInputError(
                    f"'store as' would overwrite the variable {out!r} (a "
                    f"{type(held).__name__}); choose another name, or empty it.")
        cache_dir = self.cache_dir.value.strip()
        if self.cache.value and not cache_dir:
            raise PanelInputError("Give a cache directory, or untick 'cache'.")
        stopping: Any = MinUpdates(self.min_updates.value)
        if self.max_time.value > 0:
            stopping = stopping | MaxTime(self.max_time.value)
        truncation = (NoTruncation() if self.truncation.value == "none"
                      else RelativeTruncation(self.rtol.value, self.burn_in.value))
        uses = METHODS[self.method.value].uses
        return RunConfig(
            model=model,
            train=train,
            test=test,
            method=self.method.value,
            scoring=(self.scoring.value.strip() or None) if "scoring" in uses else "accuracy",
            truncation=truncation if "truncation" in uses else None,
            stopping=stopping if "stopping" in uses else None,
            coupled_training=(self.coupled.value if "coupled_training" in uses
                              else _config_default("coupled_training")),
            jobs=self.jobs.value,
            cache=cache_dir if self.cache.value else None,
            seed=seed,
        )

    # -- running --------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True from Run until the result is shown (the runner's thread, which shows it)."""
        return self.runner is not None and self.runner.running

    def run(self, _button: Any = None) -> None:
        """Start a run in the background from the form (what the Run button does)."""
        from dvl_jupyter.runner import ValuationRunner

        if self.running:
            self._say("A run is in progress: stop it first.", error=True)
            return
        try:
            config = self.config()
            train = as_dataset(config.train, "train data")
            view = ProgressView(stop_button=False)
            runner = ValuationRunner(config, [view])
            view.attach(runner)
            runner.build()  # bad settings raise here, in this thread, before anything shows
        except Exception as exc:  # noqa: BLE001 - shown in the panel, kept in .last_error
            self.last_error = exc
            self._say(_short(exc), error=True)
            return
        self.last_error = None
        self.runner, self.progress, self._train = runner, view, train
        self.progress_box.children = [view.widget]
        self.run_button.disabled = True
        self.stop_button.disabled = False
        self._say("running...")
        # as the magic's --background does: the runner's thread calls back when the run ends
        runner.start(on_done=self._on_done)

    def stop(self, _button: Any = None) -> None:
        """End the run after the current round; the partial result is kept and shown."""
        if self.progress is not None and self.runner is not None and self.runner.running:
            self.stop_button.disabled = True
            self._say("stopping after the current round...")
            self.progress.request_stop()

    def wait(self, timeout: float | None = None) -> ValuationResult | None:
        """Block until the current run is over and shown; returns :attr:`result`."""
        if self.runner is not None and self.runner._thread is not None:
            self.runner._thread.join(timeout)
        return self.result

    def _on_done(self, result: ValuationResult | None, error: BaseException | None) -> None:
        """In the runner's thread, once the run has ended: show and store what it produced."""
        try:
            if error is not None:
                self.last_error = error
                self._failed(result, error)
            elif result is not None:
                self._finished(result)
        except Exception as exc:  # noqa: BLE001 - a plotting problem must not lose the result
            self.last_error = exc
            self._say(f"Could not show the result: {_short(exc)}", error=True)
        finally:
            self.run_button.disabled = False
            self.stop_button.disabled = True

    def _finished(self, result: ValuationResult) -> None:
        """Keep, store and show the result of a run that ended (done, stopped, interrupted)."""
        self.result = result
        out = self.out_name.value.strip()
        if out:
            self.namespace[out] = result
        self._show(result)
        ended = RunEnd.parse(result.meta.get("ended")) or RunEnd.DONE
        what = ended.sentence
        where = f", stored in `{out}`" if out else ""
        self._say(f"{what}: values of {len(result)} points{where}.")

    def _failed(self, result: ValuationResult | None, error: BaseException) -> None:
        """A failed run: say why; keep what was merged in ``.result`` but store nothing.

        The namespace variable keeps the last good result rather than being overwritten by
        values that may be mostly the zeros the run started from.
        """
        text = f"The run failed: {_short(error)}"
        merged = 0 if result is None else int(result.meta.get("permutations", 0))
        if result is not None and merged > 0:
            self.result = result
            self._show(result)
            text += f" ({merged} permutations done are shown, not stored)"
        else:  # the previous run's values would read as this one's
            self.results_box.layout.display = "none"
        self._say(text, error=True)

    def _show(self, result: ValuationResult) -> None:
        self._show_chart(result)
        n = len(result)
        self._quiet = True  # one render below, not one per control change
        try:
            self.k.max = max(1, n)
            self.k.value = min(10, n) if n else 1
        finally:
            self._quiet = False
        self._render_results()
        self.results_box.layout.display = None

    def _show_chart(self, result: ValuationResult) -> None:
        """The magic's display of the result, in the Chart tab (an Output widget's outputs can
        be set from any thread, unlike its capture)."""
        import base64

        from dvl_jupyter.display import mimebundle

        data = {mime: base64.b64encode(v).decode("ascii") if isinstance(v, bytes) else v
                for mime, v in mimebundle(result).items()}
        self.chart.outputs = ({"output_type": "display_data", "data": data, "metadata": {}},)

    # -- results --------------------------------------------------------------------------------
    def _on_view_change(self, _change: dict[str, Any]) -> None:
        if self.result is not None and not self._quiet:
            self._render_results()

    def _selection(self) -> tuple[ValuationResult, np.ndarray]:
        """The k highest or lowest points, in rank order, and their ranks (rank 1 = the
        highest value, ties by data index: the rule of every display)."""
        from dvl_jupyter.plots import rank_order

        assert self.result is not None
        order = rank_order(self.result.values, self.result.indices)
        ranks = np.arange(1, len(order) + 1)
        k = self.k.value
        chosen = slice(0, k) if self.which.value == "top" else slice(max(0, len(order) - k),
                                                                     len(order))
        return self.result[order[chosen]], ranks[chosen]

    def _render_results(self) -> None:
        """Fill the three tabs from :attr:`result` and the k / which / level controls."""
        with self._render_lock:
            chosen, ranks = self._selection()
            self.plot.value = self._plot_png(chosen)
            self.table.value = self._table_html(chosen, ranks)
            self._render_grid()

    def _plot_png(self, chosen: ValuationResult) -> bytes:
        from matplotlib.figure import Figure

        from dvl_jupyter.plots import figure_to_png, plot_result_errors

        k = len(chosen)
        fig = Figure(figsize=(max(4.0, 2.0 + 0.4 * k), 3.2), dpi=90)
        words = "lowest" if self.which.value == "bottom" else "highest"
        plot_result_errors(chosen, level=self.level.value, ax=fig.add_subplot(),
                           title=f"The {k} {words} values", xlabel="training point",
                           ylabel="value")
        return figure_to_png(fig, dpi=90)

    def _render_grid(self) -> None:
        from matplotlib.figure import Figure

        from dvl_jupyter.plots import figure_to_png, plot_image_grid

        if self._train is None or self.result is None or not is_image_data(self._train.x):
            self.grid_note.value = "The training data are not images: no grid to show."
            self.grid.layout.display = "none"
            return
        k = min(self.k.value, len(self.result))
        cols = min(k, 5)
        fig = Figure(figsize=(1.9 * cols, 2.5 * math.ceil(k / cols) + 0.5), dpi=80,
                     layout="constrained")
        fig.get_layout_engine().set(h_pad=0.08)  # room between a caption and the next title
        plot_image_grid(self.result, self._train, k=k, which=self.which.value, fig=fig)
        self.grid.value = figure_to_png(fig, dpi=80)
        self.grid_note.value = ""
        self.grid.layout.display = None

    def _table_html(self, chosen: ValuationResult, ranks: np.ndarray) -> str:
        """A static table; every string is escaped (names come from the user's data)."""
        from scipy.stats import norm

        z = float(norm.ppf(1.0 - self.level.value / 2.0))
        pct = f"{100 * (1 - self.level.value):g}%"
        head = ["rank", "index", "name", "value", f"± {pct} CI", "stderr", "updates"]
        rows = []
        columns = (ranks, chosen.indices, chosen.names, chosen.values, chosen.stderr,
                   chosen.counts)
        for rank, i, name, v, se, c in zip(*columns, strict=True):
            cells = [f"{int(rank):,}", str(int(i)), str(name), f"{v:.4g}", f"{z * se:.3g}",
                     f"{se:.3g}", str(int(c))]
            rows.append("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in cells)
                        + "</tr>")
        header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        return (f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody>"
                "</table>")

    # -- messages -------------------------------------------------------------------------------
    def _say(self, text: str, error: bool = False) -> None:
        self.message.value = text
        self.message.style.text_color = "#b00020" if error else None


def panel(namespace: dict[str, Any] | None = None) -> ShapleyPanel:
    """Open the valuation panel over the notebook's variables (``%shapley_panel``).

    Returns a :class:`ShapleyPanel`, which displays as its widget when it is a cell's last
    expression; keep a reference (``p = panel()``) to reach ``p.result`` from code.
    """
    return ShapleyPanel(namespace)

