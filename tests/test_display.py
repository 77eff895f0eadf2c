"""The MIME bundle of a ValuationResult: keys, schema, bounded size, safe HTML, no pyplot."""

from __future__ import annotations

import base64
import io
import json

import jsonschema
import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from dvl_jupyter.display import (
    MAX_POINTS,
    MAX_THUMBNAILS,
    MIME_TYPE,
    load_schema,
    mimebundle,
    result_html,
    valuation_json,
)
from dvl_jupyter.valuation import Dataset, ValuationResult

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


def test_bundle_has_the_four_representations_and_valid_json():
    result = make_result(30, images=True)
    bundle = result._repr_mimebundle_()
    assert set(bundle) == {MIME_TYPE, "image/png", "text/html", "text/plain"}
    payload = bundle[MIME_TYPE]
    validate(payload)
    assert payload["version"] == 1 and payload["method"] == "TMC-Shapley"
    assert payload["values"] == sorted(payload["values"])  # ascending
    assert payload["meta"]["evaluations"] == 120 and payload["meta"]["cache_hits"] == 30
    assert payload["meta"]["settings"]["stopping"] == "MinUpdates(2)"
    assert len(payload["images"]) == 30 and all(payload["images"])
    assert all(isinstance(label, int) for label in payload["labels"])
    assert bundle["image/png"].startswith(b"\x89PNG")
    # the HTML carries the same picture, since frontends show HTML rather than PNG
    assert base64.b64encode(bundle["image/png"]).decode() in bundle["text/html"]
    assert "TMC-Shapley values of 30 points" in bundle["text/plain"]


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
    assert "image/png" in mimebundle(result)  # the error bars, without a grid


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
    assert ("image/png" in bundle) == (show != "table")
    assert ("<table" in bundle["text/html"]) == (show == "table")
    assert ("<img" in bundle["text/html"]) == (show != "table")


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
    assert sum(b is not None for b in payload["images"]) == MAX_THUMBNAILS
    summary = payload["summary"]
    assert summary["n"] == n and summary["shown"] == MAX_POINTS
    assert summary["omitted"] == n - MAX_POINTS
    assert sum(summary["histogram"]["counts"]) == n
    # the lowest and the highest are kept, in ascending order
    values = np.sort(result.values)
    assert payload["values"][0] == values[0] and payload["values"][-1] == values[-1]
    assert payload["values"][MAX_POINTS // 2] == values[n - MAX_POINTS // 2]
    assert len(json.dumps(payload)) < 250_000
    assert len(bundle["text/html"]) < 300_000 and bundle["text/html"].count("<tr>") <= 22


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
    assert XSS not in bundle["text/html"] and "<script" not in bundle["text/html"]
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
    assert "images" not in bundle[MIME_TYPE] and "image/png" in bundle
