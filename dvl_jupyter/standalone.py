"""The interactive chart where JupyterLab extensions do not load (VS Code, Colab, nbconvert).

VS Code's notebooks and Colab show a result's ``text/html`` and never load the labextension.
So the HTML of a result carries, beside its static part (the PNG and the table), the
payload as JSON and the renderer's own chart code, bundled as one script
(``labextension/src/standalone.ts``, built into ``dvl_jupyter/labextension/standalone.js`` by
the npm build and shipped in the wheel). Where the script runs, it hides the static part and
draws the same interactive view as the extension; where scripts do not run (GitHub, an
untrusted notebook in JupyterLab, where the extension's renderer outranks HTML anyway), the
static part is what shows. Every string of the payload is set as text by the script, never
as HTML, and the JSON is escaped so that nothing in it can end its ``<script>`` element.

Size: the script comes once per output (a saved notebook must redraw each output alone), and
dvl_jupyter.display gives it a copy of the payload with fewer thumbnails (the PNG beside it
shows the extremes already).
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = ["bundle_js", "standalone_html"]

log = logging.getLogger(__name__)

#: Where the npm build writes the bundle, inside the package.
BUNDLE = "labextension/standalone.js"


@lru_cache(maxsize=1)
def bundle_js() -> str | None:
    """The renderer's standalone script, or None when it is not built (a source checkout
    before ``make labextension``): then the HTML is the static part alone."""
    try:
        text = resources.files("dvl_jupyter").joinpath(BUNDLE).read_text("utf-8")
    except (FileNotFoundError, OSError) as exc:
        log.debug("no standalone renderer bundle: %s", exc)
        return None
    if "</script" in text.lower() or "<!--" in text:
        # An inline script ends at the first "</script"; the build must never emit one.
        log.warning("the standalone renderer bundle cannot be inlined; showing static HTML")
        return None
    return text


def _script_json(payload: dict[str, Any]) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&``
    (so no ``</script>`` or ``<!--``), and ASCII only (U+2028 and U+2029 escaped too)."""
    text = json.dumps(payload, allow_nan=False, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def standalone_html(static_html: str, payload: dict[str, Any] | None) -> str:
    """``static_html`` with the payload and the script that draws it interactively.

    Without a payload or a built bundle, ``static_html`` unchanged.
    """
    js = bundle_js()
    if payload is None or js is None:
        return static_html
    data = _script_json(payload)
    return (
        '<div class="dvl-output" data-dvl-standalone="1">'
        f"{static_html}"
        f'<script type="application/json" class="dvl-payload">{data}</script>'
        f"<script>{js}</script>"
        "</div>"
    )
