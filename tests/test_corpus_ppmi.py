"""PPMI vectors of the corpus itself (``corpus_embedding_method="ppmi"``): the formula, the SVD, the estimator."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import etm.embeddings as embeddings
from etm import TopicModel
from etm.cli import build_parser
from etm.corpus import Corpus, PreparedCorpus
from etm.embeddings import clear_corpus_skipgram_cache, corpus_ppmi, corpus_skipgram, corpus_vectors
from etm.options import PPMI_DOCUMENT_TOKENS, estimator_kwargs
from tests.test_corpus_embeddings import SMALL, _themed_corpus


@pytest.fixture(autouse=True)
def _no_kept_vectors(monkeypatch) -> None:
    monkeypatch.setattr(embeddings, "_last_corpus_vectors", None)


def _direct_ppmi(counts: np.ndarray, contexts: np.ndarray) -> np.ndarray:
    """The positive PMI matrix written out with loops over word pairs, as the formula reads."""
    present = counts > 0
    V = counts.shape[1]
    pairs = np.zeros((V, len(contexts)))
    for w in range(V):
        for j, c in enumerate(contexts):
            if w != c:
                pairs[w, j] = np.sum(present[:, w] & present[:, c])
    context = pairs.sum(axis=0) ** embeddings.PPMI_CONTEXT_SMOOTHING
    out = np.zeros_like(pairs)
    for w in range(V):
        for j in range(len(contexts)):
            if pairs[w, j] > 0:
                pmi = np.log(pairs[w, j] / pairs[w].sum() / (context[j] / context.sum()))
                out[w, j] = max(pmi, 0.0)
    return out


def _random_corpus(seed: int = 0, n_docs: int = 80, vocab: int = 12) -> PreparedCorpus:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(0.4, size=(n_docs, vocab))
    counts[:, 0] += rng.integers(0, 3, size=n_docs)  # a frequent word
    words = [f"w{i}" for i in range(vocab)]
    return PreparedCorpus.from_splits(Corpus(sp.csr_matrix(counts), words), None, None)


def test_the_ppmi_matrix_is_the_formula_in_chunks_and_with_fewer_contexts(monkeypatch) -> None:
    corpus = _random_corpus()
    dense = corpus.train.counts.toarray()
    every = np.arange(dense.shape[1])
    got = embeddings._positive_pmi(embeddings._cooccurrences(corpus, every, chunk_size=7))
    np.testing.assert_allclose(got.toarray(), _direct_ppmi(dense, every), rtol=1e-10, atol=1e-12)
    # with a cap on the contexts, only the most frequent training words are contexts
    monkeypatch.setattr(embeddings, "PPMI_MAX_CONTEXTS", 5)
    frequent = np.sort(np.argsort(-dense.sum(axis=0), kind="stable")[:5])
    assert 0 in frequent
    got = embeddings._positive_pmi(embeddings._cooccurrences(corpus, frequent, chunk_size=1000))
    np.testing.assert_allclose(got.toarray(), _direct_ppmi(dense, frequent), rtol=1e-10, atol=1e-12)
    vectors = corpus_ppmi(corpus, vector_size=4, seed=1).vectors
    assert vectors.shape == (12, 4) and np.isfinite(vectors).all()


def test_the_vectors_are_u_times_s_of_the_ppmi_matrix() -> None:
    """With every component kept, the vectors' Gram matrix is M M^T (U S S U^T); extra dimensions stay 0."""
    corpus = _random_corpus(1)
    every = np.arange(12)
    m = _direct_ppmi(corpus.train.counts.toarray(), every)
    aligned = corpus_ppmi(corpus, vector_size=16, seed=0)
    assert aligned.found.all() and aligned.source == "PPMI of the training documents"
    v = aligned.vectors.astype(np.float64)
    np.testing.assert_allclose(v @ v.T, m @ m.T, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(v[:, 12:], 0.0)  # 12 words: at most 12 components


def test_ppmi_vectors_are_deterministic_kept_and_apart_from_skipgrams(monkeypatch) -> None:
    corpus = _themed_corpus(360, 6)
    a = corpus_ppmi(corpus, vector_size=8, seed=3)
    clear_corpus_skipgram_cache()
    np.testing.assert_array_equal(a.vectors, corpus_ppmi(corpus, vector_size=8, seed=3).vectors)
    # kept: the next call with the same documents and settings does no SVD; skip-gram's are another result
    calls = []
    real = embeddings._cooccurrences
    monkeypatch.setattr(embeddings, "_cooccurrences", lambda *a, **k: calls.append(1) or real(*a, **k))
    np.testing.assert_array_equal(corpus_vectors(corpus, "ppmi", vector_size=8, seed=3).vectors, a.vectors)
    assert calls == []
    assert not np.allclose(corpus_skipgram(corpus, vector_size=8, seed=3).vectors, a.vectors)
    corpus_ppmi(corpus, vector_size=8, seed=3)
    assert calls == [1]
    # the co-occurrence is in the vectors: a word's nearest neighbour is from its own group
    v = a.vectors / np.linalg.norm(a.vectors, axis=1, keepdims=True)
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    assert (sims.argmax(axis=1) // 10 == np.arange(30) // 10).all()
    with pytest.raises(ValueError, match="unknown corpus embedding method 'glove'"):
        corpus_vectors(corpus, "glove")


def test_a_word_that_shares_no_training_document_gets_a_zero_vector() -> None:
    """Equally near every topic under cosine similarity: not a random topic's word."""
    corpus = _themed_corpus(360, 6)
    train = corpus.train.counts.tolil()
    train[:, 0] = 0
    train[0, :] = 0
    train[0, 0] = 3  # w0 only alone in a document: no pair
    moved = PreparedCorpus.from_splits(Corpus(train.tocsr(), corpus.vocabulary), corpus.valid, None)
    aligned = corpus_ppmi(moved, vector_size=8, seed=3)
    assert not aligned.found[0] and aligned.found[1:].all()
    np.testing.assert_array_equal(aligned.vectors[0], 0.0)
    assert (np.linalg.norm(aligned.vectors[1:], axis=1) > 0).all()
    # like any word without a vector it is learned from there (missing_embeddings="train") or kept ("fixed")
    learned = TopicModel(3, **SMALL).fit(moved)
    assert np.isfinite(learned.topic_word_).all() and np.linalg.norm(learned.word_embeddings_[0]) > 0
    kept = TopicModel(3, missing_embeddings="fixed", **SMALL).fit(moved)
    with torch.no_grad():
        logits = kept.model_._logits()
    np.testing.assert_array_equal(logits[0].numpy(), 0.0)  # no topic's own word: its shares are all 1/K
    np.testing.assert_array_equal(kept.word_embeddings_, corpus_ppmi(moved, vector_size=16, seed=5).vectors)
    lonely = PreparedCorpus.from_splits(Corpus(sp.csr_matrix(np.eye(3, dtype=np.int64)), ["a", "b", "c"]), None,
                                        None)
    with pytest.raises(ValueError, match="no two vocabulary words share a training document"):
        corpus_ppmi(lonely, vector_size=4)
    with pytest.raises(ValueError, match="no training tokens"):
        corpus_ppmi(PreparedCorpus.from_splits(Corpus(sp.csr_matrix((3, 2)), ["a", "b"]), None, None))


def test_the_method_is_ppmi_below_the_length_rule_and_skipgram_from_it(tmp_path) -> None:
    corpus = _themed_corpus(360, 6)
    model = TopicModel(3, **SMALL).fit(corpus)  # short documents: corpus vectors, by PPMI
    assert model.corpus_embedding_method is None and model.corpus_embedding_method_ == "ppmi"
    np.testing.assert_array_equal(model.word_embeddings_, corpus_ppmi(corpus, vector_size=16, seed=5).vectors)
    assert model.embedding_report_["source"] == "PPMI of the training documents"
    longer = TopicModel(3, **SMALL).fit(_themed_corpus(360, PPMI_DOCUMENT_TOKENS))
    assert longer.corpus_embeddings_ is True and longer.corpus_embedding_method_ == "skipgram"
    assert longer.embedding_report_["source"] == "skip-gram on the training documents"
    assert TopicModel(3, **SMALL).fit(_themed_corpus(360, PPMI_DOCUMENT_TOKENS - 1)).corpus_embedding_method_ == "ppmi"
    chosen = TopicModel(3, corpus_embedding_method="skipgram", **SMALL).fit(corpus)
    assert chosen.corpus_embedding_method_ == "skipgram"
    learned = TopicModel(3, corpus_embeddings=False, **SMALL).fit(corpus)
    assert learned.corpus_embedding_method_ is None
    model.save(tmp_path / "m")
    assert TopicModel.load(tmp_path / "m").corpus_embedding_method_ == "ppmi"


def test_the_cli_takes_the_method() -> None:
    args = build_parser().parse_args(["train", "C", "-o", "M", "--corpus-embedding-method", "skipgram"])
    assert estimator_kwargs(args)["corpus_embedding_method"] == "skipgram"
    assert estimator_kwargs(build_parser().parse_args(["train", "C", "-o", "M"]))["corpus_embedding_method"] is None
    with pytest.raises(ValueError, match="corpus_embedding_method"):
        TopicModel(3, corpus_embedding_method="svd", **SMALL).fit(_themed_corpus(360, 6))
