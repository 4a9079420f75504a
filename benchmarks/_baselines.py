"""Shared pieces of the benchmark scripts: scoring with ``etm.metrics`` and the two LDA baselines.

Used by ``lda_gap.py``, ``quality.py`` and ``peers.py`` (each puts this folder first on ``sys.path`` when run as a
script).
Every model, ETM or LDA, is reduced to a topic-word matrix ``beta`` and the topic proportions inferred
from the test first halves, and scored by :class:`Evaluator` with the same functions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from etm.corpus import PreparedCorpus
from etm.metrics import (
    completion_loglik,
    perplexity_per_document,
    top_word_indices,
    topic_coherence_per_topic,
    topic_diversity,
)

SEED = 2019


def default_data() -> Path:
    env = os.environ.get("ETM_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


# --------------------------------------------------------------------------- scoring


@dataclass
class Scores:
    """Topic and completion scores of one model (or one ranking of its topics)."""

    coherence: float
    diversity: float
    perplexity: float
    top10: np.ndarray
    top25: np.ndarray
    per_topic_coherence: np.ndarray

    @property
    def quality(self) -> float:
        return self.coherence * self.diversity


@dataclass
class Fitted:
    """A trained model reduced to what the tables need."""

    name: str
    beta: np.ndarray  # (K, V) topic-word distributions used for the likelihood
    theta_h1: np.ndarray  # (D_test, K) topic proportions inferred from the test first halves
    seconds: float
    by_beta: Scores
    by_lift: Scores
    curve: list[dict[str, float]] = field(default_factory=list)
    note: str = ""


class Evaluator:
    """Scores a (beta, theta) pair with the etm metric functions on fixed data."""

    def __init__(self, corpus: PreparedCorpus) -> None:
        self.train_counts = sp.csr_matrix(corpus.train.counts)
        self.h1, self.h2 = corpus.test_halves
        self.n_h2 = np.asarray(self.h2.sum(axis=1)).ravel()
        freq = np.asarray(self.train_counts.sum(axis=0)).ravel().astype(np.float64)
        self.frequency = freq / freq.sum()
        with np.errstate(divide="ignore"):  # a vocabulary word absent from training (OCTIS M10) gets -inf
            self.log_frequency = np.log(self.frequency)
        self.by_frequency = np.argsort(-freq, kind="stable")

    def perplexity(self, theta: np.ndarray, beta: np.ndarray) -> float:
        theta = np.asarray(theta, dtype=np.float64)
        theta = theta / theta.sum(axis=1, keepdims=True)
        return perplexity_per_document(completion_loglik(theta, beta, self.h2), self.n_h2)

    def topics(self, ranking: np.ndarray, perplexity: float) -> Scores:
        top10 = top_word_indices(ranking, 10)
        top25 = top_word_indices(ranking, 25)
        per_topic = topic_coherence_per_topic(top10, self.train_counts)
        return Scores(float(per_topic.mean()), topic_diversity(top25), perplexity, top10, top25, per_topic)

    def lift(self, beta: np.ndarray) -> np.ndarray:
        """``log beta_kw - log p(w)``: how much more likely a word is in the topic than in the corpus."""
        return np.log(np.maximum(beta, 1e-300)) - self.log_frequency

    def fitted(self, name: str, beta: np.ndarray, theta_h1: np.ndarray, seconds: float, **kwargs: Any) -> Fitted:
        ppl = self.perplexity(theta_h1, beta)
        return Fitted(name, beta, theta_h1, seconds, self.topics(beta, ppl), self.topics(self.lift(beta), ppl),
                      **kwargs)


# --------------------------------------------------------------------------- LDA baselines


def _rows_as_words(counts: sp.csr_matrix, vocabulary: Sequence[str]) -> list[list[str]]:
    out = []
    for d in range(counts.shape[0]):
        lo, hi = counts.indptr[d], counts.indptr[d + 1]
        out.append([vocabulary[w] for w, c in zip(counts.indices[lo:hi], counts.data[lo:hi]) for _ in range(int(c))])
    return out


def train_tomotopy(counts: sp.spmatrix, vocab: Sequence[str], n_topics: int, iterations: int, threads: int,
                   seed: int) -> tuple[Any, np.ndarray, float]:
    """Collapsed Gibbs LDA (tomotopy defaults: alpha 0.1 optimised every 10 iterations, eta 0.01) on bags of words.

    Returns the model, its (K, V) topic-word matrix in ``vocab``'s order and the training seconds. (tomotopy
    ignores an empty document.)
    """
    import tomotopy as tp

    vocab = list(vocab)
    t0 = time.perf_counter()
    model = tp.LDAModel(k=n_topics, seed=seed)
    for words in _rows_as_words(sp.csr_matrix(counts), vocab):
        model.add_doc(words)
    model.train(iterations, workers=threads)
    seconds = time.perf_counter() - t0
    position = {w: i for i, w in enumerate(vocab)}
    cols = np.array([position[w] for w in model.used_vocabs])
    beta = np.zeros((n_topics, len(vocab)))
    for k in range(n_topics):
        beta[k, cols] = model.get_topic_word_dist(k)
    return model, beta, seconds


def fit_tomotopy(
    corpus: PreparedCorpus, ev: Evaluator, iterations: int, threads: int, n_topics: int = 50, *, seed: int = SEED
) -> Fitted:
    """Collapsed Gibbs LDA (:func:`train_tomotopy`), theta of the test first halves from 100 inference iterations."""
    vocab = list(corpus.vocabulary)
    model, beta, seconds = train_tomotopy(corpus.train.counts, vocab, n_topics, iterations, threads, seed)
    docs = [model.make_doc(words) for words in _rows_as_words(ev.h1, vocab)]
    inferred, _ = model.infer(docs, iterations=100, workers=threads)
    theta = np.asarray(inferred, dtype=np.float64)  # one topic distribution per document
    return ev.fitted("LDA tomotopy", beta, theta, seconds, note=f"Gibbs, {iterations} iterations")


def _gensim_bow(counts: sp.csr_matrix) -> list[list[tuple[int, float]]]:
    return [list(zip(counts.indices[counts.indptr[d]:counts.indptr[d + 1]].tolist(),
                     counts.data[counts.indptr[d]:counts.indptr[d + 1]].astype(float).tolist()))
            for d in range(counts.shape[0])]


def fit_gensim(corpus: PreparedCorpus, ev: Evaluator, passes: int, n_topics: int = 50, *, seed: int = SEED) -> Fitted:
    """Online variational LDA (gensim defaults: symmetric alpha = eta = 1/K), single process."""
    from gensim.models import LdaModel

    vocab = list(corpus.vocabulary)
    t0 = time.perf_counter()
    model = LdaModel(_gensim_bow(sp.csr_matrix(corpus.train.counts)), num_topics=n_topics,
                     id2word=dict(enumerate(vocab)), passes=passes, chunksize=2000, random_state=seed,
                     eval_every=None)
    seconds = time.perf_counter() - t0
    beta = model.get_topics().astype(np.float64)
    theta = np.zeros((ev.h1.shape[0], n_topics))
    for d, pairs in enumerate(model.get_document_topics(_gensim_bow(ev.h1), minimum_probability=0.0)):
        for k, p in pairs:
            theta[d, k] = p
    return ev.fitted("LDA gensim", beta, theta, seconds, note=f"online VB, {passes} passes, chunks of 2000")
