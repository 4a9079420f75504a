"""Metrics: vectorised NPMI equals the authors' pairwise loop; perplexity forms; diversity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from etm.metrics import (
    completion_loglik,
    perplexity_per_document,
    perplexity_per_token,
    top_word_indices,
    top_words,
    topic_coherence,
    topic_coherence_per_topic,
    topic_diversity,
    topic_quality,
)


def _loop_coherence(topics: np.ndarray, docs: list[set[int]], pair_score) -> float:
    """Mean over topics of the mean ``pair_score(d_i, d_j, d_ij, n)`` over each topic's word pairs (slow, plain)."""
    n = len(docs)
    per_topic = []
    for words in topics:
        scores = []
        for i in range(len(words)):
            for j in range(i + 1, len(words)):
                d_i = sum(words[i] in d for d in docs)
                d_j = sum(words[j] in d for d in docs)
                d_ij = sum(words[i] in d and words[j] in d for d in docs)
                scores.append(pair_score(d_i, d_j, d_ij, n))
        per_topic.append(np.mean(scores))
    return float(np.mean(per_topic))


def _authors_npmi(d_i: int, d_j: int, d_ij: int, n: int) -> float:
    """The authors' NPMI of one pair: -1 when it never co-occurs, 1 when it is in every document."""
    if d_ij == 0:
        return -1.0
    if d_ij == n:
        return 1.0
    return -1 + (math.log(d_i) + math.log(d_j) - 2 * math.log(n)) / (math.log(d_ij) - math.log(n))


def _loop_npmi(topics: np.ndarray, docs: list[set[int]]) -> float:
    """The authors' algorithm, pair by pair over document sets (slow, obviously right)."""
    return _loop_coherence(topics, docs, _authors_npmi)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n_docs=st.integers(3, 40), density=st.floats(0.05, 0.9))
def test_vectorised_coherence_equals_pairwise_loop(seed: int, n_docs: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    counts = sp.random(n_docs, 30, density=density, format="csr", random_state=rng)
    topics = np.stack([rng.choice(30, size=10, replace=False) for _ in range(4)])
    docs = [set(counts[d].indices.tolist()) for d in range(n_docs)]
    assert topic_coherence(topics, counts) == pytest.approx(_loop_npmi(topics, docs), abs=1e-9)


def test_coherence_on_real_20ng_matches_loop(authors_corpus) -> None:
    ref = authors_corpus.train.counts[:800]
    rng = np.random.default_rng(0)
    topics = np.stack([rng.choice(ref.shape[1], size=10, replace=False) for _ in range(3)])
    # frequent words so that pairs actually co-occur
    freq = np.argsort(-np.asarray((ref > 0).sum(0)).ravel())[:40]
    topics = np.vstack([topics, freq[:10], freq[10:20]])
    docs = [set(ref[d].indices.tolist()) for d in range(ref.shape[0])]
    assert topic_coherence(topics, ref) == pytest.approx(_loop_npmi(topics, docs), abs=1e-9)
    per_topic = topic_coherence_per_topic(topics, ref)
    assert per_topic.shape == (5,)
    assert per_topic[3] > per_topic[0]  # frequent words co-occur more than random ones


def test_coherence_extremes() -> None:
    # words 0 and 1 always together, word 2 never with them
    counts = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1], [0, 0, 1]]))
    assert topic_coherence([[0, 1]], counts) == pytest.approx(1.0)
    assert topic_coherence([[0, 2]], counts) == pytest.approx(-1.0)


def _loop_shrunk_npmi(topics: np.ndarray, docs: list[set[int]], c: float) -> float:
    """The pseudo-count estimate, pair by pair (the formula of ``topic_coherence_per_topic``'s docstring)."""
    def pair_score(d_i: int, d_j: int, d_ij: int, n: int) -> float:
        pmi = math.log((d_ij + c) / (d_i * d_j / n + c))
        denom = -math.log(min((d_ij + c) / n, 1.0))
        return 1.0 if denom == 0 else min(1.0, max(-1.0, pmi / denom))

    return _loop_coherence(topics, docs, pair_score)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n_docs=st.integers(3, 60), density=st.floats(0.02, 0.9),
       c=st.sampled_from([0.1, 0.5, 1.0, 3.0]))
def test_pseudo_count_coherence_equals_pairwise_loop(seed: int, n_docs: int, density: float, c: float) -> None:
    rng = np.random.default_rng(seed)
    counts = sp.random(n_docs, 30, density=density, format="csr", random_state=rng)
    topics = np.stack([rng.choice(30, size=10, replace=False) for _ in range(4)])
    docs = [set(counts[d].indices.tolist()) for d in range(n_docs)]
    got = topic_coherence(topics, counts, pseudo_count=c)
    assert got == pytest.approx(_loop_shrunk_npmi(topics, docs, c), abs=1e-9)
    assert -1.0 <= got <= 1.0


def test_pseudo_count_scores_rare_unseen_pairs_near_zero_and_tends_to_npmi() -> None:
    """No evidence is not -1; strong evidence keeps its sign; many documents give back the authors' NPMI."""
    rng = np.random.default_rng(0)
    # words 0, 1: each in 1 of 1,000 documents, never together (expected together 0.001 times)
    # words 2, 3: each in half of the documents, never together (expected 250 times)
    # words 4, 5: always together in a tenth of the documents
    n = 1000
    dense = np.zeros((n, 6))
    dense[0, 0] = dense[1, 1] = 1
    dense[: n // 2, 2] = 1
    dense[n // 2:, 3] = 1
    dense[rng.choice(n, n // 10, replace=False), 4:6] = 1
    counts = sp.csr_matrix(dense)
    assert topic_coherence([[0, 1]], counts) == -1.0
    assert abs(topic_coherence([[0, 1]], counts, pseudo_count=1.0)) < 0.01
    assert topic_coherence([[2, 3]], counts, pseudo_count=1.0) < -0.6
    assert topic_coherence([[4, 5]], counts, pseudo_count=1.0) > 0.9
    # the same proportions over 100x the documents: the estimate approaches the authors' NPMI where the pair
    # meets (the -1 of a pair that never does is only reached in the limit)
    big = sp.csr_matrix(np.repeat(dense, 100, axis=0))
    for pair in ([2, 4], [3, 4], [4, 5]):
        small_gap = abs(topic_coherence([pair], counts, pseudo_count=1.0) - topic_coherence([pair], counts))
        big_gap = abs(topic_coherence([pair], big, pseudo_count=1.0) - topic_coherence([pair], big))
        assert big_gap < 0.005 and big_gap <= small_gap
    assert topic_coherence([[2, 3]], big, pseudo_count=1.0) < topic_coherence([[2, 3]], counts, pseudo_count=1.0)
    with pytest.raises(ValueError, match="pseudo_count must be a finite number >= 0"):
        topic_coherence([[0, 1]], counts, pseudo_count=-1)


def test_coherence_input_errors() -> None:
    counts = sp.csr_matrix(np.ones((3, 5)))
    with pytest.raises(ValueError, match=r"word indices must be in \[0, 5\)"):
        topic_coherence([[0, 9]], counts)
    with pytest.raises(ValueError, match="at least 2 words"):
        topic_coherence([[0]], counts)
    with pytest.raises(ValueError, match="no documents"):
        topic_coherence([[0, 1]], sp.csr_matrix((0, 5)))
    with pytest.raises(ValueError, match=r"topic_word has 4 columns but the reference corpus has 5"):
        topic_coherence(np.ones((2, 4)) / 4, counts)


def test_top_words_and_diversity() -> None:
    beta = np.array([[0.1, 0.5, 0.4, 0.0], [0.4, 0.1, 0.2, 0.3]])
    assert top_word_indices(beta, 2).tolist() == [[1, 2], [0, 3]]
    assert top_words(beta, ["a", "b", "c", "d"], 2) == [["b", "c"], ["a", "d"]]
    assert topic_diversity([[1, 2], [0, 3]]) == 1.0
    assert topic_diversity([[1, 2], [1, 2]]) == 0.5
    assert topic_quality(0.2, 0.5) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="vocabulary has 3 words"):
        top_words(beta, ["a", "b", "c"], 2)


@pytest.mark.parametrize("n", [0, -2, 2.0, True])
def test_top_words_need_a_positive_count(n) -> None:
    beta = np.array([[0.1, 0.5, 0.4, 0.0], [0.4, 0.1, 0.2, 0.3]])
    with pytest.raises(ValueError, match=rf"^n must be a positive integer, got {n!r}$"):
        top_words(beta, ["a", "b", "c", "d"], n)
    with pytest.raises(ValueError, match=rf"^n must be a positive integer, got {n!r}$"):
        top_word_indices(beta, n)


def test_perplexity_forms() -> None:
    theta = np.array([[1.0, 0.0], [0.5, 0.5]])
    beta = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    h2 = sp.csr_matrix(np.array([[2, 0, 0], [0, 1, 3]]))
    ll = completion_loglik(theta, beta, h2)
    assert ll == pytest.approx([2 * math.log(0.5), math.log(0.25) + 3 * math.log(0.5)])
    n = np.array([2, 4])
    per_doc = math.exp(np.mean([-ll[0] / 2, -ll[1] / 4]))
    per_tok = math.exp(-ll.sum() / 6)
    assert perplexity_per_document(ll, n) == pytest.approx(per_doc)
    assert perplexity_per_token(ll, n) == pytest.approx(per_tok)
    with pytest.raises(ValueError, match="shapes do not match"):
        completion_loglik(theta[:1], beta, h2)
