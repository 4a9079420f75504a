"""Nearest neighbours in the embedding space (cosine similarity).

Words and topics share one space in the ETM: ``rho`` (V x E) embeds words,
``alphas`` (K x E) embeds topics, and a topic's word distribution is a
softmax of their inner products. Looking at a word's or a topic's nearest
words shows what the space has learned. The authors' probe
(``utils.nearest_neighbors``) looped over a hard-coded word list and crashed on
any corpus without "andrew"; here an unknown word is a clear error.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import numpy as np

__all__ = ["nearest_to_vector", "nearest_words", "nearest_word_indices", "topic_neighbors", "word_index"]


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def _check(embeddings: np.ndarray, vocabulary: Sequence[str], n: int) -> np.ndarray:
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] != len(vocabulary):
        raise ValueError(f"embeddings of shape {emb.shape} do not match a vocabulary of {len(vocabulary)} words")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return emb


def nearest_to_vector(
    vector: np.ndarray,
    embeddings: np.ndarray,
    vocabulary: Sequence[str],
    n: int = 10,
    *,
    exclude: Sequence[int] = (),
) -> list[tuple[str, float]]:
    """The ``n`` vocabulary words whose embeddings are closest (cosine) to ``vector``.

    Returns ``(word, cosine similarity)`` pairs, most similar first.
    """
    emb = _check(embeddings, vocabulary, n)
    query = np.asarray(vector, dtype=np.float64).ravel()
    if query.shape != (emb.shape[1],):
        raise ValueError(f"query vector has {query.size} dimensions, the embeddings {emb.shape[1]}")
    if not np.isfinite(query).all():
        raise ValueError("query vector contains NaN or infinity")
    norm = np.linalg.norm(query)
    sims = _unit_rows(emb) @ (query / (norm if norm > 0 else 1.0))
    if len(exclude):
        sims[np.asarray(exclude, dtype=np.int64)] = -np.inf
    k = min(n, int(np.isfinite(sims).sum()))
    top = np.argpartition(-sims, k - 1)[:k] if k < sims.size else np.arange(sims.size)
    top = top[np.lexsort((top, -sims[top]))]
    return [(str(vocabulary[i]), float(sims[i])) for i in top[:k]]


def word_index(word: str, vocabulary: Sequence[str]) -> int:
    """Position of ``word``; a clear error, with close spellings, when it is unknown."""
    try:
        return list(vocabulary).index(word)
    except ValueError:
        close = difflib.get_close_matches(word, [str(w) for w in vocabulary], n=5)
        hint = f"; close words: {', '.join(close)}" if close else ""
        raise ValueError(f"{word!r} is not in the model's vocabulary of {len(vocabulary)} words{hint}") from None


def nearest_words(
    word: str, embeddings: np.ndarray, vocabulary: Sequence[str], n: int = 10
) -> list[tuple[str, float]]:
    """The ``n`` words nearest to ``word`` (itself excluded), with cosine similarities."""
    emb = _check(embeddings, vocabulary, n)
    i = word_index(word, vocabulary)
    return nearest_to_vector(emb[i], emb, vocabulary, n, exclude=[i])


def nearest_word_indices(
    words: Sequence[int], embeddings: np.ndarray, n: int = 10, *, block: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest_words` of many words at once, as indices: the same words in the same order.

    Computed ``block`` query words at a time (a ``block`` x V matrix of
    similarities), which is what makes neighbour lists for thousands of
    words affordable (one matrix product instead of one pass per word).

    Parameters
    ----------
    words : sequence of int of length M
        Vocabulary indices of the query words.
    embeddings : ndarray of shape (V, E)
    n : int
        Neighbours per word (each word itself excluded); at most V - 1.

    Returns
    -------
    indices : ndarray of int of shape (M, n)
        Nearest words first; ties go to the lower index, as in :func:`nearest_words`.
    similarities : ndarray of shape (M, n)
        Their cosine similarities.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must have shape (V, E), got {emb.shape}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    query = np.asarray(words, dtype=np.int64).ravel()
    if query.size and (query.min() < 0 or query.max() >= emb.shape[0]):
        raise ValueError(f"word indices must be in [0, {emb.shape[0]}), got range [{query.min()}, {query.max()}]")
    n = min(int(n), emb.shape[0] - 1)
    unit = _unit_rows(emb)
    out_idx = np.zeros((query.size, max(n, 0)), dtype=np.int64)
    out_sim = np.zeros((query.size, max(n, 0)), dtype=np.float64)
    if n < 1:
        return out_idx, out_sim
    for start in range(0, query.size, block):
        rows = query[start : start + block]
        sims = unit[rows] @ unit.T
        sims[np.arange(rows.size), rows] = -np.inf
        part = np.argpartition(-sims, n - 1, axis=1)[:, :n] if n < sims.shape[1] else np.argsort(-sims, axis=1)
        for r in range(rows.size):
            top = part[r]
            top = top[np.lexsort((top, -sims[r, top]))][:n]
            out_idx[start + r] = top
            out_sim[start + r] = sims[r, top]
    return out_idx, out_sim


def topic_neighbors(
    topic_embeddings: np.ndarray, embeddings: np.ndarray, vocabulary: Sequence[str], n: int = 10
) -> list[list[tuple[str, float]]]:
    """For each topic embedding (row of ``alphas``), its ``n`` nearest words by cosine.

    Unlike a topic's most probable words, this ignores the background
    frequency a softmax rewards: it is the direction the topic points in.
    """
    topics = np.asarray(topic_embeddings, dtype=np.float64)
    emb = _check(embeddings, vocabulary, n)
    if topics.ndim != 2 or topics.shape[1] != emb.shape[1]:
        raise ValueError(f"topic embeddings of shape {topics.shape} do not match word embeddings {emb.shape}")
    if not np.isfinite(topics).all():
        raise ValueError("query vector contains NaN or infinity")
    sims = _unit_rows(topics) @ _unit_rows(emb).T  # (K, V), the words normalised once for all topics
    k = min(n, emb.shape[0])
    out = []
    for row in sims:
        top = np.argpartition(-row, k - 1)[:k] if k < row.size else np.arange(row.size)
        top = top[np.lexsort((top, -row[top]))]
        out.append([(str(vocabulary[i]), float(row[i])) for i in top])
    return out
