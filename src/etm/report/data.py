"""What the report shows, computed from a fitted model and a corpus: numbers and strings, no HTML.

The model is any fitted :class:`etm.TopicModel` (used through its public
attributes and methods, so this module does not import the estimator). The
corpus is a prepared corpus (:class:`~etm.corpus.CorpusSource`, in memory or
sharded, whose training documents are read piece by piece) or a
:class:`~etm.corpus.Corpus`. Sizes are capped so the page stays small for
large models: the map shows at most ``map_words`` words, the search box knows
``search_words`` words, and prevalence, representative documents and
pyLDAvis use the first ``max_documents`` training documents.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from etm.corpus import Corpus, CorpusSource
from etm.metrics import check_positive_count, top_word_indices, topic_coherence_per_topic
from etm.neighbors import nearest_word_indices, topic_neighbors
from etm.plots import embedding_map_points, occurring_words, pyldavis_data

logger = logging.getLogger(__name__)

__all__ = ["AnalysedDocuments", "analyse_documents", "topic_coherences", "representative_documents", "document_texts",
           "snippet", "highlight_pattern", "searchable_words", "search_index", "topic_summaries", "model_settings",
           "corpus_settings", "ldavis_prepared", "map_points", "jensen_shannon_distances", "principal_coordinates"]

#: Steps of pyLDAvis's relevance slider (lambda): 21 positions instead of pyLDAvis's default 101, five times
#: less ranking work (minutes at K=100), and as many positions as a reader tries.
LDAVIS_LAMBDA_STEP = 0.05

#: Documents shorter than this (in vocabulary tokens) are passed over as representative documents when enough
#: longer ones exist: a ten-word message puts all its mass on one topic without saying much about it.
MIN_REPRESENTATIVE_LENGTH = 10


@dataclass(frozen=True)
class AnalysedDocuments:
    """The training documents the report looks at.

    Attributes
    ----------
    counts : csr_matrix of shape (D', V)
        The first ``max_documents`` training documents (prevalence, representative documents, pyLDAvis).
    ids : list of str of length D', or None
        Their ids, when the corpus records ids.
    n_total : int
        All training documents of the corpus (D).
    coherence_counts : csr_matrix of shape (D, C)
        Every training document, only the columns of the topics' top words (coherence needs no more).
    columns : ndarray of int of shape (C,)
        The vocabulary index of each of those columns.
    """

    counts: sp.csr_matrix
    ids: list[str] | None
    n_total: int
    coherence_counts: sp.csr_matrix
    columns: np.ndarray


def analyse_documents(corpus: Any, top: np.ndarray, max_documents: int) -> AnalysedDocuments:
    """Read the training documents of ``corpus`` once.

    The first ``max_documents`` are kept whole; all of them are kept on the
    columns of ``top`` (K, n), the top words whose coherence is measured.
    """
    check_positive_count("max_documents", max_documents)
    if isinstance(corpus, CorpusSource):
        chunks = ((chunk.counts, ids) for chunk, ids, _ in corpus.document_chunks(50_000, parts=("train",)))
    elif isinstance(corpus, Corpus):
        chunks = iter([(corpus.counts, None if corpus.doc_ids is None else corpus.doc_ids.tolist())])
    else:
        raise TypeError(f"corpus must be a Corpus or a prepared corpus (CorpusSource), got {type(corpus).__name__}")
    columns = np.unique(top)
    kept: list[sp.csr_matrix] = []
    kept_ids: list[str] | None = []
    narrow: list[sp.csr_matrix] = []
    n_kept = n_total = 0
    for counts, ids in chunks:
        counts = sp.csr_matrix(counts)
        narrow.append(counts[:, columns])
        n_total += counts.shape[0]
        take = min(counts.shape[0], max_documents - n_kept)
        if take > 0:
            kept.append(counts[:take])
            n_kept += take
            kept_ids = None if ids is None or kept_ids is None else kept_ids + list(ids[:take])
    if n_total == 0:
        raise ValueError("the corpus has no training documents to report on")
    return AnalysedDocuments(
        counts=sp.vstack(kept, format="csr").astype(np.float32),
        ids=kept_ids,
        n_total=n_total,
        coherence_counts=sp.vstack(narrow, format="csr"),
        columns=columns,
    )


def topic_coherences(top: np.ndarray, analysed: AnalysedDocuments) -> np.ndarray:
    """NPMI coherence of each topic's top words over all training documents, shape (K,)."""
    return topic_coherence_per_topic(np.searchsorted(analysed.columns, top), analysed.coherence_counts)


def representative_documents(theta: np.ndarray, lengths: np.ndarray, n: int) -> list[list[int]]:
    """For each topic, the rows of the ``n`` documents with the largest share of it, largest first.

    Documents of at least :data:`MIN_REPRESENTATIVE_LENGTH` tokens are
    preferred (shorter ones are used only when too few long ones exist); a
    document with no share of the topic is never listed.
    """
    check_positive_count("n", n)
    lengths = np.asarray(lengths).ravel()
    long_enough = lengths >= MIN_REPRESENTATIVE_LENGTH
    candidates = np.flatnonzero(long_enough) if long_enough.sum() >= n else np.flatnonzero(lengths > 0)
    out: list[list[int]] = []
    for k in range(theta.shape[1]):
        share = theta[candidates, k]
        order = np.lexsort((candidates, -share))[:n]
        out.append([int(candidates[i]) for i in order if share[i] > 0])
    return out


def snippet(text: str, limit: int = 400) -> str:
    """``text`` on one line, cut at a word boundary after at most ``limit`` characters (with an ellipsis)."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat.rfind(" ", 0, limit)
    return flat[: cut if cut > limit // 2 else limit] + " …"


def document_texts(
    documents: Any, rows: Sequence[int], ids: Sequence[str] | None, *, n_total: int,
    reader_options: Mapping[str, Any] | None = None,
) -> dict[int, str]:
    """The raw text of the analysed documents ``rows``, from wherever ``documents`` keeps them.

    ``documents`` is a sequence of texts in the order of the corpus's
    training documents, a mapping from document id to text, or a file or
    folder of raw documents (any ``etm prepare`` input, read as a stream with
    ``reader_options``) whose ids are matched against the corpus's.
    """
    wanted = sorted(set(int(r) for r in rows))
    if isinstance(documents, (str, os.PathLike)):
        if ids is None:
            raise ValueError(f"the corpus records no document ids, so the documents of {os.fspath(documents)} "
                             "cannot be matched to it; pass the texts themselves in the corpus's order")
        return _texts_from_file(Path(documents), {ids[r]: r for r in wanted}, dict(reader_options or {}))
    if isinstance(documents, Mapping):
        if ids is None:
            raise ValueError("the corpus records no document ids, so a mapping of id -> text cannot be matched")
        return {r: str(documents[ids[r]]) for r in wanted if ids[r] in documents}
    if isinstance(documents, Sequence) and not isinstance(documents, (bytes, bytearray)):
        if len(documents) != n_total:
            raise ValueError(f"documents has {len(documents)} texts but the corpus has {n_total} training "
                             "documents; pass one text per training document, in order, or a mapping id -> text")
        return {r: str(documents[r]) for r in wanted}
    raise TypeError("documents must be a sequence of texts, a mapping id -> text or a path to raw documents, "
                    f"got {type(documents).__name__}")


def _texts_from_file(path: Path, wanted: dict[str, int], options: dict[str, Any]) -> dict[int, str]:
    from etm.corpus import iter_documents

    options = {k: v for k, v in options.items() if k in {"format", "encoding", "encoding_errors", "text_field",
                                                           "id_field"}}
    found: dict[int, str] = {}
    first_id = None
    for record in iter_documents(path, **options):
        first_id = record.doc_id if first_id is None else first_id
        row = wanted.get(record.doc_id)
        if row is not None:
            found[row] = record.text
            if len(found) == len(wanted):
                break
    if wanted and not found:
        raise ValueError(
            f"none of the documents of {path} has the id of a corpus document (e.g. {next(iter(wanted))!r} in the "
            f"corpus, {first_id!r} in the file): read it with the --id-field (and --format, --text-field) "
            "`etm prepare` was given"
        )
    if len(found) < len(wanted):
        logger.warning("%d of the %d representative documents are not in %s: they are shown without text",
                       len(wanted) - len(found), len(wanted), path)
    return found


def highlight_pattern(words: Sequence[str]) -> re.Pattern[str] | None:
    """A case-insensitive regular expression matching any of ``words`` as a whole word."""
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))
    return re.compile(rf"(?<!\w)({alternatives})(?!\w)", re.IGNORECASE)


def searchable_words(topic_word: np.ndarray, frequency: np.ndarray | None, n_words: int, limit: int) -> np.ndarray:
    """The vocabulary indices the search box knows: every topic's top words, then the most frequent words.

    Without word frequencies, words are ranked by their largest weight in any topic.
    """
    top = top_word_indices(topic_word, n_words).ravel()
    chosen = list(dict.fromkeys(int(i) for i in top))
    score = np.asarray(frequency, dtype=np.float64) if frequency is not None else topic_word.max(axis=0)
    order = np.argsort(-score, kind="stable")
    rest = order[~np.isin(order, chosen)][: max(limit - len(chosen), 0)]
    chosen += [int(i) for i in rest]
    return np.asarray(chosen, dtype=np.int64)


def search_index(
    word_embeddings: np.ndarray, topic_word: np.ndarray, vocabulary: Sequence[str], words: np.ndarray, *,
    n_neighbors: int = 8, n_topics: int = 3,
) -> dict[str, Any]:
    """What the search box answers for each of ``words``: nearest words (cosine) and the topics weighing it most.

    Compact for the page: ``words`` lists the searchable words first (S of
    them) and then the other words the answers name; ``near[i]`` is a flat
    ``[word, similarity x 1000, ...]`` list of indices into ``words``;
    ``topics[i]`` a flat ``[topic, weight, rank, ...]`` list (rank 1 = the
    topic's most probable word).
    """
    beta = np.asarray(topic_word, dtype=np.float64)
    idx, sims = nearest_word_indices(words, word_embeddings, n_neighbors)
    order = {int(w): i for i, w in enumerate(words)}
    names = [str(vocabulary[int(w)]) for w in words]
    for j in np.unique(idx):
        if int(j) not in order:
            order[int(j)] = len(names)
            names.append(str(vocabulary[int(j)]))
    near = [[v for j, s in zip(row_i, row_s) for v in (order[int(j)], int(round(1000 * s)))]
            for row_i, row_s in zip(idx, sims)]
    # rank of each searchable word in each topic: how many words the topic weighs more
    weights = beta[:, words]  # (K, S)
    ranks = np.empty_like(weights, dtype=np.int64)
    for k in range(beta.shape[0]):
        ranks[k] = np.searchsorted(np.sort(-beta[k]), -weights[k], side="left") + 1
    best = np.argsort(-weights, axis=0, kind="stable")[: min(n_topics, beta.shape[0])]  # (n_topics, S)
    topics = [[v for k in best[:, i] for v in (int(k), _sig(weights[k, i]), int(ranks[k, i]))]
              for i in range(len(words))]
    return {"words": names, "searchable": len(words), "near": near, "topics": topics}


def _sig(x: float, digits: int = 3) -> float:
    """``x`` to ``digits`` significant digits (the page shows weights, not 17 digits of them)."""
    return float(f"{x:.{digits}g}")


def map_points(model: Any, *, words_per_topic: int, max_words: int, method: str) -> dict[str, Any]:
    """The embedding map's words and topics with 2-D coordinates (see :func:`etm.plots.embedding_map_points`)."""
    picked, owner, words_xy, topics_xy = embedding_map_points(
        model.word_embeddings_, model.topic_embeddings_, model.vocabulary_, topic_word=model.topic_word_,
        words_per_topic=words_per_topic, max_words=max_words, method=method, random_state=model.random_state_)
    return {
        "words": [str(model.vocabulary_[i]) for i in picked],
        "owners": owner,
        "words_xy": np.round(words_xy, 4).tolist(),
        "topics_xy": np.round(topics_xy, 4).tolist(),
        "method": method,
    }


def topic_summaries(model: Any, n_words: int) -> list[dict[str, Any]]:
    """Each topic's name, seed words, top words with weights, nearest words and closest topics."""
    beta = np.asarray(model.topic_word_, dtype=np.float64)
    vocab = model.vocabulary_
    top = top_word_indices(beta, n_words)
    seeds = dict(getattr(model, "seed_words_", None) or {})
    near = topic_neighbors(model.topic_embeddings_, model.word_embeddings_, vocab, min(8, len(vocab)))
    alphas = np.asarray(model.topic_embeddings_, dtype=np.float64)
    unit = alphas / np.maximum(np.linalg.norm(alphas, axis=1, keepdims=True), 1e-12)
    cos = unit @ unit.T
    np.fill_diagonal(cos, -np.inf)
    out = []
    for k, name in enumerate(model.topic_names_):
        closest = np.argsort(-cos[k], kind="stable")[: min(3, beta.shape[0] - 1)]
        seed_words = seeds.get(name)
        out.append({
            "index": k,
            "name": str(name),
            "seeded": seed_words is not None,
            "seed_words": list(seed_words or []),
            "words": [[str(vocab[i]), _sig(beta[k, i])] for i in top[k]],
            "neighbors": [[w, round(s, 3)] for w, s in near[k]],
            "closest": [[int(j), round(float(cos[k, j]), 3)] for j in closest],
        })
    return out


def model_settings(model: Any) -> dict[str, Any]:
    """The model's settings and training facts, as the summary lists them."""
    params = model.get_params(deep=False)
    shown = {k: v for k, v in params.items()
             if k not in {"preprocessor", "seed_topics", "checkpoint_dir", "verbose", "device", "embeddings"}
             and v is not None}
    history = list(getattr(model, "history_", None) or [])
    facts: dict[str, Any] = {
        "topics (K)": len(model.topic_names_),
        "seeded topics": len(getattr(model, "seed_words_", None) or {}),
        "vocabulary (V)": len(model.vocabulary_),
        "embedding size (E)": int(np.shape(model.word_embeddings_)[1]),
        "epochs run": getattr(model, "n_iter_", None),
        "best epoch": getattr(model, "best_epoch_", None),
        "validation perplexity (best epoch)": _round(getattr(model, "valid_perplexity_", None), 1),
        "training seconds": round(sum(float(h.get("seconds") or 0.0) for h in history), 1) if history else None,
    }
    report = getattr(model, "embedding_report_", None)
    if report:
        facts["pretrained embeddings"] = (f"{report.get('source')}: {report.get('covered')} of "
                                          f"{report.get('vocabulary_size')} words")
    return {"facts": {k: v for k, v in facts.items() if v is not None}, "parameters": shown}


def corpus_settings(corpus: Any, name: str | None, analysed: AnalysedDocuments) -> dict[str, Any]:
    """Where the corpus comes from, its sizes and its preprocessing."""
    sizes: dict[str, Any] = {}
    if isinstance(corpus, CorpusSource):
        sizes = {k: v for k, v in corpus.summary().items() if not isinstance(v, dict)}
        settings = dict(corpus.settings or {})
    else:
        sizes = {"documents": corpus.n_docs, "tokens": corpus.n_tokens, "vocabulary_size": corpus.n_words}
        settings = {}
    sizes["documents analysed"] = analysed.counts.shape[0]
    return {
        "name": name or settings.get("source") or "(in memory)",
        "sizes": sizes,
        "preprocessing": settings.get("preprocessing"),
        "source": settings.get("source"),
    }


def _round(value: Any, digits: int) -> Any:
    return None if value is None else round(float(value), digits)


def jensen_shannon_distances(distributions: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (natural log) between every pair of rows, shape (K, K).

    What ``pyLDAvis.js_PCoA`` computes pair by pair through ``scipy.stats.entropy``
    (minutes at V=50k), here one row against all the others at a time.
    """
    from scipy.special import xlogy

    p = np.asarray(distributions, dtype=np.float64)
    k = p.shape[0]
    # JS(p, q) = (sum p log p + sum q log q) / 2 - sum m log m, with m = (p + q) / 2: one log per element of m
    plogp = xlogy(p, p).sum(axis=1)
    out = np.zeros((k, k))
    for i in range(k - 1):
        m = 0.5 * (p[i] + p[i + 1:])
        out[i, i + 1:] = out[i + 1:, i] = 0.5 * (plogp[i] + plogp[i + 1:]) - xlogy(m, m).sum(axis=1)
    return np.maximum(out, 0.0)


def principal_coordinates(distances: np.ndarray, n_components: int = 2) -> np.ndarray:
    """Classical multidimensional scaling of a distance matrix, as pyLDAvis's ``js_PCoA`` does it."""
    d = np.asarray(distances, dtype=np.float64)
    n = d.shape[0]
    centre = np.eye(n) - np.ones((n, n)) / n
    b = -centre @ (d**2) @ centre / 2
    values, vectors = np.linalg.eigh((b + b.T) / 2)
    order = np.argsort(values)[::-1][:n_components]
    values = np.where(np.isclose(values[order], 0) | (values[order] < 0), 0.0, values[order])
    return np.sqrt(values) * vectors[:, order]


def ldavis_prepared(topic_word: np.ndarray, theta: np.ndarray, counts: sp.csr_matrix, vocabulary: Sequence[str],
                    *, max_words: int = 10_000, max_rows: int = 100_000) -> Any:
    """``pyLDAvis.prepare`` of the analysed documents, topics in the model's order and numbered from 0.

    Sized for the page: pyLDAvis ranks terms over the ``max_words`` most
    frequent words of the documents (its cost and output grow with V; the
    topics' word distributions are renormalised over them), its term-topic
    table keeps the ``max_rows`` largest entries (every term keeps its
    largest), its relevance slider moves in steps of
    :data:`LDAVIS_LAMBDA_STEP` (pyLDAvis ranks every topic's terms at every
    step, the bulk of its time), and numbers are rounded to what the view can
    show. The intertopic distances are computed on the full distributions.
    """
    try:
        import pyLDAvis
    except ImportError:
        raise ImportError("the pyLDAvis view needs pyLDAvis: pip install 'etm[plots]'") from None
    data = occurring_words(pyldavis_data(topic_word, theta, counts, vocabulary))
    full = np.asarray(topic_word, dtype=np.float64)
    full = full / full.sum(axis=1, keepdims=True)
    frequency = np.asarray(data["term_frequency"])
    if frequency.size > max_words:
        keep = np.sort(np.argsort(-frequency, kind="stable")[:max_words])
        beta = data["topic_term_dists"][:, keep]
        data = {**data, "topic_term_dists": beta / beta.sum(axis=1, keepdims=True),
                "vocab": [data["vocab"][i] for i in keep], "term_frequency": frequency[keep]}
    coordinates = principal_coordinates(jensen_shannon_distances(full))
    prepared = pyLDAvis.prepare(**data, sort_topics=False, n_jobs=1, start_index=0, lambda_step=LDAVIS_LAMBDA_STEP,
                                mds=lambda _: coordinates)
    return _compact(prepared, max_rows)


def _compact(prepared: Any, max_rows: int) -> Any:
    """Fewer digits, and at most ``max_rows`` rows of the term-topic table (each term keeps its largest)."""
    import pandas as pd

    table = prepared.token_table
    if len(table) > max_rows:
        rows = pd.DataFrame({"Term": table["Term"].to_numpy(), "Freq": table["Freq"].to_numpy()})
        first = rows.groupby("Term")["Freq"].idxmax().to_numpy()
        rest = rows.drop(index=first).nlargest(max(max_rows - first.size, 0), "Freq").index.to_numpy()
        table = table.iloc[np.sort(np.concatenate([first, rest]))]
        logger.info("pyLDAvis term-topic table cut to its %d largest entries", len(table))
    table = table.assign(Freq=table["Freq"].map(lambda x: _sig(float(x), 4)))
    info = prepared.topic_info.assign(Freq=prepared.topic_info["Freq"].round(2),
                                      Total=prepared.topic_info["Total"].round(2))
    coordinates = prepared.topic_coordinates.round(6)
    return prepared._replace(token_table=table, topic_info=info, topic_coordinates=coordinates)
