"""``write_report``: one self-contained HTML page about a fitted topic model.

:func:`build_report` computes what the page shows (:mod:`etm.report.data`),
:func:`etm.report.html.render_report` turns it into HTML with plotly charts
and the pyLDAvis view inlined (:mod:`etm.offline`), and
:func:`write_report` writes it atomically.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from etm._io import atomic_write_text
from etm.corpus import Corpus, CorpusSource, check_same_vocabulary
from etm.metrics import check_positive_count, top_word_indices, topic_diversity, topic_quality
from etm.preprocessing import strip_newsgroup_text
from etm.report import data as rd

logger = logging.getLogger(__name__)

__all__ = ["build_report", "write_report"]


def write_report(
    model: Any,
    path: str | os.PathLike[str],
    corpus: Corpus | CorpusSource | None = None,
    *,
    documents: Any = None,
    reader_options: Mapping[str, Any] | None = None,
    corpus_name: str | None = None,
    title: str | None = None,
    n_words: int = 10,
    n_documents: int = 5,
    max_documents: int = 20_000,
    map_words: int = 2_000,
    search_words: int = 5_000,
    n_neighbors: int = 8,
    method: str = "pca",
    ldavis: bool = True,
) -> Path:
    """Write one HTML page about ``model`` that opens from disk and makes no network request.

    Parameters
    ----------
    model : TopicModel
        A fitted model.
    path : path-like
        The ``.html`` file to write (atomically).
    corpus : Corpus or CorpusSource, optional
        Documents over the model's vocabulary; a prepared corpus contributes its
        training documents (and its test, else validation, halves to
        perplexity). Without it, the page has no prevalence, coherence,
        representative documents or pyLDAvis view.
    documents : sequence of str, mapping id -> str, path, or None
        Raw texts for snippets of the representative documents: one per
        training document in order, by document id, or a file/folder of raw
        documents (any ``etm prepare`` input, matched by id, read with
        ``reader_options`` such as ``text_field``, ``id_field``, ``format``).
        None uses the raw file the corpus records as its source when it
        exists; ``{}`` shows no text.
    corpus_name : str, optional
        How the page names the corpus (default: its recorded source).
    title : str, optional
        The page title (default: "Topic model report").
    n_words, n_documents : int
        Top words and representative documents listed per topic.
    max_documents : int
        Training documents used for prevalence, representative documents and
        pyLDAvis (the first ones); coherence always uses all of them.
    map_words, search_words, n_neighbors : int
        Caps that keep the page small: words on the map, words the search box
        knows, and neighbours listed per searched word.
    method : {"pca", "tsne"}
        Projection of the embedding map.
    ldavis : bool
        Include the pyLDAvis intertopic-distance view (needs ``corpus``).

    Returns
    -------
    Path
        ``path``.
    """
    from etm.report.html import render_report

    report = build_report(model, corpus, documents=documents, reader_options=reader_options,
                          corpus_name=corpus_name, title=title, n_words=n_words, n_documents=n_documents,
                          max_documents=max_documents, map_words=map_words, search_words=search_words,
                          n_neighbors=n_neighbors, method=method, ldavis=ldavis)
    target = Path(path)
    atomic_write_text(target, render_report(report))
    logger.info("wrote %s (%.1f MB)", target, target.stat().st_size / 1e6)
    return target


def build_report(
    model: Any,
    corpus: Corpus | CorpusSource | None = None,
    *,
    documents: Any = None,
    reader_options: Mapping[str, Any] | None = None,
    corpus_name: str | None = None,
    title: str | None = None,
    n_words: int = 10,
    n_documents: int = 5,
    max_documents: int = 20_000,
    map_words: int = 2_000,
    search_words: int = 5_000,
    n_neighbors: int = 8,
    method: str = "pca",
    ldavis: bool = True,
) -> dict[str, Any]:
    """Everything :func:`write_report` shows, as a dict (see :func:`write_report` for the parameters).

    Keys: ``title``, ``model`` (settings and training facts), ``corpus``
    (None without one), ``metrics``, ``history``, ``topics`` (one dict per
    topic), ``map``, ``search``, and ``ldavis`` (a ``pyLDAvis.PreparedData``
    or None).
    """
    for name, value in (("n_words", n_words), ("n_documents", n_documents), ("map_words", map_words),
                        ("search_words", search_words), ("n_neighbors", n_neighbors)):
        check_positive_count(name, value)
    if not hasattr(model, "topic_word_"):
        raise ValueError("the model is not fitted: call fit (or TopicModel.load a saved model) before reporting")
    if method not in ("pca", "tsne"):
        raise ValueError(f"unknown projection {method!r}; use 'pca' or 'tsne'")
    beta = np.asarray(model.topic_word_, dtype=np.float64)
    vocab = list(model.vocabulary_)
    topics = rd.topic_summaries(model, n_words)
    metrics: dict[str, Any] = {"diversity": topic_diversity(top_word_indices(beta, 25))}
    frequency = None
    corpus_info = None
    ldavis_data = None
    if corpus is not None:
        check_same_vocabulary(corpus.vocabulary, vocab, left="corpus", right="model")
        top10 = top_word_indices(beta, 10)
        analysed = rd.analyse_documents(corpus, top10, max_documents)
        coherence = rd.topic_coherences(top10, analysed)
        metrics.update(_corpus_metrics(model, corpus, coherence))
        metrics["quality"] = topic_quality(metrics["coherence"], metrics["diversity"])
        theta = model.transform(Corpus(analysed.counts, vocab)).astype(np.float64)
        _add_documents(topics, model, corpus, analysed, theta, coherence, n_documents=n_documents,
                       documents=documents, reader_options=reader_options)
        frequency = (corpus.word_totals("train") if isinstance(corpus, CorpusSource)
                     else np.asarray(analysed.counts.sum(axis=0)).ravel())
        corpus_info = rd.corpus_settings(corpus, corpus_name, analysed)
        if ldavis:
            ldavis_data = rd.ldavis_prepared(beta, theta, analysed.counts, vocab)
    words = rd.searchable_words(beta, frequency, n_words, search_words)
    pre = getattr(model, "preprocessor_", None)
    return {
        "title": title or "Topic model report",
        "model": rd.model_settings(model),
        "preprocessing": (corpus_info or {}).get("preprocessing") or (None if pre is None else pre.settings()),
        "corpus": corpus_info,
        "metrics": metrics,
        "history": list(getattr(model, "history_", None) or []),
        "topics": topics,
        "map": rd.map_points(model, words_per_topic=n_words, max_words=map_words, method=method),
        "search": rd.search_index(model.word_embeddings_, beta, vocab, words, n_neighbors=n_neighbors),
        "ldavis": ldavis_data,
    }


def _corpus_metrics(model: Any, corpus: Any, coherence: np.ndarray) -> dict[str, Any]:
    """Coherence (the mean of the per-topic coherences); perplexity on the corpus's test (else valid) halves."""
    out: dict[str, Any] = {"coherence": float(coherence.mean())}
    part = None
    if isinstance(corpus, CorpusSource):
        part = next((p for p in ("test", "valid") if corpus.completion_chunks(p)), None)
    if part is not None:
        scores = model.evaluate(corpus, corpus, part=part)
        out.update(perplexity_per_document=scores["perplexity_per_document"],
                   perplexity_per_token=scores["perplexity_per_token"],
                   completion_documents=scores["completion_documents"], completion_part=part)
    return out


def _add_documents(
    topics: list[dict[str, Any]], model: Any, corpus: Any, analysed: rd.AnalysedDocuments, theta: np.ndarray,
    coherence: np.ndarray, *, n_documents: int, documents: Any, reader_options: Mapping[str, Any] | None,
) -> None:
    """Each topic's coherence, prevalence and representative documents (with text when it can be found)."""
    counts = analysed.counts
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    reps = rd.representative_documents(theta, lengths, n_documents)
    texts = _texts(documents, corpus, analysed, sorted({r for rows in reps for r in rows}), reader_options)
    strip = bool(((getattr(corpus, "settings", None) or {}).get("preprocessing") or {}).get("strip_newsgroup"))
    dominant = np.bincount(theta.argmax(axis=1), minlength=theta.shape[1])
    vocab = model.vocabulary_
    for k, topic in enumerate(topics):
        topic["coherence"] = round(float(coherence[k]), 4)
        topic["prevalence"] = float(theta[:, k].mean())
        topic["dominant_documents"] = int(dominant[k])
        docs = []
        for r in reps[k]:
            row = counts.getrow(r)
            order = np.argsort(-row.data, kind="stable")[:8]
            text = texts.get(r)
            if text is not None:
                text = rd.snippet(strip_newsgroup_text(text) if strip else text)
            docs.append({"row": r, "id": None if analysed.ids is None else analysed.ids[r],
                         "share": round(float(theta[r, k]), 3), "text": text,
                         "words": [str(vocab[row.indices[i]]) for i in order]})
        topic["documents"] = docs


def _texts(documents: Any, corpus: Any, analysed: rd.AnalysedDocuments, rows: Sequence[int],
           reader_options: Mapping[str, Any] | None) -> dict[int, str]:
    """Texts of ``rows``: from ``documents``, or (None) from the corpus's recorded source file when it exists."""
    if documents is None:
        source = (getattr(corpus, "settings", None) or {}).get("source")
        if not source or not Path(source).exists() or analysed.ids is None:
            return {}
        logger.info("reading the representative documents' text from %s, the corpus's recorded source "
                    "(pass documents={} / --no-documents to skip)", source)
        try:
            return rd.document_texts(source, rows, analysed.ids, n_total=analysed.n_total)
        except (ValueError, OSError) as err:
            logger.warning("no document text from %s: %s", source, err)
            return {}
    return rd.document_texts(documents, rows, analysed.ids, n_total=analysed.n_total, reader_options=reader_options)
