"""Evaluation metrics of topic models; every function returns a number.

* document-completion perplexity: theta from the first half of each held-out
  document, likelihood of the second half (two forms, named explicitly);
* NPMI topic coherence over document co-occurrence in a reference corpus,
  vectorised on sparse matrices (the authors' loop takes minutes);
* topic diversity and quality = coherence x diversity;
* top words per topic.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)

__all__ = [
    "top_word_indices",
    "top_words",
    "topic_coherence",
    "topic_coherence_per_topic",
    "topic_diversity",
    "topic_quality",
    "completion_loglik",
    "perplexity_per_document",
    "perplexity_per_token",
    "CompletionScores",
]


def check_positive_count(name: str, value: Any) -> None:
    """Reject a count below 1: a negative slice end would silently select almost everything."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def top_word_indices(topic_word: np.ndarray, n: int = 10) -> np.ndarray:
    """Indices of the ``n`` most probable words of each topic, best first.

    Parameters
    ----------
    topic_word : ndarray of shape (K, V)
        Topic-word distributions (``beta``).

    Returns
    -------
    ndarray of int of shape (K, n)
    """
    beta = np.asarray(topic_word)
    if beta.ndim != 2:
        raise ValueError(f"topic_word must have shape (K, V), got {beta.shape}")
    check_positive_count("n", n)
    n = min(int(n), beta.shape[1])
    part = np.argpartition(-beta, n - 1, axis=1)[:, :n]
    order = np.argsort(-np.take_along_axis(beta, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def top_words(topic_word: np.ndarray, vocabulary: Sequence[str], n: int = 10) -> list[list[str]]:
    """The ``n`` most probable words of each topic, as strings."""
    vocab = list(vocabulary)
    if len(vocab) != np.shape(topic_word)[1]:
        raise ValueError(f"topic_word has {np.shape(topic_word)[1]} columns, vocabulary has {len(vocab)} words")
    return [[vocab[i] for i in row] for row in top_word_indices(topic_word, n)]


def _as_indices(topics: np.ndarray | Sequence[Sequence[int]], n_words: int) -> np.ndarray:
    arr = np.asarray(topics)
    if arr.ndim != 2:
        raise ValueError(f"expected a (K, n) array of word indices or a (K, V) topic-word matrix, got {arr.shape}")
    if arr.dtype.kind == "f":
        if arr.shape[1] != n_words:
            raise ValueError(
                f"topic_word has {arr.shape[1]} columns but the reference corpus has {n_words}; "
                "use the same vocabulary for both"
            )
        raise TypeError("pass word indices; use top_word_indices(topic_word, n) first")
    if arr.size and (arr.min() < 0 or arr.max() >= n_words):
        raise ValueError(f"word indices must be in [0, {n_words}), got range [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int64)


def topic_coherence_per_topic(
    topics: np.ndarray | Sequence[Sequence[int]],
    reference: sp.spmatrix,
    pseudo_count: float = 0.0,
) -> np.ndarray:
    """NPMI coherence of each topic over document co-occurrence.

    For each pair of a topic's words (i < j), NPMI is
    ``log(p_ij / (p_i p_j)) / -log(p_ij)`` with probabilities estimated as
    document frequencies in ``reference``; a pair that never co-occurs scores
    -1 and one that co-occurs in every document scores 1, as the authors did.

    That convention needs a large reference: over a few thousand documents
    most pairs of specific words never meet by chance alone, so it punishes
    specific topics and ranks sets of topics differently than a large
    reference does. ``pseudo_count`` c > 0 scores by how far the observed
    co-document count departs from the count independence predicts, both
    shrunk by c pseudo-documents:
    ``log((d_ij + c) / (d_i d_j / D + c)) / -log((d_ij + c) / D)``, clipped to
    [-1, 1]. A pair expected to meet far less than c times scores about 0 (no
    evidence either way) instead of -1; as the counts grow it tends to NPMI.

    Parameters
    ----------
    topics : array-like of int of shape (K, n)
        Word indices of each topic's top words (``n`` = 10 gives 45 pairs).
    reference : sparse matrix of shape (D, V)
        Reference corpus counts; only presence per document matters.
    pseudo_count : float, default 0.0
        0: the authors' NPMI. > 0: the shrunk estimate above, for small
        references (``etm tune`` scores its validation documents with 0.1).

    Returns
    -------
    ndarray of shape (K,)
        Mean NPMI over each topic's pairs.
    """
    if not (math.isfinite(pseudo_count) and pseudo_count >= 0):
        raise ValueError(f"pseudo_count must be a finite number >= 0, got {pseudo_count!r}")
    ref = sp.csr_matrix(reference)
    n_docs = ref.shape[0]
    if n_docs == 0:
        raise ValueError("the reference corpus has no documents")
    idx = _as_indices(topics, ref.shape[1])
    k, n = idx.shape
    if n < 2:
        raise ValueError("coherence needs at least 2 words per topic")
    words, inverse = np.unique(idx, return_inverse=True)
    inverse = inverse.reshape(k, n)
    present = ref[:, words]
    present.data = np.ones_like(present.data, dtype=np.float64)
    co = (present.T @ present).toarray()  # (W, W) co-document frequencies
    df = np.diag(co)
    ii, jj = np.triu_indices(n, k=1)
    a, b = inverse[:, ii], inverse[:, jj]  # (K, pairs)
    d_ij = co[a, b]
    d_i, d_j = df[a], df[b]
    if pseudo_count > 0:
        return _shrunk_npmi(d_ij, d_i, d_j, n_docs, pseudo_count).mean(axis=1)
    log_d = math.log(n_docs)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_dij = np.log(d_ij)
        denom = log_dij - log_d
        npmi = -1.0 + (np.log(d_i) + np.log(d_j) - 2.0 * log_d) / denom
    npmi = np.where(d_ij == 0, -1.0, npmi)
    npmi = np.where((d_ij > 0) & (denom == 0), 1.0, npmi)
    return npmi.mean(axis=1)


def _shrunk_npmi(d_ij: np.ndarray, d_i: np.ndarray, d_j: np.ndarray, n_docs: int, c: float) -> np.ndarray:
    """NPMI with c pseudo-documents on the observed and the expected co-document counts (see the caller)."""
    observed = d_ij + c
    pmi = np.log(observed / (d_i * d_j / n_docs + c))
    # observed >= D only when a pair is in (almost) every document: NPMI's +1 end
    denom = -np.log(np.minimum(observed / n_docs, 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        npmi = np.where(denom > 0, pmi / denom, 1.0)
    return np.clip(npmi, -1.0, 1.0)


def topic_coherence(
    topics: np.ndarray | Sequence[Sequence[int]],
    reference: sp.spmatrix,
    pseudo_count: float = 0.0,
) -> float:
    """Mean NPMI coherence over topics; see :func:`topic_coherence_per_topic`."""
    return float(topic_coherence_per_topic(topics, reference, pseudo_count).mean())


def topic_diversity(topics: np.ndarray | Sequence[Sequence[int]]) -> float:
    """Share of unique words among all topics' top words (use the top 25).

    1 means no two topics share a top word; 1/K means all topics are the same.
    """
    arr = np.asarray(topics)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"expected a (K, n) array of top-word indices, got shape {arr.shape}")
    return float(np.unique(arr).size / arr.size)


def topic_quality(coherence: float, diversity: float) -> float:
    """Quality = coherence x diversity (Dieng et al., 2020)."""
    return float(coherence * diversity)


@dataclass(frozen=True)
class CompletionScores:
    """Document-completion results.

    Attributes
    ----------
    perplexity_per_document : float
        ``exp(mean_d(-loglik_d / n_d))``: the authors' form, every document
        weighs the same whatever its length.
    perplexity_per_token : float
        ``exp(-sum_d loglik_d / sum_d n_d)``: the corpus-level form, every
        token weighs the same.
    n_documents : int
    n_tokens : int
    """

    perplexity_per_document: float
    perplexity_per_token: float
    n_documents: int
    n_tokens: int


def completion_loglik(theta: np.ndarray, topic_word: np.ndarray, second_half: sp.spmatrix) -> np.ndarray:
    """Log-likelihood of each document's second half, shape (D,).

    ``theta`` (D, K) comes from the first halves; the likelihood of word w in
    document d is ``(theta @ beta)[d, w]``, evaluated only on the non-zeros of
    ``second_half`` (D, V).
    """
    h2 = sp.csr_matrix(second_half)
    theta = np.asarray(theta, dtype=np.float64)
    beta = np.asarray(topic_word, dtype=np.float64)
    if theta.shape[0] != h2.shape[0] or beta.shape[1] != h2.shape[1] or theta.shape[1] != beta.shape[0]:
        raise ValueError(
            f"shapes do not match: theta {theta.shape}, topic_word {beta.shape}, second half {h2.shape}"
        )
    rows = np.repeat(np.arange(h2.shape[0]), np.diff(h2.indptr))
    probs = np.einsum("nk,kn->n", theta[rows], beta[:, h2.indices])
    # Exact log (no +1e-6 as in the training loss), as the authors evaluate.
    ll = np.log(np.maximum(probs, 1e-300)) * h2.data
    return np.bincount(rows, weights=ll, minlength=h2.shape[0])


def perplexity_per_document(loglik: np.ndarray, n_tokens: np.ndarray) -> float:
    """The authors' document-completion perplexity: exp of the mean per-document NLL per token."""
    n_tokens = np.asarray(n_tokens, dtype=np.float64)
    return float(np.exp(np.mean(-np.asarray(loglik) / n_tokens)))


def perplexity_per_token(loglik: np.ndarray, n_tokens: np.ndarray) -> float:
    """Corpus-level perplexity: exp of total NLL over total tokens."""
    return float(np.exp(-np.sum(loglik) / np.sum(n_tokens)))
