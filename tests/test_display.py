"""The MIME bundle of a ValuationResult: keys, schema, bounded size, safe HTML, no pyplot,
one ranking (ties included) in every representation, any string shown as text."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import warnings

import jsonschema
import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from dvl_jupyter import demo, standalone
from dvl_jupyter.display import (
    MAX_POINTS,
    MAX_THUMBNAILS,
    MIME_TYPE,
    THUMBNAIL_BUDGET,
    load_schema,
    mimebundle,
    result_figure,
    result_html,
    result_text,
    valuation_json,
)
from dvl_jupyter.valuation import Dataset, ValuationResult

Z_95 = 1.959963984540054  # norm.ppf(0.975), written out

XSS = "<img src=x onerror=alert(1)>"


def validate(payload: dict) -> None:
    jsonschema.Draft202012Validator(load_schema()).validate(payload)
    json.dumps(payload, allow_nan=False)  # strictly JSON: no NaN or infinity
    n = len(payload["indices"])
    for key in ("names", "values", "stderr", "counts"):
        assert len(payload[key]) == n, key
    for key in ("labels", "images"):
        if payload.get(key) is not None:
            assert len(payload[key]) == n, key


def make_result(n: int, images: bool = False, seed: int = 0) -> ValuationResult:
    rng = np.random.default_rng(seed)
    result = ValuationResult(
        rng.normal(size=n), rng.random(n), np.full(n, 7), algorithm="TMC-Shapley",
        names=[f"p{i}" for i in range(n)],
        meta={"evaluations": 120, "cache_hits": 30, "elapsed_s": 1.5, "ended": "done",
              "settings": {"stopping": "MinUpdates(2)", "seed": 1}},
    )
    if images:
        x = rng.random((n, 1, 8, 8)).astype(np.float32)
        result.display_data = Dataset(x, rng.integers(0, 10, n))
    return result


@pytest.fixture(scope="module")
def schema_validator() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_is_a_valid_json_schema(schema_validator):
    assert schema_validator.schema["properties"]["version"] == {"const": 1}


def inline_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)",
                                                    page)]


def test_bundle_has_three_representations_and_valid_json():
    result = make_result(30, images=True)
    bundle = result._repr_mimebundle_()
    assert set(bundle) == {MIME_TYPE, "text/html", "text/plain"}
    payload = bundle[MIME_TYPE]
    validate(payload)
    assert payload["version"] == 1 and payload["method"] == "TMC-Shapley"
    assert payload["values"] == sorted(payload["values"])  # ascending
    assert payload["ranks"] == list(range(30, 0, -1))  # the exact reverse of rank order
    assert payload["meta"]["evaluations"] == 120 and payload["meta"]["cache_hits"] == 30
    assert payload["meta"]["settings"]["stopping"] == "MinUpdates(2)"
    assert len(payload["images"]) == 30 and all(payload["images"])
    assert all(isinstance(label, int) for label in payload["labels"])
    assert "TMC-Shapley values of 30 points" in bundle["text/plain"]


def test_the_picture_is_stored_once_inside_the_html():
    """Frontends show HTML rather than PNG, so the picture lives in the HTML, and only there;
    without HTML it comes as image/png."""
    result = make_result(30, images=True)
    bundle = mimebundle(result)
    (png,) = inline_pngs(bundle["text/html"].split('<script type="application/json"')[0])
    assert png.startswith(b"\x89PNG") and "image/png" not in bundle
    # the payload's thumbnails are the only other images, and they are small
    assert all(len(b) < 2_000 for b in bundle[MIME_TYPE]["images"])
    no_html = mimebundle(result, exclude={"text/html"})
    assert set(no_html) == {MIME_TYPE, "image/png", "text/plain"}
    assert no_html["image/png"] == png
    assert set(mimebundle(result, include={"image/png"})) == {"image/png"}


def test_demo_extracts_the_picture_from_the_html(tmp_path):
    """demo.extract writes out/figures/<tag>.png for the result's output too."""
    import nbformat

    bundle = mimebundle(make_result(30, images=True))
    data = {k: (base64.b64encode(v).decode() if isinstance(v, bytes) else v)
            for k, v in bundle.items()}
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("%%shapley", metadata={"tags": ["shapley"]})
    cell.outputs = [nbformat.v4.new_output("display_data", data=data)]
    nb.cells.append(cell)
    written = demo.extract(nb, tmp_path)
    assert {p.name for p in written} == {"shapley.png", "valuation.json"}
    assert [(tmp_path / "figures" / "shapley.png").read_bytes()] == inline_pngs(
        bundle["text/html"])[:1]


def test_labels_and_thumbnails_follow_the_points():
    result = make_result(12, images=True)
    data = result.display_data
    payload = valuation_json(result)
    for index, label, b64 in zip(payload["indices"], payload["labels"], payload["images"],
                                 strict=True):
        assert label == int(data.y[index])
        img = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))
        assert img.shape == (8, 8)
        # one shared scale over the thumbnails: brightness order is kept within an image
        x = data.x[index, 0]
        assert np.argmax(img) == np.argmax(x) and np.argmin(img) == np.argmin(x)


def test_no_display_data_means_no_labels_or_images():
    payload = valuation_json(make_result(5))
    validate(payload)
    assert payload["labels"] is None and "images" not in payload


def test_tabular_data_give_labels_but_no_images():
    result = make_result(6)
    result.display_data = Dataset(np.zeros((6, 16)), np.array(list("abcdef")))
    payload = valuation_json(result)
    validate(payload)
    assert sorted(payload["labels"]) == list("abcdef") and "images" not in payload
    assert 'class="dvl-png"' in mimebundle(result)["text/html"]  # error bars, no grid


def test_non_finite_values_are_json_null():
    result = ValuationResult(np.array([1.0, np.nan, -np.inf, 0.5]),
                             np.array([0.0, np.inf, 0.0, 1.0]), np.array([2, 2, 2, 2]),
                             meta={"elapsed_s": float("nan"), "settings": {"rtol": np.inf}})
    payload = mimebundle(result)[MIME_TYPE]
    validate(payload)
    assert payload["values"][-1] is None  # NaN sorts last
    assert None in payload["stderr"] and payload["meta"]["elapsed"] is None
    assert payload["summary"]["non_finite"] == 2


def test_empty_result_displays():
    bundle = mimebundle(ValuationResult.zeros(0))
    validate(bundle[MIME_TYPE])
    assert "image/png" not in bundle and "text/html" in bundle


@pytest.mark.parametrize("show", ["plot", "grid", "table", "none"])
def test_show_picks_what_is_displayed(show):
    result = make_result(30, images=True)
    bundle = mimebundle(result, show=show)
    if show == "none":
        assert bundle == {}
        return
    validate(bundle[MIME_TYPE])
    assert bundle[MIME_TYPE]["view"] == show
    assert "image/png" not in bundle  # the HTML has the picture
    static = bundle["text/html"].split("<script")[0]
    assert ("<table" in static) == (show == "table")
    assert ('class="dvl-png"' in static) == (show != "table")


def test_include_and_exclude_filter_mime_types():
    result = make_result(5)
    assert set(result._repr_mimebundle_(include={"text/plain"})) == {"text/plain"}
    assert "image/png" not in result._repr_mimebundle_(exclude={"image/png"})


def test_large_results_stay_bounded():
    n = 20_000
    result = make_result(n, images=True)
    bundle = mimebundle(result)
    payload = bundle[MIME_TYPE]
    validate(payload)
    assert len(payload["indices"]) == MAX_POINTS
    kept = [i for i, b in enumerate(payload["images"]) if b is not None]
    assert 0 < len(kept) <= MAX_THUMBNAILS
    assert sum(len(payload["images"][i]) for i in kept) <= THUMBNAIL_BUDGET
    # from both ends inwards: the lowest and the highest listed points have theirs
    half = MAX_POINTS // 2
    low, high = [i for i in kept if i < half], [i for i in kept if i >= half]
    assert low == list(range(len(low))) and high == list(range(MAX_POINTS - len(high),
                                                                  MAX_POINTS))
    summary = payload["summary"]
    assert summary["n"] == n and summary["shown"] == MAX_POINTS
    assert summary["omitted"] == n - MAX_POINTS
    assert sum(summary["histogram"]["counts"]) == n
    # the lowest and the highest are kept, in ascending order
    values = np.sort(result.values)
    assert payload["values"][0] == values[0] and payload["values"][-1] == values[-1]
    assert payload["values"][MAX_POINTS // 2] == values[n - MAX_POINTS // 2]
    assert len(json.dumps(payload)) < 150_000 + THUMBNAIL_BUDGET  # values, then images
    static = bundle["text/html"].split("<script")[0]
    assert len(static) < 300_000 and static.count("<tr>") <= 23


def test_large_images_make_small_thumbnails():
    rng = np.random.default_rng(1)
    result = make_result(4)
    result.display_data = Dataset(rng.random((4, 3, 200, 100)), np.arange(4))
    payload = valuation_json(result)
    validate(payload)
    for b64 in payload["images"]:
        img = Image.open(io.BytesIO(base64.b64decode(b64)))
        assert max(img.size) == 64 and img.mode == "RGB"


def test_strings_are_escaped_in_html():
    result = ValuationResult(np.arange(4.0), names=[XSS, "b", "c", "d"], algorithm="<b>x</b>",
                             meta={"ended": "<script>alert(2)</script>"})
    result.display_data = Dataset(np.zeros((4, 2)), np.array([XSS, "x", "y", "z"]))
    page = result_html(result)
    assert XSS not in page and "<script" not in page and "<b>" not in page
    assert page.count("&lt;img src=x onerror=alert(1)&gt;") == 2  # the name and the label
    bundle = mimebundle(result)
    assert XSS not in bundle["text/html"] and "<b>" not in bundle["text/html"]
    # the only scripts are the payload (JSON, inert) and the renderer's own bundle
    assert "<script" not in bundle["text/html"].split('<script type="application/json"')[0]
    assert bundle["text/html"].count("<script") in (0, 2)
    # in the JSON, strings stay text: the renderer shows them as text
    assert XSS in bundle[MIME_TYPE]["names"] and XSS in bundle[MIME_TYPE]["labels"]


def test_display_data_follows_slices_and_is_not_saved(tmp_path):
    result = make_result(10, images=True)
    data = result.display_data
    assert result.sort()[:3].display_data is data
    assert result.copy().display_data is data
    assert (result + result).display_data is data
    result.save(tmp_path / "r.npz")
    assert ValuationResult.load(tmp_path / "r.npz").display_data is None


def test_display_does_not_touch_pyplot():
    before = plt.get_fignums()
    mimebundle(make_result(30, images=True))
    assert plt.get_fignums() == before


def test_broken_display_data_do_not_break_the_display():
    class Broken:
        y = None

        def data(self, indices):
            raise RuntimeError("gone")

    result = make_result(5)
    result.display_data = Broken()
    bundle = mimebundle(result)
    validate(bundle[MIME_TYPE])
    assert "images" not in bundle[MIME_TYPE] and 'class="dvl-png"' in bundle["text/html"]


# -- one ranking, ties included -------------------------------------------------------------
TIED = np.array([0.1, 0.2, 0.1, 0.2, 0.1, 0.2, 0.3, 0.1])  # accuracy on a small test set
#: by the rule (highest first, equal values by data index): index 6, then 1, 3, 5, then 0, 2, 4, 7
TIED_RANKED = [6, 1, 3, 5, 0, 2, 4, 7]


def tied_result(order=None) -> ValuationResult:
    """The tied values at data indices 0..7, stored in ``order`` (a permutation)."""
    order = np.arange(len(TIED)) if order is None else np.asarray(order)
    return ValuationResult(TIED[order], np.full(8, 0.01)[order], np.full(8, 4), indices=order,
                           names=[f"p{i}" for i in order], algorithm="TMC-Shapley")


@pytest.mark.parametrize("order", [None, [7, 6, 5, 4, 3, 2, 1, 0], [3, 0, 6, 2, 7, 5, 1, 4]])
def test_ties_are_ranked_by_data_index_whatever_the_result_order(order):
    result = tied_result(order)
    payload = valuation_json(result)
    validate(payload)
    assert payload["indices"] == TIED_RANKED[::-1]  # ascending: the exact reverse
    assert payload["ranks"] == list(range(8, 0, -1))
    # sort(reverse=True) is stable descending, which keeps the stored order of ties: the
    # display does not use it, so every stored order gives the same ranks
    rows = re.findall(r"<tr><td[^>]*>(\d+)</td><td[^>]*>p(\d+)</td>", result_html(result))
    assert [(int(r), int(i)) for r, i in rows] == list(enumerate(TIED_RANKED, start=1))
    lines = result_text(result, k=5).splitlines()[2:]
    assert [line.split()[:2] for line in lines] == [[str(r), f"p{i}"] for r, i in
                                                    enumerate(TIED_RANKED, start=1)]


def test_large_result_lists_the_highest_and_lowest_ranks_with_ties_at_the_cut():
    n, max_points = 1257, 1000
    values = np.round(np.random.default_rng(3).normal(size=n), 1)  # few distinct values
    result = ValuationResult(values, np.full(n, 0.01), np.full(n, 2))
    payload = valuation_json(result, max_points=max_points)
    validate(payload)
    expected = sorted(range(n), key=lambda i: (-values[i], i))  # the rule, by hand
    listed = expected[:500] + expected[n - 500:]
    assert payload["indices"] == listed[::-1]
    assert payload["ranks"] == (list(range(1, 501)) + list(range(758, 1258)))[::-1]
    assert payload["summary"]["omitted"] == 257


def test_static_table_and_text_rank_highest_first_with_the_gap_counted():
    result = make_result(30)
    page = result_html(result, k=3)
    ranks = re.findall(r"<tr><td[^>]*>([\d,]+)</td>", page)
    assert ranks == ["1", "2", "3", "28", "29", "30"]
    assert "... 24 more (ranks 4–27) ..." in page
    names = re.findall(r"<td[^>]*>[\d,]+</td><td[^>]*>(p\d+)</td>", page)
    values = [float(result.values[int(n[1:])]) for n in names]
    assert values == sorted(values, reverse=True)
    text = result_text(result, k=3)
    assert "... 24 more (ranks 4–27) ..." in text
    assert [line.split()[0] for line in text.splitlines()[2:] if not line.startswith("  ...")
            ] == ["1", "2", "3", "28", "29", "30"]


def test_points_without_a_finite_value_have_no_rank_and_come_last():
    result = ValuationResult(np.array([0.2, np.nan, 0.5, -np.inf]), np.full(4, 0.1),
                             np.full(4, 2))
    payload = valuation_json(result)
    validate(payload)
    assert payload["indices"] == [0, 2, 1, 3] and payload["ranks"] == [2, 1, None, None]
    assert "2 points without a finite value (no rank)" in result_text(result)


# -- "±" is one thing ------------------------------------------------------------------------
def test_plus_minus_is_the_95_percent_half_width_and_stderr_is_named():
    result = ValuationResult(np.array([0.5]), np.array([0.12]), np.array([3]),
                             names=["only"])
    se = float(result.stderr[0])
    assert se == pytest.approx(0.2)  # sqrt(0.12 / 3)
    text = result_text(result)
    assert "± 95% CI" in text and f"0.5 ± {Z_95 * se:.2g}" in text  # 0.39, not 0.2
    page = result_html(result)
    assert "<th" in page and "± 95% CI</th>" in page and ">stderr</th>" in page
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", page)
    assert cells[3:6] == ["0.5", "0.39", "0.2"]
    assert "half-width of the 95% confidence interval" in page


def test_counts_are_singular_for_one():
    result = ValuationResult(np.array([0.5]), meta={"evaluations": 1, "cache_hits": 1})
    text = result_text(result)
    assert "values of 1 point (" in text and "1 evaluation," in text and "1 cache hit" in text
    assert "1 cache hits" not in result_html(result)


# -- any string is text ---------------------------------------------------------------------
STRANGE = ["img_$1_$2.png", "a < b & c", "two\nlines", "dog 🐶 cat 😀", "$x^2$", "plain"]


def strange_result() -> ValuationResult:
    rng = np.random.default_rng(5)
    n = len(STRANGE)
    result = ValuationResult(rng.normal(size=n), rng.random(n) * 0.1, np.full(n, 3),
                             names=STRANGE, algorithm="TMC-$hapley <&>")
    result.display_data = Dataset(rng.random((n, 1, 8, 8)).astype(np.float32),
                                  np.array(STRANGE[::-1], dtype=object))
    return result


def test_strange_strings_are_drawn_literally_in_the_png():
    from dvl_jupyter.plots import plain_text

    result = strange_result()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a mathtext error or a missing glyph would warn
        fig = result_figure(result, "summary")
        bundle = mimebundle(result)
    texts = {t.get_text(): t for t in fig.findobj(lambda a: hasattr(a, "get_parse_math"))
             if t.get_text()}
    for name in STRANGE:
        drawn = plain_text(name)
        assert drawn in texts, (drawn, sorted(texts))
        assert texts[drawn].get_parse_math() is False
    assert plain_text("img_$1_$2.png") == "img_$1_$2.png"  # dollars stay dollars
    assert plain_text("two\nlines") == "two\nlines"
    # DejaVu Sans has no dog: it is named, not drawn as an empty box
    assert plain_text("dog 🐶") == "dog [dog face]"
    assert any("TMC-$hapley <&> value" == t for t in texts)
    (png,) = inline_pngs(bundle["text/html"].split("<script")[0])
    assert Image.open(io.BytesIO(png)).size[0] > 500


def test_strange_strings_are_escaped_text_in_html_and_one_line_in_text():
    result = strange_result()
    page = result_html(result)
    cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>([^<]*)</td>", page)]
    for name in STRANGE:
        assert name in cells  # as the name, and (reversed) as a label
        assert cells.count(name) == 2
    assert "<b" not in page and "a < b" not in page and "a &lt; b &amp; c" in page
    text = result_text(result)
    assert "img_$1_$2.png" in text and "a < b & c" in text and "dog 🐶 cat 😀" in text
    assert "two\\nlines" in text  # escaped: one row per point
    assert len(text.splitlines()) == 2 + len(STRANGE)
    # columns stay aligned with wide characters: every value ends in the same column
    from dvl_jupyter.display import _width

    ends = {_width(line[: line.index(" ± ")]) for line in text.splitlines()[2:]}
    assert len(ends) == 1


# -- the standalone HTML (VS Code, Colab) ---------------------------------------------------
def payload_of(page: str) -> dict:
    (data,) = re.findall(r'<script type="application/json" class="dvl-payload">(.*?)</script>',
                         page, flags=re.S)
    assert "<" not in data and ">" not in data and "&" not in data
    return json.loads(data)


@pytest.mark.skipif(standalone.bundle_js() is None, reason="make labextension builds the script")
def test_the_html_carries_the_payload_and_the_script_once():
    result = strange_result()
    result.display_data = None
    bundle = mimebundle(result)
    page = bundle["text/html"]
    assert page.startswith('<div class="dvl-output" data-dvl-standalone="1">')
    assert page.count("<script") == 2 and page.lower().count("</script") == 2
    assert payload_of(page) == bundle[MIME_TYPE]  # crafted strings included, as data
    assert standalone.bundle_js() in page
    assert len(standalone.bundle_js()) < 60_000  # once per output: it must stay small


def test_the_html_keeps_the_most_extreme_thumbnails_within_the_budget(monkeypatch):
    from dvl_jupyter import display

    monkeypatch.setattr(standalone, "bundle_js", lambda: "/* the script */")
    monkeypatch.setattr(display, "HTML_THUMBNAIL_BUDGET", 5_000)
    result = make_result(60, images=True)
    bundle = mimebundle(result)
    kept = payload_of(bundle["text/html"])["images"]
    full = bundle[MIME_TYPE]["images"]
    assert sum(len(b) for b in kept if b) <= 5_000
    shown = [i for i, b in enumerate(kept) if b]
    assert 10 < len(shown) < 60 and all(kept[i] == full[i] for i in shown)
    # from both ends inwards: the lowest and the highest values keep theirs
    low, high = [i for i in shown if i < 30], [i for i in shown if i >= 30]
    assert low == list(range(len(low))) and high == list(range(60 - len(high), 60))
    assert abs(len(low) - len(high)) <= 1


def test_without_the_script_the_html_is_the_static_part(monkeypatch):
    monkeypatch.setattr(standalone, "bundle_js", lambda: None)
    bundle = mimebundle(make_result(5))
    assert "<script" not in bundle["text/html"]
    assert bundle["text/html"].startswith('<div class="dvl-valuation">')


def test_the_html_of_a_large_image_result_stays_bounded():
    """The script comes once per output, the payload copy keeps fewer thumbnails."""
    from dvl_jupyter.display import HTML_THUMBNAIL_BUDGET

    bundle = mimebundle(make_result(1000, images=True))
    page = bundle["text/html"]
    static = page.split("<script")[0]
    kept = sum(len(b) for b in payload_of(page).get("images", []) if b) if "<script" in page \
        else 0
    assert kept <= HTML_THUMBNAIL_BUDGET
    assert len(page) - len(static) < 150_000 + HTML_THUMBNAIL_BUDGET  # numbers + script
    assert len(page) < 500_000


def test_how_far_to_trust_the_ranking_is_said_in_every_representation():
    """The run's reliability (and its advice when the ranking is mostly noise) reaches the
    JSON for the renderer, the HTML and the text; exact methods say that they are exact."""
    from dvl_jupyter.display import mimebundle

    noisy = ValuationResult(np.arange(5.0), algorithm="TMC-Shapley",
                            variances=np.ones(5), counts=np.full(5, 3))
    noisy.meta.update(reliability=0.12, distinguishable=0,
                      advice="The ranking is mostly noise: its split-half reliability is 0.12")
    bundle = mimebundle(noisy, show="table")
    meta = bundle[MIME_TYPE]["meta"]
    assert meta["reliability"] == 0.12 and meta["advice"].startswith("The ranking is mostly")
    assert "! The ranking is mostly noise" in bundle["text/plain"]
    assert 'class="dvl-trust"' in bundle["text/html"] and "mostly noise" in bundle["text/html"]
    fine = noisy.copy()
    fine.meta.update(reliability=0.91, distinguishable=4, advice=None)
    text = mimebundle(fine, show="table")["text/plain"]
    assert "reliability of the ranking 0.91; 4 of 5 values distinguishable from zero" in text
    exact = ValuationResult(np.arange(5.0), algorithm="KNN-Shapley")
    exact.meta["exact"] = True
    assert "exact values (no sampling)" in mimebundle(exact, show="table")["text/plain"]
    assert mimebundle(exact, show="table")[MIME_TYPE]["meta"]["exact"] is True
