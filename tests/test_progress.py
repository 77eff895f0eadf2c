"""The live progress view: throttling, what it shows, Stop, the final state, the text fallback."""

from __future__ import annotations

import IPython
import numpy as np
import pytest

from dvl_jupyter.progress import (
    ProgressView,
    TextProgress,
    has_widget_frontend,
    progress_callback,
)
from dvl_jupyter.runner import RunConfig, ValuationRunner
from dvl_jupyter.valuation import MinUpdates, RunStats, ValuationCallback, ValuationResult
from dvl_jupyter.valuation.utils import format_duration


class FakeClock:
    """Time that moves only when the test says so: throttling becomes deterministic."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FrozenStats(RunStats):
    """RunStats whose elapsed time is fixed (75 s, or ``elapsed_s``), so rate and remaining
    time are known exactly."""

    def __init__(self, *args, elapsed_s: float = 75.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.elapsed_s = elapsed_s

    @property
    def elapsed(self) -> float:
        return self.elapsed_s


class FakeRunner:
    """Just what the view uses of a runner."""

    def __init__(self) -> None:
        self.stops = 0

    def stop(self) -> None:
        self.stops += 1


def finished_result(ended: str) -> ValuationResult:
    result = ValuationResult.zeros(4)
    result.update(np.arange(4), np.array([0.1, -0.2, 0.3, 0.0]))
    result.meta["ended"] = ended
    return result


def tiny_runner(callbacks: list[ValuationCallback]) -> ValuationRunner:
    """A run over 6 points with a utility that trains nothing: the view is what is tested."""
    config = RunConfig(
        utility=lambda s: float(len(s)),
        train=(np.zeros((6, 2)), np.zeros(6)),
        truncation=None,
        stopping=MinUpdates(2),
        cache=None,
        seed=0,
    )
    return ValuationRunner(config, callbacks)


def test_many_evaluations_render_few_times():
    clock = FakeClock()
    view = ProgressView(clock=clock, interval=0.5)
    stats = RunStats()
    view.on_start(None, stats)
    assert view.renders == 1
    for _ in range(1000):  # 1000 calls over 1 second: one call per millisecond
        clock.now += 0.001
        stats.evaluations += 1
        view.on_evaluations(stats)
    assert 2 <= view.renders <= 4  # the start, then at most one every half second
    before = view.renders
    view.on_finish(finished_result("done"), stats)
    assert view.renders == before + 1  # the end is always shown
    assert view.fields["evaluations"].value == "1,000"


def test_chart_is_throttled_and_ends_with_the_run():
    """The live preview is drawn at most once a second while the run goes on; when the run
    ends it goes (the result's own display takes over), rather than staying, stale."""
    clock = FakeClock()
    view = ProgressView(clock=clock, chart_interval=1.0)
    stats = RunStats()
    result = finished_result("done")
    view.on_start(None, stats)
    for _ in range(50):  # 50 updates over 1 second
        clock.now += 0.02
        view.on_update(result, stats)
    assert 1 <= view.chart_renders <= 2
    assert bytes(view.chart.value).startswith(b"\x89PNG")
    assert view.chart.layout.display != "none"
    before = view.chart_renders
    view.on_finish(result, stats)
    assert view.chart_renders == before
    assert view.chart.layout.display == "none"


def test_shown_values_match_the_stats():
    view = ProgressView(clock=FakeClock())
    stats = FrozenStats(evaluations=1234, cache_hits=66, failed_fits=3, permutations=17,
                        completion=0.25, path="one-by-one fits: not a skorch net")
    view.on_start(None, stats)
    assert view.bar.value == 0.25
    assert view.percent_label.value == "25%"
    shown = {key: label.value for key, label in view.fields.items()}
    assert shown == {
        "evaluations": "1,234",
        "rate": "17.3",  # (1234 + 66) / 75 s
        "cache_hits": "66",
        "failed_fits": "3",
        "permutations": "17",
        "reliability": "-",  # no halves recorded yet
        "elapsed": "1m 15s",
        "remaining": "3m 45s",  # 75 s for a quarter: three quarters left
    }
    assert view.path_label.value == "path: one-by-one fits: not a skorch net"
    assert view.status_label.value == "starting"
    stats.stage = "evaluating the full training set"
    view.on_stage(stats)
    assert view.status_label.value == "evaluating the full training set"


def test_remaining_time_is_not_guessed_early_and_not_shown_after_the_end():
    """No ETA before 5% of the run and 5 s: a 35 s run once showed "remaining: 14m 10s"."""
    view = ProgressView(clock=FakeClock())
    view.on_start(None, FrozenStats())
    assert view.fields["remaining"].value == "estimating"
    view.on_evaluations(FrozenStats(completion=0.01, elapsed_s=30))
    view._render_text(FrozenStats(completion=0.01, elapsed_s=30))
    assert view.fields["remaining"].value == "estimating"
    view._render_text(FrozenStats(completion=0.5, elapsed_s=30))
    assert view.fields["remaining"].value == "30s"
    view.on_finish(finished_result("stopped"), FrozenStats(completion=0.5, elapsed_s=30))
    assert view.fields["remaining"].value == "-"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "?"), (float("inf"), "?"), (0.4, "0s"), (59.4, "59s"), (75, "1m 15s"),
     (3600 + 120, "1h 02m")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_stop_button_calls_runner_stop_once_and_says_so():
    runner = FakeRunner()
    view = ProgressView(runner)
    view.on_start(None, RunStats())
    assert view.stop_button.layout.display != "none"
    assert not view.stop_button.disabled
    view.stop_button.click()
    view.stop_button.click()  # a second click on the now disabled button does nothing
    assert runner.stops == 1
    assert view.stop_button.disabled
    assert view.status_label.value.startswith("stopping")


def test_no_runner_no_stop_button():
    view = ProgressView()
    assert view.stop_button.layout.display == "none"
    assert view.stop_button.disabled
    view.stop_button.click()  # nothing to stop, nothing raised
    runner = FakeRunner()
    view.attach(runner)
    assert view.stop_button.layout.display != "none"


@pytest.mark.parametrize(
    ("ended", "status", "style"),
    [
        ("done", "Done", "success"),
        ("time limit", "Done: time limit reached", "success"),
        ("stopped", "Stopped: partial result kept", "warning"),
        ("interrupted", "Interrupted: partial result kept", "warning"),
        ("error", "Failed", "danger"),
    ],
)
def test_final_state_says_how_the_run_ended(ended, status, style):
    runner = FakeRunner()
    view = ProgressView(runner, clock=FakeClock())
    stats = RunStats(evaluations=40, permutations=8, failed_fits=2, completion=1.0)
    view.on_start(None, stats)
    view.on_finish(finished_result(ended), stats)
    assert view.ended == ended
    assert view.status_label.value.startswith(status)
    assert "8 permutations" in view.status_label.value
    assert "2 fits failed" in view.status_label.value
    assert view.bar.bar_style == style
    assert view.stop_button.layout.display == "none"
    view.request_stop()  # too late: the run is over
    assert runner.stops == 0
    assert view.status_label.value.startswith(status)


def test_a_broken_chart_does_not_break_the_run():
    class Broken:
        def __len__(self) -> int:
            return 3

        def sort(self) -> None:
            raise RuntimeError("no sorting today")

    view = ProgressView()
    view.on_update(Broken(), RunStats())  # type: ignore[arg-type]
    assert view.view_error == "RuntimeError: no sorting today"
    assert view.chart.layout.display == "none"


def test_follows_a_real_background_run():
    view = ProgressView()
    runner = tiny_runner([view])
    view.attach(runner)
    runner.start()
    result = runner.wait(timeout=120)
    assert result is not None and not runner.running
    stats = runner.valuation.stats
    assert view.ended == "done"
    assert view.bar.value == 1.0
    assert view.fields["evaluations"].value == f"{stats.evaluations:,}"
    assert view.fields["permutations"].value == str(stats.permutations)
    assert view.path_label.value == "path: function"
    assert view.chart_renders >= 1
    assert view.stop_button.disabled


def test_disabled_progress_is_a_no_op():
    callback = progress_callback(enabled=False)
    assert type(callback) is ValuationCallback


def test_text_bar_outside_a_kernel(capsys):
    assert not has_widget_frontend()  # pytest runs without an IPython kernel
    callback = progress_callback()
    assert isinstance(callback, TextProgress)
    tiny_runner([callback]).run()
    err = capsys.readouterr().err
    assert "TMC-Shapley" in err and "eval" in err


def test_terminal_ipython_gets_the_text_bar(monkeypatch):
    class TerminalShell:  # a shell, but no kernel: no widget frontend
        pass

    monkeypatch.setattr(IPython, "get_ipython", lambda: TerminalShell())
    assert isinstance(progress_callback(), TextProgress)


def test_a_kernel_gets_the_widget_view(monkeypatch):
    class KernelShell:
        kernel = object()

    monkeypatch.setattr(IPython, "get_ipython", lambda: KernelShell())
    runner = FakeRunner()
    view = progress_callback(runner, display=False)
    assert isinstance(view, ProgressView)
    assert view.runner is runner
    assert "application/vnd.jupyter.widget-view+json" in view._repr_mimebundle_()
