"""The labextension in a real browser: JupyterLab 4 and Notebook 7 in Debian's chromium.

One notebook runs a small ``%%shapley`` cell (logistic regression on 20 digits, the label of
every "4" replaced by a string that would run a script if it were HTML) in a real kernel;
the tests then check the chart, the tooltip, the confidence levels, the image grid and the
crafted label, and that the saved notebook renders again with no kernel. A hand-written
10,000-point payload checks that the chart stays bounded and quick.

Screenshots go to ``out/screenshots/``; the server's log to ``out/jupyterlab-server.log``.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from dvl_jupyter.display import MIME_TYPE, load_schema

from .conftest import ROOT, LabServer, Page

CRAFTED = "<img src=x onerror=alert(1)>"
N_POINTS = 20
Z = {90: 1.6448536269514722, 95: 1.959963984540054, 99: 2.5758293035489004}
RUN_TIMEOUT_MS = 240_000

SETUP = f"""\
%load_ext dvl_jupyter
import json
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from dvl_jupyter.datasets import load_digits
from dvl_jupyter.valuation import Dataset

CRAFTED = {CRAFTED!r}

def flatten(x):
    return np.asarray(x).reshape(len(x), -1)

def crafted_labels(y):
    return np.array([CRAFTED if v == 4 else str(v) for v in y], dtype=object)

digits_train, digits_test = load_digits(train_size=0.7, random_state=36)
train = Dataset(digits_train.x[:{N_POINTS}], crafted_labels(digits_train.y[:{N_POINTS}]),
                names=digits_train.names[:{N_POINTS}])
test = Dataset(digits_test.x[:80], crafted_labels(digits_test.y[:80]))
clf = make_pipeline(FunctionTransformer(flatten), LogisticRegression(max_iter=200))
"""

SHAPLEY = """\
%%shapley -o result --no-cache --no-progress --seed 1
model = clf
train, test = train, test
stopping = MinUpdates(8)
"""

REPORT = """\
_keys = [str(int(i)) for i in result.indices]
print(json.dumps({"values": dict(zip(_keys, map(float, result.values))),
                  "stderr": dict(zip(_keys, map(float, result.stderr)))}))
"""


def js_format(v: float) -> str:
    """The renderer's formatValue (3 significant digits), in Python."""
    if not math.isfinite(v):
        return "n/a"
    if v == 0:
        return "0"
    if abs(v) < 1e-3 or abs(v) >= 1e5:
        mantissa, exp = f"{v:.2e}".split("e")
        return f"{mantissa}e{int(exp)}"
    text = repr(float(f"{v:.3g}"))
    return text[:-2] if text.endswith(".0") else text


def write_notebook(path: Path, sources: list[str], outputs: list[list[Any]] | None = None) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    for i, src in enumerate(sources):
        cell = nbformat.v4.new_code_cell(src)
        if outputs is not None:
            cell.outputs = outputs[i]
        nb.cells.append(cell)
    nbformat.write(nb, path)


def record_timing(name: str, value: float) -> None:
    """Keep a measured time in out/browser-timings.json (read by people, not by tests)."""
    path = ROOT / "out" / "browser-timings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = round(value, 3)
    path.write_text(json.dumps(data, indent=1, sort_keys=True))


# -- JupyterLab helpers ---------------------------------------------------------------------
def open_in_lab(p: Page, lab: LabServer, name: str) -> None:
    p.page.goto(lab.url(f"lab/tree/{name}", reset=""))
    p.page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=60_000)
    p.page.wait_for_selector(".jp-NotebookPanel .jp-Notebook", timeout=60_000)


def lab_command(p: Page, command: str, args: dict[str, Any] | None = None) -> Any:
    return p.page.evaluate(
        "([c, a]) => window.jupyterapp.commands.execute(c, a)", [command, args or {}]
    )


def wait_kernel_idle(p: Page) -> None:
    p.page.wait_for_function(
        """() => {
            const w = window.jupyterapp.shell.currentWidget;
            const k = w && w.sessionContext && w.sessionContext.session
                && w.sessionContext.session.kernel;
            return k && k.status === 'idle';
        }""",
        timeout=120_000,
    )


def error_bars(p: Page, root: Any) -> list[tuple[str, float]]:
    return root.locator(".dvl-errorbar").evaluate_all(
        "els => els.map(e => [e.getAttribute('d'), Number(e.dataset.halfwidth)])"
    )


def open_chart(p: Page, lab: LabServer) -> Any:
    """Open the executed notebook in JupyterLab; the renderer's root, once it has drawn."""
    open_in_lab(p, lab, "shapley.ipynb")
    root = p.page.locator(".dvl-Valuation")
    root.locator(".dvl-point").first.wait_for()
    return root


# -- the executed notebook ------------------------------------------------------------------
@pytest.fixture(scope="module")
def executed(lab: LabServer, browser: Any) -> dict[str, Any]:
    """Run the %%shapley notebook in JupyterLab, save it, and return the kernel's numbers."""
    write_notebook(lab.root / "shapley.ipynb", [SETUP, SHAPLEY, REPORT])
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = Page(context.new_page())
    try:
        open_in_lab(p, lab, "shapley.ipynb")
        wait_kernel_idle(p)
        started = time.monotonic()
        lab_command(p, "notebook:run-all-cells")
        report = p.page.locator(".jp-OutputArea-output pre", has_text='{"values"')
        report.wait_for(timeout=RUN_TIMEOUT_MS)
        elapsed = time.monotonic() - started
        record_timing("shapley_notebook_run_s", elapsed)
        numbers = json.loads(report.inner_text())
        p.page.locator(".dvl-Valuation .dvl-point").first.wait_for(timeout=30_000)
        lab_command(p, "docmanager:save")
        p.page.wait_for_function(
            "() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000
        )
        assert not p.dialogs, f"a dialog opened while running: {p.dialogs}"
        return {"numbers": numbers, "elapsed": elapsed}
    except Exception:
        p.screenshot("failed-run")
        raise
    finally:
        context.close()


def test_chart_of_a_real_shapley_run(lab: LabServer, page: Page, executed: dict[str, Any]):
    """One mark per point; hover shows the kernel's value; levels change the bars."""
    values: dict[str, float] = executed["numbers"]["values"]
    stderr: dict[str, float] = executed["numbers"]["stderr"]
    root = open_chart(page, lab)
    assert root.count() == 1
    assert root.locator(".dvl-point").count() == N_POINTS
    marked = root.locator(".dvl-point").evaluate_all("els => els.map(e => e.dataset.index)")
    assert sorted(marked) == sorted(values)

    # Hover a point: the tooltip shows its index and value +- the 95% half-width.
    root.scroll_into_view_if_needed()
    point = root.locator(".dvl-point").nth(3)
    index = point.get_attribute("data-index")
    point.hover()
    tooltip = root.locator(".dvl-tooltip")
    tooltip.wait_for(state="visible")
    text = tooltip.inner_text()
    assert re.search(rf"index\s+{index}\b", text), text
    expected = f"{js_format(values[index])} ± {js_format(Z[95] * stderr[index])} (95% CI)"
    assert expected in text, (expected, text)
    assert tooltip.locator("img.dvl-thumb").count() == 1
    page.screenshot("lab-chart-tooltip", root)

    # 95% -> 99%: every error bar changes, its half-width by z99 / z95.
    before = error_bars(page, root)
    root.locator("select.dvl-level").select_option("99")
    after = error_bars(page, root)
    assert len(before) == len(after) > 0
    # (a bar of a point whose updates were all equal has a half-width of 0, or of float noise
    # around 0 from the running variance, and stays a dot)
    assert all(b[0] != a[0] for b, a in zip(before, after, strict=True) if b[1] > 1e-9), [
        (b, a) for b, a in zip(before, after, strict=True) if b[0] == a[0]]
    for b, a in zip(before, after, strict=True):
        assert a[1] == pytest.approx(b[1] * Z[99] / Z[95], rel=1e-9)
    assert "99% intervals" in root.locator(".dvl-status").inner_text()
    root.locator("select.dvl-level").select_option("90")
    assert root.locator(".dvl-errorbar").first.get_attribute("data-halfwidth") != str(after[0][1])
    page.screenshot("lab-chart-90", root)
    assert not page.dialogs and not page.errors, (page.dialogs, page.errors)


def test_keyboard_zoom_sort_and_subset(lab: LabServer, page: Page, executed: dict[str, Any]):
    root = open_chart(page, lab)
    chart = root.locator(".dvl-chart")
    chart.focus()
    page.page.keyboard.press("ArrowRight")
    tooltip = root.locator(".dvl-tooltip")
    tooltip.wait_for(state="visible")
    assert "1 of 20 (1 = highest)" in tooltip.inner_text()
    page.page.keyboard.press("+")
    page.page.keyboard.press("+")
    page.page.wait_for_timeout(100)
    assert root.locator(".dvl-point").count() < N_POINTS
    assert re.search(r"ranks 1–\d+ shown \(\d+ of 20 points\)",
                     root.locator(".dvl-status").inner_text())
    page.page.keyboard.press("End")
    page.page.wait_for_timeout(100)
    assert "20 of 20" in tooltip.inner_text()
    root.get_by_role("button", name="Show all points").click()
    assert root.locator(".dvl-point").count() == N_POINTS

    # Bottom 5, by keyboard on the real controls.
    root.locator("select.dvl-subset").select_option("bottom")
    k = root.locator("input.dvl-k")
    k.fill("5")
    k.press("Enter")
    k.blur()
    page.page.wait_for_timeout(100)
    assert root.locator(".dvl-point").count() == 5
    root.locator("select.dvl-sort").select_option("ascending")
    ys = root.locator(".dvl-point").evaluate_all(
        "els => els.map(e => Number(e.getAttribute('cy')))"
    )
    assert ys == sorted(ys, reverse=True)  # ascending values: SVG y decreases
    page.screenshot("lab-bottom5-ascending", root)
    assert not page.dialogs and not page.errors, (page.dialogs, page.errors)


def test_grid_and_crafted_label(lab: LabServer, page: Page, executed: dict[str, Any]):
    """The grid shows the thumbnails; the crafted label is text, and nothing ran."""
    root = open_chart(page, lab)
    root.get_by_role("button", name="Show the image grid").click()
    cells = root.locator(".dvl-cell")
    cells.first.wait_for()
    assert cells.count() == N_POINTS
    images = root.locator("img.dvl-cell-image")
    assert images.count() == N_POINTS
    page.page.wait_for_function(
        "() => [...document.querySelectorAll('img.dvl-cell-image')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    labels = root.locator(".dvl-cell-label").all_inner_texts()
    assert CRAFTED in labels
    # The crafted string is shown as characters: no element was made of it.
    assert page.page.locator("img[src='x']").count() == 0
    assert page.page.locator(".jp-OutputArea img[onerror]").count() == 0
    page.screenshot("lab-grid", root)

    # Its point's tooltip in the chart shows the same characters.
    root.get_by_role("button", name="Show the chart of values").click()
    crafted_points = root.locator(".dvl-point").evaluate_all("els => els.map(e => e.dataset.index)")
    shown = False
    for index in crafted_points:
        root.locator(f".dvl-point[data-index='{index}']").hover()
        text = root.locator(".dvl-tooltip").inner_text()
        if CRAFTED in text:
            shown = True
            page.screenshot("lab-crafted-label-tooltip", root)
            break
    assert shown, "no tooltip showed the crafted label"
    assert page.page.locator("img[src='x']").count() == 0
    assert not page.dialogs, f"the crafted label ran a script: {page.dialogs}"
    assert not page.errors, page.errors


def test_dark_theme(lab: LabServer, page: Page, executed: dict[str, Any]):
    root = open_chart(page, lab)
    lab_command(page, "apputils:change-theme", {"theme": "JupyterLab Dark"})
    page.page.wait_for_function(
        "() => document.body.dataset.jpThemeLight === 'false'", timeout=30_000
    )
    colors = root.evaluate(
        """r => ({
            bg: getComputedStyle(r.querySelector('.dvl-chart')).backgroundColor,
            point: getComputedStyle(r.querySelector('.dvl-point')).fill,
            text: getComputedStyle(r.querySelector('.dvl-tick')).fill,
        })"""
    )
    root.locator(".dvl-point").nth(2).hover()
    page.screenshot("lab-chart-dark", root)
    lab_command(page, "apputils:change-theme", {"theme": "JupyterLab Light"})
    page.page.wait_for_function("() => document.body.dataset.jpThemeLight === 'true'")
    light_bg = root.evaluate("r => getComputedStyle(r.querySelector('.dvl-chart')).backgroundColor")
    assert colors["bg"] != light_bg, "the chart background did not follow the theme"
    assert colors["text"] != colors["bg"]


def test_saved_notebook_renders_without_kernel(
    lab: LabServer, page: Page, executed: dict[str, Any]
):
    """Reopened from disk with every kernel shut down, the saved output still draws."""
    lab.shutdown_kernels()
    saved = nbformat.read(lab.root / "shapley.ipynb", as_version=4)
    bundles = [
        o for c in saved.cells for o in c.get("outputs", []) if MIME_TYPE in o.get("data", {})
    ]
    assert len(bundles) == 1, "the saved notebook has no valuation output"
    # A copy whose kernel does not exist: opening it cannot start one.
    saved.metadata["kernelspec"] = {"name": "no-such-kernel", "display_name": "No such kernel"}
    saved.metadata.pop("language_info", None)  # else JupyterLab picks a kernel by language
    nbformat.write(saved, lab.root / "saved-no-kernel.ipynb")

    open_in_lab(page, lab, "saved-no-kernel.ipynb")
    dialog = page.page.locator(".jp-Dialog")
    try:
        dialog.wait_for(timeout=15_000)
        # "Select Kernel": keep the notebook without one.
        select = dialog.locator("select")
        if select.count():
            select.select_option(label="No Kernel")
        dialog.locator(".jp-mod-accept").click()
    except Exception:  # noqa: BLE001 - no dialog: JupyterLab opened it without a kernel
        pass
    root = page.page.locator(".dvl-Valuation")
    root.locator(".dvl-point").first.wait_for(timeout=30_000)
    assert root.locator(".dvl-point").count() == N_POINTS
    assert lab.api("kernels") == [], "a kernel was started"
    root.scroll_into_view_if_needed()
    page.page.wait_for_timeout(500)
    page.screenshot("lab-reopened-no-kernel")
    assert not page.dialogs and not page.errors, (page.dialogs, page.errors)


def test_notebook7_renders_the_saved_result(lab: LabServer, page: Page, executed: dict[str, Any]):
    page.page.goto(lab.url("notebooks/shapley.ipynb"))
    root = page.page.locator(".dvl-Valuation")
    root.locator(".dvl-point").first.wait_for(timeout=60_000)
    assert root.locator(".dvl-point").count() == N_POINTS
    root.scroll_into_view_if_needed()
    root.locator(".dvl-point").nth(5).hover()
    root.locator(".dvl-tooltip").wait_for(state="visible")
    page.screenshot("notebook7-chart", root)
    assert not page.dialogs and not page.errors, (page.dialogs, page.errors)


# -- a large hand-written result ------------------------------------------------------------
def large_payload(n: int) -> dict[str, Any]:
    """A schema-valid payload listing all ``n`` points (more than display.py ever lists)."""
    import numpy as np

    rng = np.random.default_rng(0)
    values = np.sort(rng.normal(0.0, 0.01, n))
    stderr = rng.uniform(0.001, 0.004, n)
    payload = {
        "version": 1,
        "method": "TMC-Shapley",
        "indices": [int(i) for i in rng.permutation(n)],
        "names": [f"point-{i}" for i in range(n)],
        "values": [float(v) for v in values],
        "stderr": [float(s) for s in stderr],
        "counts": [int(c) for c in rng.integers(50, 150, n)],
        "labels": [CRAFTED if i % 1000 == 0 else str(i % 10) for i in range(n)],
        "summary": {
            "n": n,
            "shown": n,
            "omitted": 0,
            "non_finite": 0,
            "mean": float(values.mean()),
            "quantiles": {
                "levels": [0.0, 0.5, 1.0],
                "values": [float(values[0]), float(np.median(values)), float(values[-1])],
            },
            "histogram": {"edges": [], "counts": []},
        },
        "meta": {
            "evaluations": 123456,
            "cache_hits": 7890,
            "elapsed": 4321.0,
            "settings": {"stopping": "MinUpdates(100)", CRAFTED: CRAFTED},
        },
    }
    import jsonschema

    jsonschema.validate(payload, load_schema())
    return payload


def test_ten_thousand_points_stay_bounded_and_quick(lab: LabServer, page: Page):
    n = 10_000
    output = nbformat.v4.new_output(
        "display_data", data={MIME_TYPE: large_payload(n), "text/plain": "ValuationResult"}
    )
    write_notebook(lab.root / "large.ipynb", ["# a saved 10,000-point result"], [[output]])
    open_in_lab(page, lab, "large.ipynb")
    root = page.page.locator(".dvl-Valuation")
    root.locator(".dvl-band").first.wait_for(timeout=60_000)
    width = root.locator("svg.dvl-svg").evaluate("s => s.getBoundingClientRect().width")
    groups = int(root.locator(".dvl-band").first.get_attribute("data-groups"))
    assert 0 < groups <= width / 2, (groups, width)
    assert root.locator(".dvl-marks > *").count() <= 4  # band and range paths, by sign
    assert root.locator(".dvl-point").count() == 0
    assert "groups of" in root.locator(".dvl-status").inner_text()
    page.screenshot("lab-10000-points", root)

    # 30 zoom/pan steps by keyboard: each redraw, with the layout it forces, takes well
    # under a frame (drawing is bounded by the pixel budget, not by the 10,000 points).
    steps = root.evaluate(
        """async r => {
            const chart = r.querySelector('.dvl-chart');
            const keys = ['+', '+', '+', 'PageDown', 'PageDown', '-', 'PageUp', '+', '+', '+'];
            const times = [];
            for (let i = 0; i < 30; i++) {
                const t0 = performance.now();
                chart.dispatchEvent(new KeyboardEvent('keydown', {key: keys[i % keys.length],
                                                                  bubbles: true}));
                void chart.getBoundingClientRect().height;  // style and layout, now
                void r.querySelector('svg').getBBox();
                times.push(performance.now() - t0);
                await new Promise(res => requestAnimationFrame(() => res()));
            }
            times.sort((a, b) => a - b);
            return {mean: times.reduce((a, b) => a + b, 0) / times.length,
                    median: times[15], max: times[29]};
        }"""
    )
    mean_ms = steps["mean"]
    record_timing("10k_redraw_ms_mean", steps["mean"])
    record_timing("10k_redraw_ms_max", steps["max"])
    # A frame is 16.7 ms at 60 Hz; the bound leaves room for a loaded 2-core CI machine.
    assert steps["median"] < 16, f"{steps} ms per zoom/pan step"
    assert mean_ms < 25, f"{steps} ms per zoom/pan step"
    # Zoomed in far enough, single points appear, and only the visible ones are drawn.
    for _ in range(8):
        root.get_by_role("button", name="Zoom in (+)").click()
    points = root.locator(".dvl-point").count()
    assert 0 < points <= 100, points
    root.locator(".dvl-point").nth(points // 2).hover()
    root.locator(".dvl-tooltip").wait_for(state="visible")
    page.screenshot("lab-10000-zoomed", root)
    # The settings' crafted key and value are text too.
    root.locator(".dvl-settings summary").click()
    assert CRAFTED in root.locator(".dvl-settings").inner_text()
    assert page.page.locator("img[src='x']").count() == 0
    assert not page.dialogs and not page.errors, (page.dialogs, page.errors)
