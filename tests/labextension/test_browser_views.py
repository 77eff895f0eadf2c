"""The result's views in a real browser, from outputs that dvl_jupyter.display wrote.

No kernel runs here: each test writes a notebook (or a bare HTML page) from the MIME bundle
of a hand-made ``ValuationResult`` and opens it, as a saved notebook is opened:

- ties (accuracy on a small test set gives many): one rank per point in the chart's ticks,
  the tooltip, the table and the image grid, in both sort directions, and a gap marker only
  where a large result really leaves points out;
- the toolbar's contrast in JupyterLab's light and dark themes, hovered or not;
- the exports (CSV, SVG, PNG) as downloads;
- the standalone HTML output alone in chromium, as VS Code's webview and Colab show it
  (scripts run) and as GitHub shows it (scripts do not run: the static PNG and table).

Screenshots go to ``out/screenshots/``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest

from dvl_jupyter.display import mimebundle
from dvl_jupyter.valuation import Dataset, ValuationResult

from .conftest import SCREENSHOTS, LabServer, Page
from .test_browser import lab_command, open_in_lab, write_notebook

#: WCAG AA for normal text.
MIN_CONTRAST = 4.5


def tied_result(n: int = 60, seed: int = 4) -> ValuationResult:
    """Values in steps of 1/20, as accuracy on a test set of 20 gives: many exact ties."""
    rng = np.random.default_rng(seed)
    values = rng.integers(-3, 5, n) / 20
    result = ValuationResult(values, rng.random(n) * 0.004, np.full(n, 8),
                             algorithm="TMC-Shapley", names=[f"img_${i}_$2.png" for i in range(n)],
                             meta={"evaluations": 480, "cache_hits": 1, "elapsed_s": 75.2,
                                   "ended": "done",
                                   "settings": {"stopping": "MinUpdates(8)", "scheduler": None,
                                                "seed": 1}})
    result.display_data = Dataset(rng.random((n, 1, 8, 8)).astype(np.float32),
                                  rng.integers(0, 10, n))
    return result


def by_rank(result: ValuationResult) -> list[int]:
    """The data indices in rank order, by the stated rule: highest first, ties by index."""
    return sorted(result.indices.tolist(),
                  key=lambda i: (-result.values[list(result.indices).index(i)], i))


def output_of(result: ValuationResult) -> Any:
    bundle = mimebundle(result)
    return nbformat.v4.new_output("display_data", data=bundle)


def open_result(p: Page, lab: LabServer, name: str, result: ValuationResult) -> Any:
    write_notebook(lab.root / f"{name}.ipynb", ["# a saved result"], [[output_of(result)]])
    open_in_lab(p, lab, f"{name}.ipynb")
    root = p.page.locator(".dvl-Valuation")
    root.locator(".dvl-point, .dvl-band").first.wait_for(timeout=60_000)
    root.scroll_into_view_if_needed()
    return root


def tick_labels(root: Any) -> tuple[list[int], list[float]]:
    ticks = root.locator(".dvl-slot-tick").evaluate_all(
        "els => els.map(e => [e.textContent, Number(e.getAttribute('x'))])")
    return [int(t.replace(",", "")) for t, _ in ticks], [x for _, x in ticks]


def assert_even(labels: list[int], xs: list[float], px_per_rank: float | None = None) -> None:
    """Ticks on multiples of one step, and (between consecutive ranks) evenly spaced."""
    steps = {abs(b - a) for a, b in zip(labels, labels[1:], strict=False)}
    step = min(steps)
    assert all(t % step == 0 for t in labels), labels
    spacing = [b - a for a, b in zip(xs, xs[1:], strict=False)]
    even = [d for d, (a, b) in zip(spacing, zip(labels, labels[1:], strict=False), strict=True)
            if abs(b - a) == step]
    assert max(even) - min(even) < 0.5, (labels, spacing)


def ranks_by_keyboard(p: Page, root: Any, n: int) -> list[int]:
    """The rank the tooltip gives each slot, stepping through them with the arrow keys."""
    root.locator(".dvl-chart").focus()
    p.page.keyboard.press("Home")
    ranks = []
    for _ in range(n):
        text = root.locator(".dvl-tip-rank").inner_text()
        ranks.append(int(text.split(" of ")[0].replace(",", "")))
        p.page.keyboard.press("ArrowRight")
    return ranks


def test_ties_rank_alike_in_every_view_and_both_directions(lab: LabServer, page: Page):
    result = tied_result()
    n = len(result)
    assert len(set(result.values)) < 10  # many ties
    root = open_result(page, lab, "ties", result)
    ranked = by_rank(result)
    for sort, ranks in (("descending", list(range(1, n + 1))),
                        ("ascending", list(range(n, 0, -1)))):
        root.locator("select.dvl-sort").select_option(sort)
        order = ranked if sort == "descending" else ranked[::-1]
        # chart: every point listed, so no gap marker; round, evenly spaced rank ticks
        assert root.locator(".dvl-gap").count() == 0
        assert root.locator(".dvl-gap-label").count() == 0
        labels, xs = tick_labels(root)
        assert labels == sorted(labels, reverse=sort == "ascending")
        assert_even(labels, xs)
        points = root.locator(".dvl-point").evaluate_all("els => els.map(e => +e.dataset.index)")
        assert points == order
        assert ranks_by_keyboard(page, root, n) == ranks
        root.locator(".dvl-point").nth(30).hover()
        page.screenshot(f"lab-ties-{sort}", root)
        # table: the rank column reads 1..60 (60..1), the indices in the same order
        root.get_by_role("button", name="Show the table of values").click()
        rows = root.locator(".dvl-tableview tbody tr").evaluate_all(
            "trs => trs.map(tr => [tr.children[0].textContent, +tr.children[1].textContent])")
        assert rows == [[str(r), i] for r, i in zip(ranks, order, strict=True)]
        page.screenshot(f"lab-ties-table-{sort}", root)
        # grid: #1 before #2 (#60 before #59)
        root.get_by_role("button", name="Show the image grid").click()
        cells = root.locator(".dvl-cell-rank").all_inner_texts()
        assert [int(c.split(" · ")[0][1:]) for c in cells] == ranks
        page.screenshot(f"lab-ties-grid-{sort}", root)
        root.get_by_role("button", name="Show the chart of values").click()
    assert not page.dialogs and not page.errors, (page.dialogs, page.errors)


def test_a_large_result_with_ties_has_one_gap_where_points_are_left_out(
    lab: LabServer, page: Page
):
    n = 1257
    rng = np.random.default_rng(7)
    result = ValuationResult(rng.integers(-20, 40, n) / 400, rng.random(n) * 1e-5,
                             np.full(n, 4), algorithm="TMC-Shapley")
    result.display_data = Dataset(rng.random((n, 1, 8, 8)).astype(np.float32),
                                  rng.integers(0, 10, n))
    root = open_result(page, lab, "large-ties", result)
    status = root.locator(".dvl-status-text")
    for sort in ("descending", "ascending"):
        root.locator("select.dvl-sort").select_option(sort)
        assert root.locator(".dvl-gap").count() == 1
        assert root.locator(".dvl-gap-label").text_content() == "257 not listed"
        text = status.inner_text()
        assert text.startswith("ranks 1–500 and 758–1,257 shown (all 1,000 listed points)"
                               if sort == "descending" else
                               "ranks 758–1,257 and 1–500 shown (all 1,000 listed points)"), text
        labels, xs = tick_labels(root)
        assert_even(labels, xs)
        assert not any(501 <= t <= 757 for t in labels)  # no tick in the left-out ranks
        # hovering inside a group shows the point under the pointer, with its thumbnail
        box = root.locator("svg.dvl-svg").bounding_box()
        page.page.mouse.move(box["x"] + 64 + 20, box["y"] + 150)
        tooltip = root.locator(".dvl-tooltip")
        tooltip.wait_for(state="visible")
        assert "group" in tooltip.inner_text()
        assert tooltip.locator("img.dvl-thumb").count() == 1
        page.screenshot(f"lab-1257-{sort}", root)
        root.get_by_role("button", name="Show the table of values").click()
        first = root.locator(".dvl-tableview tbody tr td:first-child").all_inner_texts()
        expected = range(1, 101) if sort == "descending" else range(1257, 1157, -1)
        assert first == [f"{r:,}" for r in expected]
        root.get_by_role("button", name="Show the chart of values").click()
    assert not page.dialogs and not page.errors, (page.dialogs, page.errors)


CONTRAST_JS = """
(els) => {
  const rgb = s => { const m = s.match(/[\\d.]+/g).map(Number); return m.slice(0, 3); };
  const lum = c => { const [r, g, b] = c.map(v => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  return els.map(e => { const s = getComputedStyle(e);
    const a = lum(rgb(s.color)), b = lum(rgb(s.backgroundColor));
    return [e.textContent, s.color, s.backgroundColor,
            (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)]; });
}
"""


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_toolbar_buttons_keep_their_contrast_hovered_or_not(lab: LabServer, page: Page, theme):
    root = open_result(page, lab, "contrast", tied_result(20))
    lab_command(page, "apputils:change-theme", {"theme": theme})
    light = "true" if theme.endswith("Light") else "false"
    page.page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'",
                                timeout=30_000)
    page.page.wait_for_timeout(300)
    buttons = root.locator(".dvl-toolbar .dvl-button:visible")
    pressed = root.locator(".dvl-button[aria-pressed='true']")
    assert pressed.inner_text() == "Chart"
    for state in ("rest", "hover-pressed", "hover-other"):
        if state == "hover-pressed":
            pressed.hover()
        elif state == "hover-other":
            root.get_by_role("button", name="Show the table of values").hover()
        page.page.wait_for_timeout(150)  # any transition
        for text, color, bg, ratio in buttons.evaluate_all(CONTRAST_JS):
            assert ratio >= MIN_CONTRAST, (theme, state, text, color, bg, ratio)
        if state == "hover-pressed":
            page.screenshot(f"toolbar-{theme.split()[-1].lower()}-pressed-hover",
                            root.locator(".dvl-toolbar"))
    lab_command(page, "apputils:change-theme", {"theme": "JupyterLab Light"})


def test_settings_with_a_null_value_stay_in_pairs(lab: LabServer, page: Page):
    root = open_result(page, lab, "settings", tied_result(20))
    root.locator(".dvl-settings summary").click()
    rows = root.locator(".dvl-settings-list").evaluate(
        """dl => [...dl.querySelectorAll('dt')].map(dt => {
            const dd = dt.nextElementSibling;
            return [dt.textContent, dd.textContent,
                    dt.getBoundingClientRect().top, dd.getBoundingClientRect().top];
        })""")
    assert ["scheduler", "None"] in [r[:2] for r in rows]
    for key, value, top_key, top_value in rows:
        assert abs(top_key - top_value) < 1, (key, value, top_key, top_value)
    page.screenshot("lab-settings", root.locator(".dvl-header"))


def test_exports_download_the_chart_and_the_points(lab: LabServer, page: Page, tmp_path: Path):
    result = tied_result()
    root = open_result(page, lab, "export", result)
    files = {}
    for label in ("Download the shown points as CSV", "Download the chart as SVG",
                  "Download the chart as PNG"):
        with page.page.expect_download() as info:
            root.get_by_role("button", name=label).click()
        download = info.value
        path = tmp_path / download.suggested_filename
        download.save_as(path)
        files[path.suffix] = path
    assert {p.name for p in files.values()} == {
        "tmc-shapley-values.csv", "tmc-shapley-values.svg", "tmc-shapley-values.png"}
    rows = list(csv.DictReader(io.StringIO(files[".csv"].read_text())))
    assert [int(r["index"]) for r in rows] == by_rank(result)
    assert [int(r["rank"]) for r in rows] == list(range(1, 61))
    assert rows[0]["name"] == result.names[list(result.indices).index(int(rows[0]["index"]))]
    svg = files[".svg"].read_text()
    assert svg.startswith("<svg") and svg.count('class="dvl-point') == 60
    assert "var(--" not in svg  # colours written out, so it looks the same outside the page
    png = files[".png"].read_bytes()
    assert png.startswith(b"\x89PNG")
    width = int.from_bytes(png[16:20], "big")
    chart_width = root.locator("svg.dvl-svg").evaluate("s => s.getBoundingClientRect().width")
    assert abs(width - 2 * chart_width) <= 2  # drawn at twice the size, for sharpness
    # look at them as a user would
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "export-chart.png").write_bytes(png)
    assert not page.errors, page.errors


# -- the standalone HTML --------------------------------------------------------------------
#: VS Code's dark theme variables, as its notebook webview defines them.
VSCODE_DARK = {
    "--vscode-editor-background": "#1e1e1e",
    "--vscode-editor-foreground": "#d4d4d4",
    "--vscode-descriptionForeground": "#ccccccb3",
    "--vscode-button-background": "#0e639c",
    "--vscode-button-foreground": "#ffffff",
    "--vscode-button-hoverBackground": "#1177bb",
    "--vscode-editorWidget-background": "#252526",
    "--vscode-editorWidget-border": "#454545",
    "--vscode-errorForeground": "#f48771",
}

#: How VS Code's notebook webview shows an HTML output: inserted as HTML, then each script
#: re-created and run at the end of the output's container (webviewPreloads' domEval).
VSCODE_INSERT = """
([html, vars]) => {
  for (const [k, v] of Object.entries(vars)) document.body.style.setProperty(k, v);
  const container = document.createElement('div');
  container.className = 'output';
  document.body.appendChild(container);
  container.innerHTML = html;
  for (const node of [...container.getElementsByTagName('script')]) {
    const tag = document.createElement('script');
    tag.text = node.innerText;
    if (node.type) tag.setAttribute('type', node.type);
    container.appendChild(tag).parentNode.removeChild(tag);
  }
}
"""


@pytest.fixture
def standalone_page(browser: Any, tmp_path: Path):
    """A fresh page (a context of its own); ``scripts=False`` as GitHub shows HTML."""
    contexts = []

    def make(scripts: bool = True) -> Page:
        context = browser.new_context(viewport={"width": 1100, "height": 900},
                                      java_script_enabled=scripts)
        contexts.append(context)
        return Page(context.new_page())

    yield make
    for c in contexts:
        c.close()


def test_standalone_html_draws_the_chart_alone_as_in_vs_code(standalone_page: Any):
    from dvl_jupyter import standalone

    if standalone.bundle_js() is None:
        pytest.fail("dvl_jupyter/labextension/standalone.js is not built: make labextension")
    result = tied_result()
    html = mimebundle(result)["text/html"]
    p = standalone_page()
    p.page.set_content("<!doctype html><html><head><meta charset='utf-8'></head>"
                       "<body style='margin:12px'></body></html>")
    p.page.evaluate(VSCODE_INSERT, [html, VSCODE_DARK])
    root = p.page.locator(".dvl-Valuation")
    root.locator(".dvl-point").first.wait_for(timeout=10_000)
    assert root.locator(".dvl-point").count() == 60
    assert p.page.locator(".dvl-valuation").evaluate("e => getComputedStyle(e).display") == "none"
    # it follows VS Code's theme: the editor background, the button colours
    colors = root.evaluate("""r => ({
        chart: getComputedStyle(r.querySelector('.dvl-chart')).backgroundColor,
        pressed: getComputedStyle(r.querySelector('[aria-pressed=true]')).backgroundColor})""")
    assert colors == {"chart": "rgb(30, 30, 30)", "pressed": "rgb(14, 99, 156)"}
    for text, color, bg, ratio in root.locator(".dvl-toolbar .dvl-button:visible").evaluate_all(
            CONTRAST_JS):
        assert ratio >= MIN_CONTRAST, (text, color, bg, ratio)
    # hover: the tooltip, with the rank by the rule and the thumbnail
    point = root.locator(".dvl-point").nth(4)
    point.hover()
    tooltip = root.locator(".dvl-tooltip")
    tooltip.wait_for(state="visible")
    assert "5 of 60 (1 = highest)" in tooltip.inner_text()
    assert int(point.get_attribute("data-index")) == by_rank(result)[4]
    assert tooltip.locator("img.dvl-thumb").count() == 1
    assert "(95% CI)" in tooltip.inner_text()
    p.screenshot("standalone-vscode-dark-tooltip", root)
    # the other views work too, and strings are text
    root.get_by_role("button", name="Show the table of values").click()
    assert "img_$0_$2.png" in root.locator(".dvl-tableview").inner_text()
    assert not p.errors and not p.all_errors, p.all_errors


def test_standalone_html_as_a_saved_page_and_without_scripts(standalone_page: Any,
                                                             tmp_path: Path):
    result = tied_result()
    result.meta["settings"]["crafted"] = "<img src=x onerror=alert(1)>"
    html = mimebundle(result)["text/html"]
    page_file = tmp_path / "result.html"
    page_file.write_text(f"<!doctype html><meta charset='utf-8'><body>{html}</body>")
    # as nbconvert's HTML or Colab: the page itself, scripts running
    p = standalone_page()
    p.page.goto(page_file.as_uri())
    p.page.locator(".dvl-Valuation .dvl-point").first.wait_for(timeout=10_000)
    assert p.page.locator(".dvl-Valuation").count() == 1
    p.page.locator(".dvl-settings summary").click()
    assert "<img src=x onerror=alert(1)>" in p.page.locator(".dvl-settings").inner_text()
    assert p.page.locator("img[src='x']").count() == 0 and not p.dialogs
    p.screenshot("standalone-light", p.page.locator(".dvl-Valuation"))
    assert not p.all_errors, p.all_errors
    # as GitHub: no scripts, so the static PNG and table
    q = standalone_page(scripts=False)
    q.page.goto(page_file.as_uri())
    static = q.page.locator(".dvl-valuation")
    assert static.is_visible()
    assert q.page.locator("img.dvl-png").evaluate("i => i.complete && i.naturalWidth") > 500
    rows = static.locator("tbody tr").all_inner_texts()
    assert rows[0].split("\t")[:2] == ["1", f"img_${by_rank(result)[0]}_$2.png"]
    assert q.page.locator(".dvl-Valuation").count() == 0
    q.screenshot("standalone-no-scripts")


def test_nbconvert_html_shows_the_interactive_chart(standalone_page: Any, tmp_path: Path):
    """nbconvert's HTML takes an output's text/html: the script draws the same view."""
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("result")
    cell.outputs = [output_of(tied_result())]
    nb.cells.append(cell)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    page_file = tmp_path / "exported.html"
    page_file.write_text(body, encoding="utf-8")
    p = standalone_page()
    p.page.goto(page_file.as_uri())
    root = p.page.locator(".dvl-Valuation")
    root.locator(".dvl-point").first.wait_for(timeout=10_000)
    assert root.locator(".dvl-point").count() == 60
    # JupyterLab's theme variables of the exported page, not the fallbacks
    bg = root.locator(".dvl-chart").evaluate("e => getComputedStyle(e).backgroundColor")
    assert bg == "rgb(255, 255, 255)"
    root.locator(".dvl-point").nth(10).hover()
    root.locator(".dvl-tooltip").wait_for(state="visible")
    root.scroll_into_view_if_needed()
    p.screenshot("nbconvert-html-chart", root)
    # the exported page's styles (rendered HTML restyles tables and images) do not reach in
    tip = root.locator(".dvl-tooltip")
    assert tip.locator("td").first.evaluate("e => getComputedStyle(e).textAlign") == "left"
    size = tip.locator("img.dvl-thumb").evaluate("i => [i.clientWidth, i.clientHeight]")
    assert size == [64, 64]
    root.get_by_role("button", name="Show the image grid").click()
    p.screenshot("nbconvert-html-grid", root)
    root.get_by_role("button", name="Show the table of values").click()
    rows = root.locator(".dvl-tableview tbody tr")
    backgrounds = rows.evaluate_all("trs => trs.slice(0, 2).map(r => getComputedStyle(r)"
                                    ".backgroundColor)")
    assert len(set(backgrounds)) == 1  # no zebra from the page
    p.screenshot("nbconvert-html-table", root)
    ours = [e for e in p.all_errors if "dvl" in e.lower()]
    assert not ours, ours


def test_html_alone_in_jupyterlab_untrusted_then_trusted(lab: LabServer, page: Page):
    """An output with only the HTML (as a frontend without the extension would keep): in an
    untrusted notebook JupyterLab drops its scripts and the static part shows; trusted, the
    script draws the view in JupyterLab's own theme."""
    from nbformat.sign import NotebookNotary

    bundle = mimebundle(tied_result())
    data = {"text/html": bundle["text/html"], "text/plain": bundle["text/plain"]}
    path = lab.root / "html-only.ipynb"
    write_notebook(path, ["# HTML only"], [[nbformat.v4.new_output("display_data", data=data)]])
    open_in_lab(page, lab, "html-only.ipynb")
    static = page.page.locator(".jp-OutputArea .dvl-valuation")
    static.wait_for(timeout=60_000)
    static.scroll_into_view_if_needed()
    assert page.page.locator("img.dvl-png").evaluate("i => i.complete && i.naturalWidth") > 500
    assert static.locator("tbody tr").count() >= 20
    assert page.page.locator(".dvl-Valuation").count() == 0
    page.screenshot("lab-html-untrusted")

    nb = nbformat.read(path, as_version=4)
    NotebookNotary().sign(nb)  # what `jupyter trust` does
    nbformat.write(nb, lab.root / "html-trusted.ipynb")
    trusted = Page(page.page.context.new_page())
    open_in_lab(trusted, lab, "html-trusted.ipynb")
    root = trusted.page.locator(".jp-OutputArea .dvl-Valuation")
    root.locator(".dvl-point").first.wait_for(timeout=60_000)
    assert root.locator(".dvl-point").count() == 60
    root.scroll_into_view_if_needed()
    root.locator(".dvl-point").nth(3).hover()
    root.locator(".dvl-tooltip").wait_for(state="visible")
    trusted.screenshot("lab-html-trusted", root)
    assert not trusted.dialogs and not trusted.errors, (trusted.dialogs, trusted.errors)
