"""Pictures of a trained ETM, and an export for pyLDAvis.

Each function writes one figure to a file (PNG, SVG or PDF, from the suffix)
atomically and returns the path; matplotlib runs on its non-interactive
``Agg`` backend, so nothing needs a screen. Inputs are plain arrays, so the
functions work on any topic model; :class:`etm.TopicModel` has methods that
pass its own.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from etm._io import atomic_write_bytes, atomic_write_text
from etm.metrics import check_positive_count

__all__ = [
    "plot_top_words",
    "plot_training_curves",
    "plot_embedding_map",
    "embedding_map_points",
    "plot_topic_prevalence",
    "pyldavis_data",
    "occurring_words",
    "export_pyldavis",
]

_FORMATS = (".png", ".svg", ".pdf")


def _figure(**kwargs: Any) -> Any:
    """A matplotlib ``Figure`` without pyplot: no global state, no backend switch, works headless."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'etm[plots]'") from None
    return Figure(**kwargs)


def _cmap(name: str) -> Any:
    import matplotlib

    return matplotlib.colormaps[name]


def _max_ticks(n: int) -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(n)


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    if target.suffix.lower() not in _FORMATS:
        raise ValueError(f"unsupported figure file {target}: use one of {', '.join(_FORMATS)}")
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # SVG text stays text: searchable and editable
        fig.savefig(buf, format=target.suffix.lower()[1:], dpi=120, bbox_inches="tight")
    atomic_write_bytes(target, buf.getvalue())
    return target


def _topic_names(n_topics: int, names: Sequence[str] | None) -> list[str]:
    if names is None:
        return [f"topic {k}" for k in range(n_topics)]
    if len(names) != n_topics:
        raise ValueError(f"{len(names)} topic names for {n_topics} topics")
    return [str(n) for n in names]


def _check_topic_word(topic_word: np.ndarray, vocabulary: Sequence[str]) -> np.ndarray:
    beta = np.asarray(topic_word, dtype=np.float64)
    if beta.ndim != 2 or beta.shape[1] != len(vocabulary):
        raise ValueError(f"topic_word of shape {beta.shape} does not match a vocabulary of {len(vocabulary)} words")
    return beta


def plot_top_words(
    topic_word: np.ndarray,
    vocabulary: Sequence[str],
    path: str | os.PathLike[str],
    *,
    n_words: int = 10,
    topics: Sequence[int] | None = None,
    names: Sequence[str] | None = None,
    columns: int = 5,
) -> Path:
    """Horizontal bar charts of each topic's ``n_words`` most probable words and their probabilities."""
    beta = _check_topic_word(topic_word, vocabulary)
    check_positive_count("n_words", n_words)
    labels = _topic_names(beta.shape[0], names)
    chosen = list(range(beta.shape[0])) if topics is None else [int(k) for k in topics]
    if not chosen:
        raise ValueError("no topics to plot")
    bad = [k for k in chosen if not 0 <= k < beta.shape[0]]
    if bad:
        raise ValueError(f"topics {bad} do not exist; the model has {beta.shape[0]}")
    cols = min(columns, len(chosen))
    rows = -(-len(chosen) // cols)
    fig = _figure(figsize=(3.0 * cols, 0.28 * n_words * rows + 0.9 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel()[len(chosen):]:
        ax.axis("off")
    for ax, k in zip(axes.ravel(), chosen):
        top = np.argsort(-beta[k], kind="stable")[:n_words]
        ax.barh(range(len(top))[::-1], beta[k, top], color="tab:blue")
        ax.set_yticks(range(len(top))[::-1], [str(vocabulary[i]) for i in top], fontsize=8)
        ax.set_title(labels[k], fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        ax.xaxis.set_major_locator(_max_ticks(3))
    fig.suptitle("Most probable words per topic (beta)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def plot_training_curves(history: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Training loss, KL term and validation perplexity against the epoch."""
    if not history:
        raise ValueError("the training history is empty: nothing to plot")
    epochs = [h["epoch"] for h in history]
    panels = [("loss", "loss per document"), ("kl", "KL per document")]
    if any("valid_perplexity" in h for h in history):
        panels.append(("valid_perplexity", "validation perplexity"))
    fig = _figure(figsize=(4.2 * len(panels), 3.2))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels):
        xs = [e for e, h in zip(epochs, history) if key in h and h[key] is not None]
        ys = [h[key] for h in history if key in h and h[key] is not None]
        ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _project(points: np.ndarray, method: str, random_state: int) -> np.ndarray:
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=random_state).fit_transform(points)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (points.shape[0] - 1) / 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state).fit_transform(
            points
        )
    raise ValueError(f"unknown projection {method!r}; use 'pca' or 'tsne'")


def embedding_map_points(
    word_embeddings: np.ndarray,
    topic_embeddings: np.ndarray,
    vocabulary: Sequence[str],
    *,
    topic_word: np.ndarray | None = None,
    words_per_topic: int = 5,
    max_words: int | None = None,
    method: str = "pca",
    random_state: int = 0,
) -> tuple[list[int], list[int], np.ndarray, np.ndarray]:
    """The points of the embedding map: which words, for which topic, and where.

    Each topic's ``words_per_topic`` top words (from ``topic_word`` when given,
    else the words nearest each topic embedding) are taken rank by rank, so a
    word shared by topics belongs to the one it ranks highest in, and at most
    ``max_words`` are kept (every topic keeps its best words first). Vectors
    are scaled to unit length before the projection, so the map shows
    directions (cosine), the geometry the neighbour lists use; raw topic
    embeddings have another scale than word embeddings and would sit apart.

    Returns
    -------
    words : list of int
        Vocabulary indices of the chosen words.
    owners : list of int
        The topic each word was chosen for.
    words_xy : ndarray of shape (len(words), 2)
    topics_xy : ndarray of shape (K, 2)
    """
    rho = np.asarray(word_embeddings, dtype=np.float64)
    alphas = np.asarray(topic_embeddings, dtype=np.float64)
    if rho.shape[0] != len(vocabulary) or alphas.shape[1] != rho.shape[1]:
        raise ValueError(f"word embeddings {rho.shape}, topic embeddings {alphas.shape} and "
                         f"{len(vocabulary)} words do not fit together")
    check_positive_count("words_per_topic", words_per_topic)
    if max_words is not None:
        check_positive_count("max_words", max_words)
    scores = _check_topic_word(topic_word, vocabulary) if topic_word is not None else alphas @ rho.T
    n = min(words_per_topic, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    limit = len(vocabulary) if max_words is None else max_words
    picked: list[int] = []
    owner: list[int] = []
    seen: set[int] = set()
    for rank in range(n):
        for k in range(alphas.shape[0]):
            i = int(top[k, rank])
            if i not in seen and len(picked) < limit:
                seen.add(i)
                picked.append(i)
                owner.append(k)
    points = np.vstack([rho[picked], alphas])
    points = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    xy = _project(points, method, random_state)
    return picked, owner, xy[: len(picked)], xy[len(picked):]


def plot_embedding_map(
    word_embeddings: np.ndarray,
    topic_embeddings: np.ndarray,
    vocabulary: Sequence[str],
    path: str | os.PathLike[str],
    *,
    topic_word: np.ndarray | None = None,
    words_per_topic: int = 5,
    method: str = "pca",
    names: Sequence[str] | None = None,
    random_state: int = 0,
) -> Path:
    """Words and topics in one 2-D map of the shared embedding space (PCA or t-SNE).

    Shown words are each topic's top words (from ``topic_word`` when given,
    else the words nearest each topic embedding), coloured by their topic;
    see :func:`embedding_map_points`.
    """
    labels = _topic_names(np.shape(topic_embeddings)[0], names)
    picked, owner, words_xy, topics_xy = embedding_map_points(
        word_embeddings, topic_embeddings, vocabulary, topic_word=topic_word, words_per_topic=words_per_topic,
        method=method, random_state=random_state)
    cmap = _cmap("tab20")
    fig = _figure(figsize=(9, 7))
    ax = fig.subplots()
    ax.scatter(words_xy[:, 0], words_xy[:, 1], s=10, c=[cmap(k % 20) for k in owner], alpha=0.7)
    for (x, y), i in zip(words_xy, picked):
        ax.annotate(str(vocabulary[i]), (x, y), fontsize=7, alpha=0.8)
    ax.scatter(topics_xy[:, 0], topics_xy[:, 1], s=80, marker="*", c=[cmap(k % 20) for k in range(len(labels))],
               edgecolors="black", linewidths=0.5)
    for (x, y), name in zip(topics_xy, labels):
        ax.annotate(name, (x, y), fontsize=8, fontweight="bold")
    ax.set_title(f"Word (dots) and topic (stars) embeddings, unit length, {method.upper()}", fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return _save(fig, path)


def plot_topic_prevalence(
    theta: np.ndarray,
    path: str | os.PathLike[str],
    *,
    names: Sequence[str] | None = None,
    top_words: Sequence[Sequence[str]] | None = None,
) -> Path:
    """Share of the corpus each topic takes (mean of theta over documents), largest first."""
    th = np.asarray(theta, dtype=np.float64)
    if th.ndim != 2 or th.shape[0] == 0:
        raise ValueError(f"theta must be a non-empty (documents, topics) array, got shape {th.shape}")
    labels = _topic_names(th.shape[1], names)
    if top_words is not None:
        labels = [f"{name}: {' '.join(words[:4])}" for name, words in zip(labels, top_words)]
    share = th.mean(axis=0)
    order = np.argsort(-share, kind="stable")
    fig = _figure(figsize=(8, 0.25 * th.shape[1] + 1.2))
    ax = fig.subplots()
    ax.barh(range(len(order))[::-1], share[order], color="tab:green")
    ax.set_yticks(range(len(order))[::-1], [labels[k] for k in order], fontsize=8)
    ax.set_xlabel(f"mean topic proportion over {th.shape[0]} documents")
    ax.set_title("Topic prevalence", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def pyldavis_data(
    topic_word: np.ndarray, theta: np.ndarray, counts: sp.spmatrix, vocabulary: Sequence[str]
) -> dict[str, Any]:
    """The five inputs of ``pyLDAvis.prepare``: topic-term and doc-topic distributions,
    document lengths, vocabulary and term frequencies (from ``counts``, the documents of ``theta``)."""
    beta = _check_topic_word(topic_word, vocabulary)
    th = np.asarray(theta, dtype=np.float64)
    if not sp.issparse(counts):
        raise TypeError("counts must be a scipy.sparse (documents, words) matrix")
    if counts.shape != (th.shape[0], beta.shape[1]):
        raise ValueError(f"counts of shape {counts.shape} do not match theta {th.shape} and beta {beta.shape}")
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    keep = lengths > 0  # pyLDAvis divides by document length
    return {
        "topic_term_dists": beta / beta.sum(axis=1, keepdims=True),
        "doc_topic_dists": th[keep] / th[keep].sum(axis=1, keepdims=True),
        "doc_lengths": lengths[keep].astype(np.int64),
        "vocab": [str(w) for w in vocabulary],
        "term_frequency": np.asarray(counts.sum(axis=0)).ravel().astype(np.int64),
    }


def occurring_words(data: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`pyldavis_data`'s output restricted to the words that occur in its documents.

    pyLDAvis divides by a word's frequency (its lift); a word that never
    occurs would get an infinite lift and sit on top of every topic's list.
    The topics' word distributions are renormalised over the words kept.
    """
    keep = np.asarray(data["term_frequency"]) > 0
    if keep.all():
        return dict(data)
    if not keep.any():
        raise ValueError("none of the vocabulary's words occurs in these documents: nothing for pyLDAvis to show")
    beta = np.asarray(data["topic_term_dists"])[:, keep]
    return {**data, "topic_term_dists": beta / beta.sum(axis=1, keepdims=True),
            "vocab": [w for w, k in zip(data["vocab"], keep) if k],
            "term_frequency": np.asarray(data["term_frequency"])[keep]}


def export_pyldavis(
    directory: str | os.PathLike[str],
    topic_word: np.ndarray,
    theta: np.ndarray,
    counts: sp.spmatrix,
    vocabulary: Sequence[str],
    *,
    html: bool | None = None,
    names: Sequence[str] | None = None,
) -> dict[str, Path]:
    """Write ``ldavis.json`` (the pyLDAvis inputs) and, with pyLDAvis installed, ``ldavis.html``.

    The page holds d3 and LDAvis's JavaScript and CSS inline, so it works
    opened from disk without a network (pyLDAvis's own page loads them from
    a CDN).
    ``html=None`` writes the page when pyLDAvis imports; ``True`` requires it.
    The JSON also holds ``topic_names`` (pyLDAvis numbers topics from 0 in
    the model's order); load it elsewhere with
    ``pyLDAvis.prepare(**{k: v for k, v in json.load(f).items() if k != "topic_names"})``.
    """
    data = pyldavis_data(topic_word, theta, counts, vocabulary)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = {"json": out / "ldavis.json"}
    payload: dict[str, Any] = {k: np.asarray(v).tolist() if k != "vocab" else v for k, v in data.items()}
    payload["topic_names"] = _topic_names(data["topic_term_dists"].shape[0], names)
    atomic_write_text(written["json"], json.dumps(payload))
    if html is False:
        return written
    try:
        import pyLDAvis
    except ImportError:
        if html:
            raise ImportError("the HTML page needs pyLDAvis: pip install pyLDAvis") from None
        return written
    from etm.offline import ldavis_page

    vis = pyLDAvis.prepare(**occurring_words(data), sort_topics=False, n_jobs=1, start_index=0)
    written["html"] = out / "ldavis.html"
    atomic_write_text(written["html"], ldavis_page(vis, title="pyLDAvis: " + out.name))
    return written
