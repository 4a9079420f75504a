"""Compatibility layer: the ETM authors' ``utils.py``, returning numbers instead of printing them.

``from etm.utils import nearest_neighbors, get_topic_coherence,
get_topic_diversity`` with the original signatures. Each is a thin wrapper over
:mod:`etm.metrics` / :mod:`etm.neighbors`, and reproduces the original's
number: in particular ``get_topic_coherence`` uses the top **11** words of
each topic (``argsort()[-11:]``, 55 pairs) as the authors' code does, though
the paper and :func:`etm.metrics.topic_coherence` use 10.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from etm.metrics import top_word_indices, topic_coherence, topic_diversity
from etm.neighbors import word_index

__all__ = ["get_topic_diversity", "get_topic_coherence", "get_document_frequency", "nearest_neighbors"]

#: Words per topic in the authors' coherence code (``argsort()[-11:]``).
AUTHORS_COHERENCE_TOP = 11


def _numpy(x: Any) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().cpu().numpy()
    if hasattr(x, "weight") and torch.is_tensor(x.weight):
        return x.weight.detach().cpu().numpy()
    return np.asarray(x)


def _documents_matrix(data: Any, vocab_size: int | None = None) -> sp.csr_matrix:
    """The authors pass ``train['tokens']`` (one token array per document); a sparse matrix works too."""
    if sp.issparse(data):
        return sp.csr_matrix(data)
    rows = [np.asarray(doc).ravel().astype(np.int64) for doc in data]
    lengths = np.fromiter((r.size for r in rows), dtype=np.int64, count=len(rows))
    cols = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    if vocab_size is None:
        vocab_size = int(cols.max()) + 1 if cols.size else 0
    if cols.size and (cols.min() < 0 or cols.max() >= vocab_size):
        raise ValueError(f"a document has a word index outside the {vocab_size}-word vocabulary")
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    matrix = sp.csr_matrix((np.ones(cols.size, np.int32), cols, indptr), shape=(len(rows), vocab_size))
    matrix.sum_duplicates()
    return matrix


def get_topic_diversity(beta: Any, topk: int) -> float:
    """Unique share of the ``topk`` most probable words over all topics (the paper's TD)."""
    return topic_diversity(top_word_indices(_numpy(beta), int(topk)))


def get_document_frequency(data: Any, wi: int, wj: int | None = None) -> int | tuple[int, int]:
    """Documents containing word ``wi`` or, with ``wj``, ``(D(wj), D(wi, wj))``, as in the original."""
    present = _documents_matrix(data).tocsc()
    if max(int(wi), int(wj or 0)) >= present.shape[1]:
        return 0 if wj is None else (0, 0)
    col_i = set(present[:, int(wi)].nonzero()[0].tolist())
    if wj is None:
        return len(col_i)
    col_j = set(present[:, int(wj)].nonzero()[0].tolist())
    return len(col_j), len(col_i & col_j)


def get_topic_coherence(beta: Any, data: Any, vocab: Sequence[str]) -> float:
    """NPMI coherence as the authors' code computes it: top 11 words, pairs never seen together count -1.

    ``beta`` is (K, V); ``data`` the reference documents (the authors pass
    ``train['tokens']``) or a (D, V) sparse matrix.
    """
    b = _numpy(beta)
    if b.ndim != 2 or b.shape[1] != len(vocab):
        raise ValueError(f"beta of shape {b.shape} does not match a vocabulary of {len(vocab)} words")
    docs = _documents_matrix(data, len(vocab))
    return topic_coherence(top_word_indices(b, AUTHORS_COHERENCE_TOP), docs)


def nearest_neighbors(word: str, embeddings: Any, vocab: Sequence[str]) -> list[str]:
    """The 20 words most cosine-similar to ``word``, the word itself first, as the original returns.

    ``embeddings`` is ``model.rho.weight`` (a tensor), a module with
    ``.weight``, or an array of shape (V, E). An unknown word is a clear
    ``ValueError`` (the original's probe crashed on corpora without "andrew").
    """
    vectors = _numpy(embeddings).astype(np.float64)
    if vectors.ndim != 2 or vectors.shape[0] != len(vocab):
        raise ValueError(f"embeddings of shape {vectors.shape} do not match a vocabulary of {len(vocab)} words")
    i = word_index(word, vocab)
    query = vectors[i]
    denom = np.sqrt(query @ query * np.sum(vectors**2, axis=1))
    ranks = (vectors @ query) / np.where(denom > 0, denom, 1.0)
    order = np.argsort(-ranks, kind="stable")
    return [vocab[j] for j in order[:20]]
