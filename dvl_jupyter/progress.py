"""Live progress of a valuation: an ipywidgets view in a notebook, a tqdm text bar elsewhere.

A TMC run has no known total: it ends when its stopping criterion says so. What the user can
watch is the criterion's own completion (``RunStats.completion``), how fast utilities are
computed, and whether the ranking settles, so :class:`ProgressView` shows exactly that: a bar
towards the criterion, the counters of :class:`~dvl_jupyter.valuation.callbacks.RunStats`, the
training path in use, and a small chart of the current lowest and highest estimates.

The engine calls ``on_evaluations`` many times a second, often from the runner's background
thread. Widget trait updates are thread-safe and never wait on the frontend, but each one is a
message to the browser, so the view re-renders at most every ``interval`` seconds (the chart
every ``chart_interval``) and always once at the end: the frontend is never flooded and the run
is never slowed by its own display.

:func:`progress_callback` picks the view the way ``tqdm.autonotebook`` picks its bar: widgets
when running under an IPython kernel with ipywidgets importable, a text bar otherwise
(terminal IPython, scripts, CI logs).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from dvl_jupyter.valuation.callbacks import RunStats, TqdmProgress, ValuationCallback
from dvl_jupyter.valuation.ending import RunEnd
from dvl_jupyter.valuation.utils import format_duration

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from dvl_jupyter.runner import ValuationRunner
    from dvl_jupyter.valuation.result import ValuationResult

__all__ = [
    "ProgressView",
    "TextProgress",
    "has_widget_frontend",
    "progress_callback",
    "reliability_text",
    "run_record",
]

#: Order and captions of the counters shown under the bar.
_FIELDS: tuple[tuple[str, str], ...] = (
    ("evaluations", "evaluations"),
    ("rate", "evals/s"),
    ("cache_hits", "cache hits"),
    ("failed_fits", "fits failed"),
    ("permutations", "permutations"),
    ("reliability", "reliability"),
    ("elapsed", "elapsed"),
    ("remaining", "remaining"),
)


def has_widget_frontend() -> bool:
    """Whether widgets can be shown: an IPython *kernel* is running and ipywidgets imports.

    Terminal IPython has a shell but no ``kernel`` attribute, and cannot show widgets; this is
    the test ``tqdm.autonotebook`` uses.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:  # pragma: no cover - ipywidgets is a dependency
        return False
    return True


def _stat_texts(stats: RunStats, ended: bool = False) -> dict[str, str]:
    """The text of every counter, computed in one place so tests can compare against it.

    "remaining" reads "estimating" until an ETA means something (see ``RunStats.remaining``)
    and "-" once the run has ended, however it ended.
    """
    remaining = stats.remaining()
    return {
        "evaluations": f"{stats.evaluations:,}",
        "rate": f"{stats.rate:.1f}",
        "cache_hits": f"{stats.cache_hits:,}",
        "failed_fits": f"{stats.failed_fits:,}",
        "permutations": f"{stats.permutations:,}",
        "reliability": reliability_text(stats),
        "elapsed": format_duration(stats.elapsed),
        "remaining": "-" if ended else (
            "estimating" if remaining is None else format_duration(remaining)),
    }


def reliability_text(stats: RunStats) -> str:
    """The ranking's split-half reliability in words: "0.82", "0.12 (mostly noise)", "-"."""
    from dvl_jupyter.valuation.diagnostics import LOW_RELIABILITY

    r = stats.reliability
    if not np.isfinite(r):
        return "-"
    return f"{r:.2f}" + (" (mostly noise)" if r < LOW_RELIABILITY else "")


def close_tree(widget: Any) -> None:
    """Close a widget and every widget inside it (``close()`` alone leaves the children's
    models alive, and a saved notebook would keep their state)."""
    for child in getattr(widget, "children", ()):
        close_tree(child)
    for part in ("layout", "style"):
        sub = getattr(widget, part, None)
        if sub is not None and hasattr(sub, "close"):
            sub.close()
    widget.close()


def run_record(result: ValuationResult, stats: RunStats) -> dict[str, str]:
    """What a finished run leaves where its live view was: a short static record (HTML and
    text) that reads the same in every viewer, with or without a kernel or widgets."""
    import html

    end = RunEnd.parse(result.meta.get("ended")) or RunEnd.DONE
    head = f"{result.algorithm or 'Valuation'}: {end.status_text}"
    body = stats.summary()
    lines = [body]
    if stats.path:
        lines.append(f"path: {stats.path}")
    if np.isfinite(stats.reliability):
        line = f"reliability of the ranking: {reliability_text(stats)}"
        distinct = result.meta.get("distinguishable")
        if isinstance(distinct, int):
            line += f"; {distinct:,} of {len(result):,} values distinguishable from zero"
        lines.append(line)
    text = head + "\n" + "\n".join(f"  {line}" for line in lines)
    color = {"success": "#2e7d32", "warning": "#b26a00", "danger": "#b00020"}[end.style]
    rows = "".join(f"<div>{html.escape(line)}</div>" for line in lines)
    markup = (f'<div class="dvl-run-record" style="font-size:90%;line-height:1.4">'
              f'<div style="color:{color};font-weight:600">{html.escape(head)}</div>'
              f"{rows}</div>")
    return {"text/plain": text, "text/html": markup}


class TextProgress(TqdmProgress):
    """The engine's tqdm bar, forced to plain text.

    ``tqdm.auto`` would choose its notebook bar under a kernel even when ipywidgets is
    missing, and that bar fails when used; where we fall back to text we mean text.
    """

    def on_start(self, valuation: Any, stats: RunStats) -> None:
        from tqdm.std import tqdm

        self._bar = tqdm(total=None, desc=self._desc(valuation), unit="eval", **self.tqdm_kwargs)


class ProgressView(ValuationCallback):
    """An ipywidgets view of a running valuation, with a Stop button.

    Parameters
    ----------
    runner
        The :class:`~dvl_jupyter.runner.ValuationRunner` that Stop asks to end. Without one
        (or before :meth:`attach`) the button is hidden: a run in the foreground blocks the
        kernel, which then cannot receive the click anyway.
    interval
        Minimum seconds between two refreshes of the bar and counters.
    chart_interval
        Minimum seconds between two renders of the chart (a PNG made with matplotlib, the most
        expensive part of the view).
    chart_points
        How many of the lowest and of the highest estimates the chart shows.
    stop_button
        Show a Stop button when there is a runner. The panel turns it off: it has its own.
    display
        Display the view at once (in the calling thread, so it lands in the calling cell even
        when the run goes on in the background), as a tqdm bar does.
    clock
        Source of time for the throttle; tests pass a fake one.

    Attributes
    ----------
    widget
        The ``ipywidgets.VBox`` holding everything; the view displays as this widget.
    bar, status_label, fields, path_label, chart, stop_button
        The parts, readable by tests: ``fields["rate"].value`` is the text shown for the rate.
    renders, chart_renders
        How many times the counters / the chart were refreshed.
    ended
        ``result.meta["ended"]`` once the run has finished (``"done"``, ``"time limit"``,
        ``"stopped"``, ``"interrupted"`` or ``"error"``), else None.
    """

    def __init__(
        self,
        runner: ValuationRunner | None = None,
        *,
        interval: float = 0.5,
        chart_interval: float = 1.0,
        chart_points: int = 5,
        stop_button: bool = True,
        display: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import ipywidgets as w

        self.interval = interval
        self.chart_interval = chart_interval
        self.chart_points = chart_points
        self._clock = clock
        self._want_stop_button = stop_button
        self._lock = threading.Lock()
        self._last_text = -np.inf
        self._last_chart = -np.inf
        self._figure: Figure | None = None
        self.runner: ValuationRunner | None = None
        self.renders = 0
        self.chart_renders = 0
        self.ended: str | None = None
        self._stop_requested = False
        self.view_error: str | None = None

        self.status_label = w.Label("waiting to start")
        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, bar_style="info",
                                   layout=w.Layout(width="320px"))
        self.percent_label = w.Label("0%")
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="danger",
                                    tooltip="End the run after the current round; "
                                            "the partial result is kept",
                                    layout=w.Layout(width="90px"))
        self.stop_button.on_click(self._on_stop_click)
        self.fields = {key: w.Label("-") for key, _ in _FIELDS}
        counters = [
            w.HBox([w.Label(f"{caption}:"), self.fields[key]],
                   layout=w.Layout(margin="0 12px 0 0"))
            for key, caption in _FIELDS
        ]
        self.path_label = w.Label("")
        self.chart = w.Image(format="png", layout=w.Layout(display="none", max_width="480px"))
        self.widget = w.VBox([
            w.HBox([self.bar, self.percent_label, self.stop_button, self.status_label]),
            w.HBox(counters, layout=w.Layout(flex_flow="row wrap")),
            self.path_label,
            self.chart,
        ])
        self.attach(runner)
        self._handle: Any = None
        if display:
            from IPython.display import display as ipy_display

            # with a display id, so that the finished run can replace its live view by a
            # static record (a saved notebook then holds no widget that no longer exists)
            self._handle = ipy_display(self.widget, display_id=True)

    # -- public ---------------------------------------------------------------------------------
    def attach(self, runner: ValuationRunner | None) -> None:
        """Say which runner Stop ends; the runner usually needs this view first, hence later."""
        self.runner = runner
        self._sync_stop_button()

    def close(self) -> None:
        """Remove the view from the frontend (e.g. when a run failed before it started)."""
        close_tree(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # -- hooks ----------------------------------------------------------------------------------
    def on_start(self, valuation: Any, stats: RunStats) -> None:
        with self._lock:
            self.ended = None
            if not self._stop_requested:  # Stop may be pressed before the first evaluation
                self.status_label.value = "starting"
            self.bar.bar_style = "info"
        self._sync_stop_button()
        self._render_text(stats)

    def on_stage(self, stats: RunStats) -> None:
        with self._lock:
            if not self._stop_requested and self.ended is None:
                self.status_label.value = stats.stage or "running"
        self._render_text(stats)

    def on_evaluations(self, stats: RunStats) -> None:
        if self._due("_last_text", self.interval):
            self._render_text(stats)

    def on_update(self, result: ValuationResult, stats: RunStats) -> None:
        if self._due("_last_text", self.interval):
            self._render_text(stats)
        if self._due("_last_chart", self.chart_interval):
            self._render_chart(result)

    def on_finish(self, result: ValuationResult, stats: RunStats) -> None:
        end = RunEnd.parse(result.meta.get("ended")) or RunEnd.DONE
        with self._lock:
            self.ended = end.value
            self._stop_requested = False  # ready for another run of the same view
            self.status_label.value = f"{end.status_text} ({stats.summary()})"
            self.bar.bar_style = end.style
        self._render_text(stats)
        self.chart.layout.display = "none"  # the live preview ends with the run
        self._sync_stop_button()
        if self._handle is not None:
            # The live view gives way to a static record: in a saved notebook, a widget whose
            # kernel is gone reads "model not found" or "VBox(children=...)".
            self._handle.update(run_record(result, stats), raw=True)
            close_tree(self.widget)

    # -- rendering ------------------------------------------------------------------------------
    def _due(self, attr: str, interval: float) -> bool:
        """Throttle: True (and restart the wait) when ``interval`` has passed since last time."""
        now = self._clock()
        if now - getattr(self, attr) < interval:
            return False
        setattr(self, attr, now)
        return True

    def _render_text(self, stats: RunStats) -> None:
        self._last_text = self._clock()
        completion = min(max(float(stats.completion), 0.0), 1.0)
        self.bar.value = completion
        self.percent_label.value = f"{completion:.0%}"
        for key, text in _stat_texts(stats, ended=self.ended is not None).items():
            self.fields[key].value = text
        self.path_label.value = f"path: {stats.path}" if stats.path else ""
        self.renders += 1

    def _render_chart(self, result: ValuationResult) -> None:
        """Draw the lowest and highest current estimates with their 95% intervals.

        A failure here (an odd result, a matplotlib problem) must not end the run: it is shown
        in the status line and the chart is hidden.
        """
        self._last_chart = self._clock()
        try:
            png = self._chart_png(result)
        except Exception as exc:  # noqa: BLE001 - the view must never break the run
            self.view_error = f"{type(exc).__name__}: {exc}"
            self.chart.layout.display = "none"
            return
        if png is not None:
            self.chart.value = png
            self.chart.layout.display = None
            self.chart_renders += 1

    def _chart_png(self, result: ValuationResult) -> bytes | None:
        from matplotlib.figure import Figure

        from dvl_jupyter.plots import figure_to_png, plot_result_errors

        n = len(result)
        if n == 0:
            return None
        k = self.chart_points
        ranked = result.sort()
        split = n > 2 * k
        shown = ranked[np.r_[0:k, n - k:n]] if split else ranked
        if self._figure is None:
            self._figure = Figure(figsize=(4.8, 2.4), dpi=72)
        fig = self._figure
        fig.clear()
        ax = fig.add_subplot()
        plot_result_errors(shown, level=0.05, ax=ax, ylabel="value")
        if split:
            ax.axvline(k - 0.5, color="0.6", linestyle="--", linewidth=1)
        ax.set_title(f"current lowest and highest {k} (95% CI)" if split
                     else "current estimates (95% CI)", fontsize="small")
        ax.tick_params(labelsize="x-small")
        return figure_to_png(fig, dpi=72)

    # -- stop -----------------------------------------------------------------------------------
    def _sync_stop_button(self) -> None:
        """Shown only with a runner and a stop button wanted; enabled only until the end."""
        visible = self.runner is not None and self._want_stop_button and self.ended is None
        self.stop_button.layout.display = None if visible else "none"
        self.stop_button.disabled = not visible or self._stop_requested

    def _on_stop_click(self, _button: Any = None) -> None:
        self.request_stop()

    def request_stop(self) -> None:
        """What Stop does: ask the runner to end after the current round, and say so.

        Ignored without a runner, once asked, and once the run has ended: a double click
        (the frontend disables the button a moment later) or a late one changes nothing.
        """
        with self._lock:
            if self.runner is None or self.ended is not None or self._stop_requested:
                return
            self._stop_requested = True
            self.stop_button.disabled = True
            self.stop_button.description = "Stopping"
            self.status_label.value = "stopping after the current round..."
        self.runner.stop()


def progress_callback(
    runner: ValuationRunner | None = None,
    enabled: bool = True,
    *,
    display: bool = True,
    desc: str | None = None,
) -> ValuationCallback:
    """The progress display that fits where we run, as a runner callback.

    Parameters
    ----------
    runner
        Passed to the widget view so its Stop button can end a background run. The runner
        takes its callbacks at construction, so either build the view first and
        ``view.attach(runner)`` later, or append the view to ``runner.callbacks`` before
        ``runner.start()``.
    enabled
        False gives a callback that does nothing (``--no-progress``).
    display
        Display the widget view at once, in the calling cell (ignored for the text bar,
        which prints itself when the run starts).
    desc
        Caption of the text bar (default: the method's name).

    Returns
    -------
    ValuationCallback
        A :class:`ProgressView` under a kernel with ipywidgets, else a :class:`TextProgress`
        tqdm bar; a no-op callback when ``enabled`` is False.

    Examples
    --------
    >>> runner = ValuationRunner(config)
    >>> runner.callbacks.append(progress_callback(runner))
    >>> runner.start()
    """
    if not enabled:
        return ValuationCallback()
    if has_widget_frontend():
        return ProgressView(runner, display=display)
    return TextProgress(desc=desc)
