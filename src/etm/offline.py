"""Pages that work from disk without a network: every script and style inlined.

The JavaScript comes from the Python packages that ship it (plotly's
``plotly.min.js``, pyLDAvis's d3 and LDAvis files), so the page shows the
same charts those libraries draw, with no CDN to reach. pyLDAvis's own
``prepared_data_to_html`` loads d3 and LDAvis from the internet, which leaves
the page blank offline; :func:`ldavis_page` is the offline replacement.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

__all__ = ["inline_script", "inline_style", "json_script", "plotly_js", "ldavis_assets", "ldavis_page",
           "ldavis_json"]


def inline_script(code: str) -> str:
    """``code`` in a ``<script>`` element; refuses code that would end the element early."""
    lowered = code.lower()
    for bad in ("</script", "<!--"):
        if bad in lowered:
            raise ValueError(f"script contains {bad!r}, which would change how the inline <script> element is parsed")
    return f"<script>{code}</script>"


def inline_style(css: str) -> str:
    """``css`` in a ``<style>`` element; refuses text that would end the element early."""
    if "</style" in css.lower():
        raise ValueError("style contains '</style', which would end the inline <style> element early")
    return f"<style>{css}</style>"


def json_script(element_id: str, data: Any) -> str:
    """``data`` as an inert ``<script type="application/json">`` block, read back with ``JSON.parse``.

    ``<``, ``>`` and ``&`` are escaped as ``\\u003c`` and so on (JSON
    allows it), so no word or document text can close the element; NaN and
    infinity are rejected because ``JSON.parse`` cannot read them.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{html.escape(element_id)}">{text}</script>'


def plotly_js() -> str:
    """The plotly.js bundle shipped with the ``plotly`` package (about 4.8 MB)."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise ImportError("the report needs plotly: pip install 'etm[plots]'") from None
    return get_plotlyjs()


def ldavis_assets() -> dict[str, str]:
    """d3, LDAvis's JavaScript and its CSS, read from the installed pyLDAvis package."""
    try:
        from pyLDAvis import urls
    except ImportError:
        raise ImportError("the pyLDAvis view needs pyLDAvis: pip install 'etm[plots]'") from None
    return {name: Path(path).read_text(encoding="utf-8")
            for name, path in (("d3", urls.D3_LOCAL), ("ldavis", urls.LDAVIS_LOCAL), ("css", urls.LDAVIS_CSS_LOCAL))}


def ldavis_json(prepared: Any) -> dict[str, Any]:
    """A ``pyLDAvis.PreparedData`` as a plain dict (what the LDAvis script reads)."""
    return json.loads(prepared.to_json())


def ldavis_element(element_id: str, prepared: Any) -> str:
    """The LDAvis view as HTML to place in a page that already holds :func:`ldavis_head` (its scripts)."""
    try:
        data = json_script(f"{element_id}-data", ldavis_json(prepared))
    except ValueError as err:  # json.dumps(allow_nan=False) on an infinite lift
        raise ValueError(f"pyLDAvis data has a non-finite number ({err}); a word that never occurs in the "
                         "documents gets an infinite lift: leave such words out (etm.plots.occurring_words)") from None
    return (f'<div id="{html.escape(element_id)}" class="ldavis"></div>' + data
            + inline_script(f'new LDAvis("#{element_id}", JSON.parse('
                            f'document.getElementById("{element_id}-data").textContent));'))


def ldavis_head() -> str:
    """d3, LDAvis and LDAvis's CSS, inlined: what :func:`ldavis_element` needs before it."""
    assets = ldavis_assets()
    return inline_style(assets["css"]) + inline_script(assets["d3"]) + inline_script(assets["ldavis"])


def ldavis_page(prepared: Any, *, title: str = "pyLDAvis") -> str:
    """A whole HTML page showing ``prepared`` (from ``pyLDAvis.prepare``) that needs no network."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title>{ldavis_head()}</head>"
            f"<body>{ldavis_element('ldavis', prepared)}</body></html>\n")
