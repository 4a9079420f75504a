"""The report as HTML: plotly figures built in Python, a Jinja2 template, everything inlined.

Charts are plotly figures (``plotly.graph_objects``) serialised to JSON and
drawn by the plotly.js bundle that ships with the ``plotly`` package, inlined
in the page; the pyLDAvis view inlines pyLDAvis's own d3 and LDAvis scripts.
The small ``report.js`` only wires the page together: it draws the figures,
lists a clicked topic, and answers the search box from the precomputed index.
"""

from __future__ import annotations

import datetime as _dt
import html
from collections.abc import Sequence
from importlib import resources
from typing import Any

from etm import offline
from etm._version import __version__
from etm.report.data import highlight_pattern

__all__ = ["render_report", "figures"]

_PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def _palette(n: int) -> list[str]:
    from plotly.colors import qualitative

    colours = list(qualitative.Dark24) + list(qualitative.Light24)
    return [colours[k % len(colours)] for k in range(n)]


def _go() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise ImportError("the report needs plotly: pip install 'etm[plots]'") from None
    return go


def _as_json(fig: Any) -> dict[str, Any]:
    """A figure as the plain JSON plotly.js draws (numpy arrays become lists)."""
    import json

    import plotly.io as pio

    return json.loads(pio.to_json(fig, validate=True, remove_uids=True))


def training_figure(history: Sequence[dict[str, Any]], best_epoch: int | None) -> dict[str, Any] | None:
    """Loss, KL and validation perplexity per epoch, the best epoch marked."""
    if not history:
        return None
    go = _go()
    from plotly.subplots import make_subplots

    panels = [("loss", "loss per document"), ("kl", "KL per document")]
    if any(h.get("valid_perplexity") is not None for h in history):
        panels.append(("valid_perplexity", "validation perplexity"))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for _, t in panels])
    for col, (key, title) in enumerate(panels, start=1):
        points = [(h["epoch"], h[key]) for h in history if h.get(key) is not None]
        fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers",
                                 marker={"size": 4}, name=title, showlegend=False,
                                 hovertemplate="epoch %{x}: %{y:.4g}<extra>" + title + "</extra>"), row=1, col=col)
        fig.update_xaxes(title_text="epoch", row=1, col=col)
    if best_epoch is not None:
        fig.add_vline(x=best_epoch, line_dash="dash", line_color="grey", annotation_text="best",
                      annotation_position="top left")
    fig.update_layout(height=320, margin={"l": 50, "r": 20, "t": 40, "b": 40}, template="plotly_white")
    return _as_json(fig)


def prevalence_figure(topics: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean topic proportion over the documents, largest on top; a click opens the topic."""
    go = _go()
    order = sorted(range(len(topics)), key=lambda k: topics[k]["prevalence"])
    labels = [f"{topics[k]['name']}: {' '.join(w for w, _ in topics[k]['words'][:4])}" for k in order]
    fig = go.Figure(go.Bar(
        x=[topics[k]["prevalence"] for k in order], y=labels, orientation="h", customdata=order,
        marker_color=[_palette(len(topics))[k] for k in order],
        hovertemplate="%{y}<br>%{x:.2%} of the words<extra>click to open</extra>"))
    fig.update_layout(height=max(260, 18 * len(topics) + 80), margin={"l": 10, "r": 20, "t": 10, "b": 40},
                      xaxis={"tickformat": ".0%", "title": "mean topic proportion"}, template="plotly_white",
                      yaxis={"automargin": True})
    return _as_json(fig)


def overview_figure(topics: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each topic's coherence against its prevalence; a click opens the topic."""
    go = _go()
    fig = go.Figure(go.Scatter(
        x=[t["prevalence"] for t in topics], y=[t["coherence"] for t in topics], mode="markers+text",
        text=[t["name"] for t in topics], textposition="top center", customdata=list(range(len(topics))),
        marker={"size": 11, "color": _palette(len(topics)), "line": {"width": 1, "color": "#333"}},
        hovertemplate="<b>%{text}</b><br>prevalence %{x:.2%}<br>coherence %{y:.3f}<extra>click to open</extra>"))
    fig.update_layout(height=420, margin={"l": 50, "r": 20, "t": 10, "b": 40}, template="plotly_white",
                      xaxis={"title": "prevalence (mean topic proportion)", "tickformat": ".0%"},
                      yaxis={"title": "coherence (NPMI, top 10 words)"})
    return _as_json(fig)


def map_figure(points: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """Words (dots, coloured by topic) and topics (stars) in 2-D; hover names a word, a click lists a topic."""
    go = _go()
    palette = _palette(len(names))
    words_xy, topics_xy = points["words_xy"], points["topics_xy"]
    owners = points["owners"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=[p[0] for p in words_xy], y=[p[1] for p in words_xy], mode="markers", name="words",
        text=points["words"], customdata=[[k, names[k]] for k in owners],
        marker={"size": 7, "color": [palette[k] for k in owners], "opacity": 0.75},
        hovertemplate="%{text}<br>top word of %{customdata[1]}<extra></extra>"))
    fig.add_trace(go.Scatter(
        x=[p[0] for p in topics_xy], y=[p[1] for p in topics_xy], name="topics",
        mode="markers+text" if len(names) <= 40 else "markers", text=list(names), textposition="top center",
        customdata=list(range(len(names))),
        marker={"symbol": "star", "size": 17, "color": palette, "line": {"width": 1, "color": "#222"}},
        hovertemplate="<b>%{text}</b><br>click to list it<extra></extra>"))
    fig.update_layout(height=620, margin={"l": 10, "r": 10, "t": 10, "b": 10}, template="plotly_white",
                      xaxis={"visible": False}, yaxis={"visible": False}, legend={"orientation": "h"},
                      hovermode="closest", clickmode="event")
    return _as_json(fig)


def figures(report: dict[str, Any]) -> dict[str, Any]:
    """Every chart of the page as plotly JSON, by the id of the element that shows it."""
    topics = report["topics"]
    names = [t["name"] for t in topics]
    out: dict[str, Any] = {"map-figure": map_figure(report["map"], names)}
    training = training_figure(report["history"], report["model"]["facts"].get("best epoch"))
    if training is not None:
        out["training-figure"] = training
    if report["corpus"] is not None:
        out["prevalence-figure"] = prevalence_figure(topics)
        out["overview-figure"] = overview_figure(topics)
    return out


def _highlight(text: str, words: Sequence[str]) -> Any:
    """``text`` escaped for HTML, with ``words`` marked."""
    from markupsafe import Markup

    pattern = highlight_pattern(list(words))
    escaped = html.escape(text)
    if pattern is None:
        return Markup(escaped)
    return Markup(pattern.sub(lambda m: f"<mark>{m.group(0)}</mark>", escaped))


def _asset(name: str) -> str:
    return resources.files("etm.report").joinpath(name).read_text(encoding="utf-8")


def render_report(report: dict[str, Any]) -> str:
    """The page of a :func:`etm.report.build.build_report` result: one string of self-contained HTML."""
    try:
        import jinja2
    except ImportError:
        raise ImportError("the report needs jinja2: pip install 'etm[plots]'") from None
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["highlight"] = _highlight
    env.filters["num"] = _number
    template = env.from_string(_asset("template.html"))
    names = [t["name"] for t in report["topics"]]
    page_data = {"figures": figures(report), "search": report["search"], "topics": [
        {"name": t["name"], "words": [w for w, _ in t["words"]]} for t in report["topics"]], "names": names}
    ldavis = report["ldavis"]
    from markupsafe import Markup

    return template.render(
        r=report,
        generated=_dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        version=__version__,
        style=Markup(offline.inline_style(_asset("report.css"))),
        plotly=Markup(offline.inline_script(offline.plotly_js())),
        data=Markup(offline.json_script("etm-data", page_data)),
        script=Markup(offline.inline_script(_asset("report.js"))),
        ldavis_head=Markup(offline.ldavis_head()) if ldavis is not None else "",
        ldavis=Markup(offline.ldavis_element("ldavis", ldavis)) if ldavis is not None else "",
    )


def _number(value: Any, digits: int = 4) -> str:
    """A number for a table: integers with thousands separators, floats to ``digits`` significant digits."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}g}" if abs(value) < 10 ** digits else f"{value:,.0f}"
    return str(value)
